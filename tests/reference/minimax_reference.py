"""MiniMax-Text-01 (transformers' modeling_minimax.py) in plain torch, for the `minimax` whole-model fixture.

Semantics, written from the modeling code:
- Layer i is lightning attention when layer_types[i] is "linear_attention", else Mixtral's softmax attention
  (q/k/v/o_proj, GQA, RoPE on the whole head or on its first rotary_dim dims, rope_theta). Every layer has Mixtral's MoE
  (block_sparse_moe: softmax over all experts, top-k renormalized, experts w2(silu(w1 x) * w3 x)).
- Residuals are normed: x = input_layernorm(h); h = alpha_attn x + beta_attn attn(x); x =
  post_attention_layernorm(h); h = mlp_alpha x + mlp_beta moe(x), with the full_attn_* or linear_attn_*
  factors by the layer's kind.
- Lightning attention: q, k, v = silu(qkv_proj(x)) split per head as [q | k | v] (head_dim each); per head a
  decay slope s = (2^(-8/H))^(h+1) x (1 - i / (L - 1 + 1e-5) + 1e-5) (float32, as the module's buffer; the
  decays are taken from it in the run's dtype: transformers precomputes the block form's decays in float32,
  which makes its own prefill and decode differ by ~1e-7 relative);
  no softmax and no score scale. The first forward of a layer (no state yet) runs the block form over
  blocks of block_size tokens: intra-block (q k^T * exp(-s (a - b)) for a >= b) v, plus (q * exp(-s (a + 1)))
  S, then S = S exp(-s n) + (k * exp(-s (n - b - 1)))^T v (n the block's length); a later forward (decode)
  runs the recurrence S = exp(-s) S + k^T v, o = q S. The heads' outputs are RMS-normalized together with
  eps 1e-6 (self_attn.norm, built without rms_norm_eps), times sigmoid(output_gate(x)), then out_proj.
"""
import torch

from hf_config import value
from hf_model_reference import DTYPE, Family, gqa_attention, linear, moe_mixtral, rms_norm

ATTN_NORM_EPS = 1e-6


def slope_rate(H, li, L):
    base = 1 / (2 ** (8 / H))
    rate = base ** (torch.arange(H) + 1)  # float32, as MiniMaxLightningAttention.get_slope_rate
    return rate * (1 - li / (L - 1 + 1e-5) + 1e-5)


def lightning(cfg, W, a, x, cache, li):
    T, H = x.shape[0], cfg["num_attention_heads"]
    Dh = cfg.get("head_dim") or cfg["hidden_size"] // H
    B = value(cfg, "block_size")
    qkv = linear(x, W[a + "qkv_proj.weight"])
    qkv = (qkv * torch.sigmoid(qkv)).reshape(T, H, 3 * Dh).transpose(0, 1)  # [H, T, 3 Dh]
    q, k, v = qkv.split(Dh, dim=-1)
    s32 = slope_rate(H, li, cfg["num_hidden_layers"])[:, None, None]  # [H, 1, 1] f32
    s = s32.to(DTYPE[0])
    state = cache.get(("lightning", li))
    out = []
    if state is None:
        state = torch.zeros(H, Dh, Dh, dtype=DTYPE[0])
        r = (torch.arange(B) + 1).to(DTYPE[0])
        q_decay = torch.exp(-s * r[:, None])  # [H, B, 1]
        k_decay = torch.exp(-s * (B - r[:, None]))
        diff = (r[:, None] - r[None, :])[None]
        diag = torch.exp(torch.where(diff >= 0, -s * diff, torch.tensor(float("-inf"), dtype=DTYPE[0])))
        for start in range(0, T, B):
            n = min(B, T - start)
            qb, kb, vb = q[:, start:start + n], k[:, start:start + n], v[:, start:start + n]
            intra = ((qb @ kb.transpose(-1, -2)) * diag[:, :n, :n]) @ vb
            inter = (qb * q_decay[:, :n]) @ state
            out.append(intra + inter)
            state = state * torch.exp(-s * n) + (kb * k_decay[:, -n:]).transpose(-1, -2) @ vb
    else:
        ratio = torch.exp(-s)
        for t in range(T):
            state = ratio * state + k[:, t:t + 1].transpose(-1, -2) @ v[:, t:t + 1]
            out.append(q[:, t:t + 1] @ state)
    cache[("lightning", li)] = state
    o = torch.cat(out, dim=1).transpose(0, 1).reshape(T, H * Dh)
    o = rms_norm(o, W[a + "norm.weight"], ATTN_NORM_EPS)
    o = torch.sigmoid(linear(x, W[a + "output_gate.weight"])) * o
    return linear(o, W[a + "out_proj.weight"])


FULL = Family("minimax", gqa_attention, None)


def forward_minimax(cfg, W, ids, cache, start, hidden_out=None):
    """ids [T] at positions start..start+T-1; cache: dict (KV per softmax layer, state per lightning layer)."""
    pos = torch.arange(start, start + ids.shape[0])
    eps = value(cfg, "rms_norm_eps")
    h = W["model.embed_tokens.weight"][ids]
    if hidden_out is not None:
        hidden_out.append(h.clone())
    for li in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % li
        x = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        if cfg["layer_types"][li] == "linear_attention":
            a = lightning(cfg, W, p + "self_attn.", x, cache, li)
            alpha, beta = value(cfg, "linear_attn_alpha_factor"), value(cfg, "linear_attn_beta_factor")
        else:
            a = gqa_attention(cfg, W, p + "self_attn.", x, pos, cache, li, FULL)
            alpha, beta = value(cfg, "full_attn_alpha_factor"), value(cfg, "full_attn_beta_factor")
        h = x * alpha + a * beta
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        h = x * value(cfg, "mlp_alpha_factor") + moe_mixtral(cfg, W, p, x) * value(cfg, "mlp_beta_factor")
        if hidden_out is not None:
            hidden_out.append(h.clone())
    h = rms_norm(h, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if value(cfg, "tie_word_embeddings") else W["lm_head.weight"]
    return linear(h, head)


def build_minimax(cfg, ini):
    """Random weights in MiniMax's checkpoint layout (Init from make_model_fixtures)."""
    D, V, H, Hkv = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    Dh = cfg.get("head_dim") or D // H
    E, F = cfg["num_local_experts"], cfg["intermediate_size"]
    ini.W["model.embed_tokens.weight"] = ini.randn(V, D)
    ini.lin("lm_head", V, D)
    ini.norm("model.norm", D)
    for li in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % li
        ini.norm(p + "input_layernorm", D)
        ini.norm(p + "post_attention_layernorm", D)
        a = p + "self_attn."
        if cfg["layer_types"][li] == "linear_attention":
            ini.lin(a + "qkv_proj", 3 * H * Dh, D, gain=2.0)
            ini.lin(a + "output_gate", H * Dh, D, gain=2.0)
            ini.lin(a + "out_proj", D, H * Dh)
            ini.norm(a + "norm", H * Dh)
        else:
            ini.lin(a + "q_proj", H * Dh, D, gain=2.0)
            ini.lin(a + "k_proj", Hkv * Dh, D, gain=2.0)
            ini.lin(a + "v_proj", Hkv * Dh, D)
            ini.lin(a + "o_proj", D, H * Dh)
        m = p + "block_sparse_moe."
        ini.lin(m + "gate", E, D, gain=3.0)
        for e in range(E):
            ini.mlp(m + "experts.%d." % e, D, F, ("w1", "w3", "w2"))
    return ini.W
