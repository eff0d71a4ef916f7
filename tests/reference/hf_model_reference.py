"""HF modeling semantics in plain torch for the whole-model golden fixtures.

Imported by make_model_fixtures.py, whose docstring lists what each family does. Every function
runs in the dtype of its inputs (float64 for the golden numbers, float32 for the cross-check).
"""
import math

import torch

from hf_config import dbrx_value, value

DTYPE = [torch.float64]  # the dtype forward() runs in (weights are converted to it)

# ---------------------------------------------------------------------------------------------
# margins: every discrete decision is recorded so the fixture can be rejected if one is fragile


class Margins:
    def __init__(self):
        self.enabled = False
        self.routing = math.inf
        self.greedy = math.inf
        self.positive_choice = math.inf

    def topk(self, scores, k):
        """Records the gap between the k-th and (k+1)-th largest score of each row."""
        if not self.enabled or k >= scores.shape[-1]:
            return
        s = torch.sort(scores, dim=-1, descending=True).values
        self.routing = min(self.routing, float((s[..., k - 1] - s[..., k]).min()))


MARGINS = Margins()

# ---------------------------------------------------------------------------------------------
# building blocks (HF semantics, float32)


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def linear(x, w, b=None):
    y = x @ w.t()
    return y + b if b is not None else y


def silu(x):
    return x * torch.sigmoid(x)


def swiglu_mlp(x, W, prefix):
    """down(silu(gate x) * up x), each Linear with its bias when the checkpoint has one (ERNIE use_bias)."""
    g = linear(x, W[prefix + "gate_proj.weight"], W.get(prefix + "gate_proj.bias"))
    u = linear(x, W[prefix + "up_proj.weight"], W.get(prefix + "up_proj.bias"))
    return linear(silu(g) * u, W[prefix + "down_proj.weight"], W.get(prefix + "down_proj.bias"))


def yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_params(cfg, dim, seq_len=None):
    """Returns (inv_freq [dim/2] f32, attention_scaling) for the config's rope_scaling. seq_len: the
    length of the sequence so far (LongRoPE switches to its long factors beyond the original length)."""
    base = float(cfg["rope_theta"])
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv_freq, 1.0
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "longrope":
        return longrope_params(cfg, rs, dim, base, seq_len)
    if kind == "linear":
        return inv_freq / rs["factor"], 1.0
    if kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / inv_freq
        inv_l = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, inv_l), 1.0
    if kind == "yarn":
        return yarn_inv_freq(rs, dim, base, cfg)
    raise ValueError("rope type " + str(kind))


def longrope_params(cfg, rs, dim, base, seq_len):
    """transformers' _compute_longrope_parameters with PhiMoE's mscale: the long factors and long_mscale
    for every position once seq_len > original_max_position_embeddings, the short ones before."""
    orig = rs["original_max_position_embeddings"]
    long = seq_len is not None and seq_len > orig
    ext = torch.tensor(rs["long_factor"] if long else rs["short_factor"], dtype=torch.float32)
    shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    inv_freq = 1.0 / (ext * base ** shape)
    mscale = rs.get("long_mscale" if long else "short_mscale")
    if mscale is None:
        factor = cfg["max_position_embeddings"] / orig
        mscale = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(orig))
    return inv_freq, float(mscale)


def yarn_inv_freq(rs, dim, base, cfg):
    factor = rs["factor"]
    orig = rs["original_max_position_embeddings"]
    assert cfg["max_position_embeddings"] == factor * orig  # so HF's two readings of factor agree
    beta_fast, beta_slow = rs.get("beta_fast", 32), rs.get("beta_slow", 1)
    truncate = rs.get("truncate", True)

    def corr_dim(rot):
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extra_factor = 1 - ramp  # 1: keep the extrapolated (original) frequency
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
    inv_extra = 1.0 / pos_freqs
    inv_inter = 1.0 / (factor * pos_freqs)
    inv_freq = inv_inter * (1 - extra_factor) + inv_extra * extra_factor
    if "attention_factor" in rs:
        att = rs["attention_factor"]
    elif rs.get("mscale") and rs.get("mscale_all_dim"):
        att = yarn_mscale(factor, rs["mscale"]) / yarn_mscale(factor, rs["mscale_all_dim"])
    else:
        att = yarn_mscale(factor)
    return inv_freq, float(att)


def cos_sin(inv_freq, scaling, pos):
    freqs = pos.to(DTYPE[0])[:, None] * inv_freq.to(DTYPE[0])[None, :]  # [T, d/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [T, d]
    return emb.cos() * scaling, emb.sin() * scaling


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rope_half(x, cos, sin):
    """x [..., T, d], cos/sin [T, d]: Llama / Qwen / Mistral / gpt-oss style."""
    return x * cos + rotate_half(x) * sin


def rope_interleaved(x, cos, sin):
    """ERNIE 4.5 (GLM's rotate_half with cos/sin repeat-interleaved): pairs (2i, 2i+1) rotate by inv_freq[i]."""
    d = x.shape[-1]
    c, s_ = cos[..., : d // 2], sin[..., : d // 2]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * c - x1 * s_, x1 * c + x0 * s_], dim=-1).flatten(-2)


def rope_deepseek(x, cos, sin):
    """DeepSeek remote code: de-interleave the pairs, then rotate_half (== interleaved RoPE)."""
    *lead, t, d = x.shape
    x = x.reshape(*lead, t, d // 2, 2).transpose(-1, -2).reshape(*lead, t, d)
    return x * cos + rotate_half(x) * sin


def attend(q, k, v, q_pos, k_pos, scale, window=None, sinks=None, chunk=None):
    """q [H, T, Dq], k [Hkv, S, Dq], v [Hkv, S, Dv] -> [T, H * Dv]. chunk: Llama 4's chunked mask."""
    rep = q.shape[0] // k.shape[0]
    k = k.repeat_interleave(rep, dim=0)
    v = v.repeat_interleave(rep, dim=0)
    scores = (q @ k.transpose(-1, -2)) * scale  # [H, T, S]
    rel = q_pos[:, None] - k_pos[None, :]
    allowed = rel >= 0
    if window is not None:
        allowed &= rel < window
    if chunk is not None:
        allowed &= (q_pos[:, None] // chunk) == (k_pos[None, :] // chunk)
    scores = scores.masked_fill(~allowed, float("-inf"))
    if sinks is not None:
        s = sinks.reshape(-1, 1, 1).expand(-1, scores.shape[1], 1)
        comb = torch.cat([scores, s], dim=-1)
        comb = comb - comb.max(dim=-1, keepdim=True).values
        p = torch.softmax(comb, dim=-1)[..., :-1]
    else:
        p = torch.softmax(scores, dim=-1)
    out = p @ v  # [H, T, Dv]
    return out.transpose(0, 1).reshape(q.shape[1], -1)


def cache_append(cache, li, k, v):
    """Per-layer KV cache of post-RoPE keys and values, [Hkv, S, D]."""
    if li in cache:
        k = torch.cat([cache[li][0], k], dim=1)
        v = torch.cat([cache[li][1], v], dim=1)
    cache[li] = (k, v)
    return k, v


# ---------------------------------------------------------------------------------------------
# attention variants


def rotary_dims(cfg, Dh):
    """The leading dims of each head that RoPE rotates (NeoX halves within them), the rest passed through:
    GLM-4.5's partial_rotary_factor, MiniMax-Text-01's rotary_dim (64 of 128 in the release; MiniMax's own
    vLLM model builds its rotary embedding over rotary_dim with is_neox_style, which rotates those dims)."""
    if cfg["model_type"] == "minimax" and cfg.get("rotary_dim"):
        return int(cfg["rotary_dim"])
    return int(Dh * (value(cfg, "partial_rotary_factor") or 1.0))


def gqa_attention(cfg, W, p, x, pos, cache, li, fam):
    """Llama / Mistral / Qwen2 / Qwen3 / OLMoE / gpt-oss attention. x [T, D]."""
    T = x.shape[0]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    Dh = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    q = linear(x, W[p + "q_proj.weight"], W.get(p + "q_proj.bias"))  # [T, H*Dh]
    k = linear(x, W[p + "k_proj.weight"], W.get(p + "k_proj.bias"))  # [T, Hkv*Dh]
    v = linear(x, W[p + "v_proj.weight"], W.get(p + "v_proj.bias"))  # [T, Hkv*Dh]
    if fam.qk_norm == "full":  # OLMoE: norm over the whole projection
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
    q = q.view(T, H, Dh).transpose(0, 1)  # [H, T, Dh]
    k = k.view(T, Hkv, Dh).transpose(0, 1)  # [Hkv, T, Dh]
    v = v.view(T, Hkv, Dh).transpose(0, 1)
    if fam.qk_norm == "head":  # Qwen3: per-head norm over head_dim
        q = rms_norm(q, W[p + "q_norm.weight"], eps)
        k = rms_norm(k, W[p + "k_norm.weight"], eps)
    rot = rotary_dims(cfg, Dh)
    inv_freq, att = rope_params(cfg, rot, int(pos[-1]) + 1)
    cos, sin = cos_sin(inv_freq, att, pos)
    llama4 = cfg["model_type"] == "llama4_text"
    rope = rope_interleaved if cfg["model_type"] in ("ernie4_5_moe", "llama4_text") else rope_half
    use_rope = not llama4 or cfg["no_rope_layers"][li]  # Llama 4: 0 marks a NoPE layer
    if use_rope:
        q = torch.cat([rope(q[..., :rot], cos, sin), q[..., rot:]], dim=-1)
        k = torch.cat([rope(k[..., :rot], cos, sin), k[..., rot:]], dim=-1)
    if llama4 and use_rope and value(cfg, "use_qk_norm"):  # weightless L2 norm per head, after RoPE
        q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + eps)
        k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + eps)
    if llama4 and not use_rope and value(cfg, "attn_temperature_tuning"):
        scales = torch.log(torch.floor((pos.to(q.dtype) + 1.0) / value(cfg, "floor_scale")) + 1.0)
        q = q * (scales * value(cfg, "attn_scale") + 1.0)[None, :, None]
    k, v = cache_append(cache, li, k, v)
    S = k.shape[1]
    k_pos = torch.arange(S)
    window = chunk = None
    if cfg.get("layer_types") and cfg["layer_types"][li] == "sliding_attention":
        window = cfg["sliding_window"]
    if cfg.get("layer_types") and cfg["layer_types"][li] == "chunked_attention":
        chunk = cfg["attention_chunk_size"]
    sinks = W.get(p + "sinks")
    granite = cfg["model_type"].startswith("granitemoe")
    scale = value(cfg, "attention_multiplier") if granite else Dh ** -0.5  # Granite replaces Dh^-0.5
    o = attend(q, k, v, pos, k_pos, scale, window, sinks, chunk)
    return linear(o, W[p + "o_proj.weight"], W.get(p + "o_proj.bias"))


def mla_attention(cfg, W, p, x, pos, cache, li, fam):
    """DeepSeek-V2/V3 multi-head latent attention, naive (per-head keys and values cached)."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    nope, rope, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    r_kv, eps = cfg["kv_lora_rank"], cfg["rms_norm_eps"]
    if cfg.get("q_lora_rank"):
        qa = rms_norm(linear(x, W[p + "q_a_proj.weight"]), W[p + "q_a_layernorm.weight"], eps)
        q = linear(qa, W[p + "q_b_proj.weight"])  # [T, H*(nope+rope)]
    else:
        q = linear(x, W[p + "q_proj.weight"])
    q = q.view(T, H, nope + rope).transpose(0, 1)  # [H, T, nope+rope]
    q_nope, q_pe = q[..., :nope], q[..., nope:]
    ckv = linear(x, W[p + "kv_a_proj_with_mqa.weight"])  # [T, r_kv + rope]
    c, k_pe = ckv[:, :r_kv], ckv[:, r_kv:]
    kv = linear(rms_norm(c, W[p + "kv_a_layernorm.weight"], eps), W[p + "kv_b_proj.weight"])
    kv = kv.view(T, H, nope + dv).transpose(0, 1)  # [H, T, nope+dv]
    k_nope, v = kv[..., :nope], kv[..., nope:]
    inv_freq, att = rope_params(cfg, rope)
    cos, sin = cos_sin(inv_freq, att, pos)
    q_pe = rope_deepseek(q_pe, cos, sin)
    k_pe = rope_deepseek(k_pe.view(1, T, rope), cos, sin)  # [1, T, rope]
    qs = torch.cat([q_nope, q_pe], dim=-1)
    ks = torch.cat([k_nope, k_pe.expand(H, T, rope)], dim=-1)
    ks, v = cache_append(cache, li, ks, v)
    scale = (nope + rope) ** -0.5
    rs = cfg.get("rope_scaling")
    if rs and rs.get("mscale_all_dim"):
        m = yarn_mscale(rs["factor"], rs["mscale_all_dim"])
        scale = scale * m * m
    o = attend(qs, ks, v, pos, torch.arange(ks.shape[1]), scale)
    return linear(o, W[p + "o_proj.weight"])


# ---------------------------------------------------------------------------------------------
# MoE variants (x [T, D] -> [T, D])


def experts_swiglu(x, W, p, names, ids, weights):
    """Per-expert SwiGLU with per-expert HF tensors; names = (gate, up, down)."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(ids.shape[1]):
            e = int(ids[t, j])
            q = p + "experts.%d." % e
            g = linear(x[t], W[q + names[0] + ".weight"], W.get(q + names[0] + ".bias"))
            u = linear(x[t], W[q + names[1] + ".weight"], W.get(q + names[1] + ".bias"))
            out[t] += weights[t, j] * linear(silu(g) * u, W[q + names[2] + ".weight"], W.get(q + names[2] + ".bias"))
    return out


def softmax_topk(logits, k, renorm):
    probs = torch.softmax(logits, dim=-1)
    MARGINS.topk(probs, k)
    w, ids = torch.topk(probs, k, dim=-1)
    if renorm:
        w = w / w.sum(dim=-1, keepdim=True)
    return ids, w


def moe_mixtral(cfg, W, p, x):
    p = p + "block_sparse_moe."
    ids, w = softmax_topk(linear(x, W[p + "gate.weight"]), cfg["num_experts_per_tok"], True)
    return experts_swiglu(x, W, p, ("w1", "w3", "w2"), ids, w)


def moe_qwen(cfg, W, p, x):
    """Qwen2-MoE (with shared expert), Qwen3-MoE and OLMoE routing."""
    p = p + "mlp."
    ids, w = softmax_topk(linear(x, W[p + "gate.weight"]), cfg["num_experts_per_tok"],
                          cfg.get("norm_topk_prob", False))
    out = experts_swiglu(x, W, p, ("gate_proj", "up_proj", "down_proj"), ids, w)
    if p + "shared_expert_gate.weight" in W:
        gate = torch.sigmoid(linear(x, W[p + "shared_expert_gate.weight"]))  # [T, 1]
        out = out + gate * swiglu_mlp(x, W, p + "shared_expert.")
    return out


def group_mask(choice, n_group, topk_group, group_score):
    T, E = choice.shape
    gs = group_score(choice.view(T, n_group, E // n_group))  # [T, n_group]
    MARGINS.topk(gs, topk_group)
    gidx = torch.topk(gs, topk_group, dim=-1).indices
    gm = torch.zeros_like(gs).scatter_(1, gidx, 1.0)
    return gm.unsqueeze(-1).expand(T, n_group, E // n_group).reshape(T, E).bool()


def deepseek_router(cfg):
    """(scoring, topk_method) as the modeling code decides them. transformers' DeepSeek-V3 (and the
    remote code, which accepts nothing else), GLM-4.5 and dots.llm1 (the V3 router) always score
    with sigmoid and select with noaux_tc, whatever the config says or leaves out; DeepSeek-V2 reads
    topk_method and always uses softmax."""
    if cfg["model_type"] in ("deepseek_v3", "glm4_moe", "dots1"):
        return "sigmoid", "noaux_tc"
    return value(cfg, "scoring_func") or "softmax", value(cfg, "topk_method") or "greedy"


def moe_deepseek(cfg, W, p, x):
    p = p + "mlp."
    k = cfg["num_experts_per_tok"]
    logits = linear(x, W[p + "gate.weight"])
    scoring, method = deepseek_router(cfg)
    n_group, topk_group = value(cfg, "n_group") or 1, value(cfg, "topk_group") or 1
    norm = value(cfg, "norm_topk_prob")
    if scoring == "softmax":
        scores = torch.softmax(logits, dim=-1)
    else:
        scores = torch.sigmoid(logits)
    if method == "greedy":
        MARGINS.topk(scores, k)
        w, ids = torch.topk(scores, k, dim=-1)
    elif method == "group_limited_greedy":
        mask = group_mask(scores, n_group, topk_group, lambda g: g.max(dim=-1).values)
        tmp = scores.masked_fill(~mask, 0.0)
        MARGINS.topk(tmp, k)
        w, ids = torch.topk(tmp, k, dim=-1)
    elif method == "noaux_tc":
        choice = scores + W[p + "gate.e_score_correction_bias"].unsqueeze(0)
        # HF masks with 0.0: equal to -inf only while every choice score is positive; a fixture
        # outside that regime is rejected so implementations using either agree.
        MARGINS.positive_choice = min(MARGINS.positive_choice, float(choice.min()))
        mask = group_mask(choice, n_group, topk_group, lambda g: g.topk(2, dim=-1).values.sum(dim=-1))
        tmp = choice.masked_fill(~mask, 0.0)
        MARGINS.topk(tmp, k)
        ids = torch.topk(tmp, k, dim=-1).indices
        w = scores.gather(1, ids)
    else:
        raise ValueError(method)
    if cfg["model_type"] == "deepseek_v2":
        # DeepSeek's V2 code: renormalize OR scale (transformers' port always scales; equal while
        # norm_topk_prob is false, as in every released V2 checkpoint)
        if k > 1 and norm:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        else:
            w = w * value(cfg, "routed_scaling_factor")
    else:
        if k > 1 and norm:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        w = w * value(cfg, "routed_scaling_factor")
    out = experts_swiglu(x, W, p, ("gate_proj", "up_proj", "down_proj"), ids, w)
    if value(cfg, "n_shared_experts"):
        out = out + swiglu_mlp(x, W, p + "shared_experts.")
    return out


def moe_ernie(cfg, W, p, x):
    """ERNIE-4.5-MoE: top-k of softmax + moe_statics bias; weights = the chosen softmax values divided by
    max(their sum, moe_norm_min); plus the shared experts (SwiGLU with biases when use_bias)."""
    p = p + "mlp."
    k = value(cfg, "moe_k")
    probs = torch.softmax(linear(x, W[p + "gate.weight"]), dim=-1)
    choice = probs + W[p + "moe_statics.e_score_correction_bias"].reshape(1, -1)
    MARGINS.topk(choice, k)
    ids = torch.topk(choice, k, dim=-1).indices
    w = probs.gather(1, ids)
    w = w / torch.clamp(w.sum(dim=-1, keepdim=True), min=value(cfg, "moe_norm_min"))
    out = experts_swiglu(x, W, p, ("gate_proj", "up_proj", "down_proj"), ids, w)
    if value(cfg, "moe_num_shared_experts"):
        out = out + swiglu_mlp(x, W, p + "shared_experts.")
    return out


def moe_granite(cfg, W, p, x, li):
    """Granite-MoE (JetMoE's gating): top-k of the router logits, softmax over those k; experts fused in
    input_linear [E, 2F, D] (first F rows gate, next F up) and output_linear [E, D, F]; plus the ungated
    shared MLP of granitemoeshared (input_linear [2Fs, D] split the same way)."""
    m = p + "block_sparse_moe."
    k = cfg["num_experts_per_tok"]
    logits = linear(x, W[m + "router.layer.weight"])
    MARGINS.topk(logits, k)
    top, ids = torch.topk(logits, k, dim=-1)
    w = torch.softmax(top, dim=-1)
    wi, wo = W[m + "input_linear.weight"], W[m + "output_linear.weight"]
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(ids[t, j])
            g, u = (x[t] @ wi[e].t()).chunk(2, dim=-1)
            out[t] += w[t, j] * ((silu(g) * u) @ wo[e].t())
    s = "model.layers.%d.shared_mlp." % li
    if s + "input_linear.weight" in W:
        g, u = linear(x, W[s + "input_linear.weight"]).chunk(2, dim=-1)
        out = out + linear(silu(g) * u, W[s + "output_linear.weight"])
    return out


def sparsemixer(logits, eps):
    """PhiMoE's sparsemixer in its inference form (transformers' sparsemixer with training=False), top-2:
    expert 1 is the argmax; its weight the softmax, at the max, over the logits whose relative distance
    (max - l) / max(|l|, max) is at most 2 eps; expert 2 the same among the others."""
    def one(scores, masked):
        m, ind = masked.max(dim=-1, keepdim=True)
        factor = scores.abs().clamp(min=m)
        ratio = (m - scores) / factor
        # every mask decision must be clear of the threshold, or an f32 engine may take the other side
        gap = (ratio - 2 * eps).abs().masked_fill(torch.isinf(masked), math.inf)
        MARGINS.routing = min(MARGINS.routing, float(gap.min())) if MARGINS.enabled else MARGINS.routing
        gates = torch.softmax(masked.masked_fill(ratio > 2 * eps, float("-inf")), dim=-1)
        return ind, gates.gather(-1, ind)
    MARGINS.topk(logits, 1)
    MARGINS.topk(logits, 2)
    ind1, w1 = one(logits, logits)
    ind2, w2 = one(logits, torch.scatter(logits, -1, ind1, float("-inf")))
    return torch.cat([ind1, ind2], dim=-1), torch.cat([w1, w2], dim=-1)


def moe_phimoe(cfg, W, p, x, li):
    p = p + "block_sparse_moe."
    ids, w = sparsemixer(linear(x, W[p + "gate.weight"]), value(cfg, "router_jitter_noise"))
    return experts_swiglu(x, W, p, ("w1", "w3", "w2"), ids, w)


def ernie_is_moe(cfg, li):
    end = value(cfg, "moe_layer_end_index")
    end = cfg["num_hidden_layers"] - 1 if end == -1 else end
    return (li + 1) % value(cfg, "moe_layer_interval") == 0 and value(cfg, "moe_layer_start_index") <= li <= end


CLAMP_COUNT = [0]


def moe_gpt_oss(cfg, W, p, x):
    p = p + "mlp."
    k = cfg["num_experts_per_tok"]
    logits = linear(x, W[p + "router.weight"], W[p + "router.bias"])  # [T, E]
    MARGINS.topk(logits, k)
    top, ids = torch.topk(logits, k, dim=-1)
    w = torch.softmax(top, dim=-1)
    limit, alpha = cfg["swiglu_limit"], 1.702
    gu_w, gu_b = W[p + "experts.gate_up_proj"], W[p + "experts.gate_up_proj_bias"]
    dn_w, dn_b = W[p + "experts.down_proj"], W[p + "experts.down_proj_bias"]
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(ids[t, j])
            gu = x[t] @ gu_w[e] + gu_b[e]  # [2F]
            gate, up = gu[0::2], gu[1::2]
            CLAMP_COUNT[0] += int((gate > limit).sum() + (up.abs() > limit).sum())
            gate = gate.clamp(max=limit)
            up = up.clamp(min=-limit, max=limit)
            glu = gate * torch.sigmoid(gate * alpha)
            out[t] += w[t, j] * ((up + 1) * glu @ dn_w[e] + dn_b[e])
    return out


def dense_mlp(cfg, W, p, x):
    return swiglu_mlp(x, W, p + ("feed_forward." if cfg["model_type"] == "llama4_text" else "mlp."))


def moe_llama4(cfg, W, p, x):
    """Llama 4 text MoE as fixed by transformers PR #40609: top-k of the router logits, each chosen
    expert fed its token scaled by sigmoid(logit) (the score multiplies the expert's input, and for the
    right (token, expert) pair), gate_up_proj [E, D, 2F] (gate the first F columns, up the last F),
    down_proj [E, F, D], plus the shared expert on the unscaled token."""
    p = p + "feed_forward."
    k = cfg["num_experts_per_tok"]
    logits = linear(x, W[p + "router.weight"])
    MARGINS.topk(logits, k)
    top, ids = torch.topk(logits, k, dim=-1)
    scores = torch.sigmoid(top)
    gu_w, dn_w = W[p + "experts.gate_up_proj"], W[p + "experts.down_proj"]
    out = swiglu_mlp(x, W, p + "shared_expert.")
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(ids[t, j])
            gate, up = ((x[t] * scores[t, j]) @ gu_w[e]).chunk(2, dim=-1)
            out[t] = out[t] + (up * silu(gate)) @ dn_w[e]
    return out


# ---------------------------------------------------------------------------------------------
# the model


class Family:
    def __init__(self, name, attention, mlp, qk_norm=None):
        self.name, self.attention, self.mlp, self.qk_norm = name, attention, mlp, qk_norm


def forward_dbrx(cfg, W, ids, cache, start, hidden_out=None):
    """transformers' DBRX: LayerNorm without bias (eps 1e-5), fused Wqkv clamped to +-clip_qkv, half-split
    RoPE, softmax router whose top-k weights are divided by their sum (moe_normalize_expert_weights 1),
    experts w1 / v1 [E*F, D] (gate / up rows) and w2 [E*F, D] (down, transposed: out = h @ w2_e)."""
    D, H = cfg["d_model"], cfg["n_heads"]
    Hkv, Dh = dbrx_value(cfg, "attn_config", "kv_n_heads"), D // H
    clip = dbrx_value(cfg, "attn_config", "clip_qkv")
    E, F = dbrx_value(cfg, "ffn_config", "moe_num_experts"), dbrx_value(cfg, "ffn_config", "ffn_hidden_size")
    k = dbrx_value(cfg, "ffn_config", "moe_top_k")
    norm_p = dbrx_value(cfg, "ffn_config", "moe_normalize_expert_weights")
    ln = lambda x, name: torch.nn.functional.layer_norm(x, (D,), W[name + ".weight"], None, 1e-5)
    T = ids.shape[0]
    pos = torch.arange(start, start + T)
    h = W["transformer.wte.weight"][ids]
    if hidden_out is not None:
        hidden_out.append(h.clone())
    inv_freq, att = rope_params({"rope_theta": dbrx_value(cfg, "attn_config", "rope_theta")}, Dh)
    cos, sin = cos_sin(inv_freq, att, pos)
    for li in range(cfg["n_layers"]):
        p = "transformer.blocks.%d." % li
        qkv = linear(ln(h, p + "norm_attn_norm.norm_1"), W[p + "norm_attn_norm.attn.Wqkv.weight"])
        if clip:
            qkv = qkv.clamp(min=-clip, max=clip)
        q, kk, v = qkv.split([D, Hkv * Dh, Hkv * Dh], dim=-1)
        q = rope_half(q.view(T, H, Dh).transpose(0, 1), cos, sin)
        kk = rope_half(kk.view(T, Hkv, Dh).transpose(0, 1), cos, sin)
        kk, vv = cache_append(cache, li, kk, v.view(T, Hkv, Dh).transpose(0, 1))
        o = attend(q, kk, vv, pos, torch.arange(kk.shape[1]), Dh ** -0.5)
        h = h + linear(o, W[p + "norm_attn_norm.attn.out_proj.weight"])
        x = ln(h, p + "norm_attn_norm.norm_2")
        probs = torch.softmax(linear(x, W[p + "ffn.router.layer.weight"]), dim=-1)
        MARGINS.topk(probs, k)
        w, sel = torch.topk(probs, k, dim=-1)
        if norm_p is not None:
            w = w / torch.norm(w, p=norm_p, dim=-1, keepdim=True)
        w1 = W[p + "ffn.experts.mlp.w1"].view(E, F, D)
        v1 = W[p + "ffn.experts.mlp.v1"].view(E, F, D)
        w2 = W[p + "ffn.experts.mlp.w2"].view(E, F, D)
        out = torch.zeros_like(x)
        for t in range(T):
            for j in range(k):
                e = int(sel[t, j])
                out[t] += w[t, j] * ((silu(x[t] @ w1[e].t()) * (x[t] @ v1[e].t())) @ w2[e])
        h = h + out
        if hidden_out is not None:
            hidden_out.append(h.clone())
    return linear(ln(h, "transformer.norm_f"), W["lm_head.weight"])


def block_norm(cfg, W, name, x):
    """RMSNorm, or PhiMoE's LayerNorm with weight and bias (eps = rms_norm_eps)."""
    if cfg["model_type"] == "phimoe":
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), W[name + ".weight"], W[name + ".bias"],
                                              cfg["rms_norm_eps"])
    return rms_norm(x, W[name + ".weight"], cfg["rms_norm_eps"])


def forward(cfg, W, fam, ids, cache, start, hidden_out=None):
    """ids [T] at positions start..start+T-1; cache: dict layer -> (k, v). Returns logits [T, V]."""
    if cfg["model_type"] == "dbrx":
        return forward_dbrx(cfg, W, ids, cache, start, hidden_out)
    if cfg["model_type"] == "minimax":
        from minimax_reference import forward_minimax  # imports this module's building blocks
        return forward_minimax(cfg, W, ids, cache, start, hidden_out)
    if cfg["model_type"] == "jetmoe":
        from jetmoe_reference import forward_jetmoe  # imports this module's building blocks
        return forward_jetmoe(cfg, W, ids, cache, start, hidden_out)
    pos = torch.arange(start, start + ids.shape[0])
    granite = cfg["model_type"].startswith("granitemoe")  # embedding / residual / logits multipliers
    h = W["model.embed_tokens.weight"][ids]  # [T, D]
    if granite:
        h = h * value(cfg, "embedding_multiplier")
    r = value(cfg, "residual_multiplier") if granite else 1.0
    if hidden_out is not None:
        hidden_out.append(h.clone())
    for li in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % li
        a = fam.attention(cfg, W, p + "self_attn.", block_norm(cfg, W, p + "input_layernorm", h), pos, cache, li,
                          fam)
        h = h + a * r
        m = fam.mlp(cfg, W, p, block_norm(cfg, W, p + "post_attention_layernorm", h), li)
        h = h + m * r
        if hidden_out is not None:
            hidden_out.append(h.clone())
    h = block_norm(cfg, W, "model.norm", h)
    head = W["model.embed_tokens.weight"] if value(cfg, "tie_word_embeddings") else W["lm_head.weight"]
    logits = linear(h, head, W.get("lm_head.bias"))
    return logits / value(cfg, "logits_scaling") if granite else logits
