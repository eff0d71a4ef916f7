#!/usr/bin/env python3
"""PyTorch reference of the `moe train` model (Qwen3-MoE semantics, with the OLMoE and Mixtral
variants, and the DeepSeek-V3 variant, written in plain torch).

Writes tests/reference/fixtures/train/: the initial weights (HF names), the token batches of
10 steps, and the losses of 10 AdamW steps for two balancing set-ups (aux + z loss; bias
update), for Qwen3-MoE (init.safetensors, expected.json) and DeepSeek-V3 (init_v3.safetensors,
expected_v3.json). tests/train/reference_test.cc replays them and requires a match within 1e-4
relative. Fine-tuning (`moe train --init DIR`): finetune_<family>/ holds a Hugging Face checkpoint
folder (config.json + model.safetensors in bfloat16) per family (qwen3_moe, olmoe, mixtral,
deepseek_v3) and expected.json with the losses of 5 AdamW steps from those weights (read as float32);
tests/train/finetune_test.cc loads the folders through the trainer's --init loader.
`--bench` instead times training steps (tokens/s) for scripts/train-bench.sh.
"""
import argparse, json, math, os, sys, time

import torch
import torch.nn.functional as F

from st_write import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "train")


class Cfg:
    def __init__(self, **kw):
        self.n_layer, self.d_model, self.n_head, self.n_kv_head, self.head_dim = 2, 32, 4, 2, 8
        self.n_expert, self.top_k, self.d_ff, self.vocab, self.max_seq = 4, 2, 32, 256, 64
        self.rope_theta, self.eps, self.norm_topk = 10000.0, 1e-6, True
        self.family = "qwen3_moe"  # or olmoe (full-width QK-norm), mixtral (none; block_sparse_moe names)
        self.__dict__.update(kw)

    def hf(self):
        if self.family == "olmoe":
            return {"architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "vocab_size": self.vocab,
                    "hidden_size": self.d_model, "num_hidden_layers": self.n_layer,
                    "num_attention_heads": self.n_head, "num_key_value_heads": self.n_kv_head,
                    "num_experts": self.n_expert, "num_experts_per_tok": self.top_k, "intermediate_size": self.d_ff,
                    "norm_topk_prob": self.norm_topk, "max_position_embeddings": self.max_seq,
                    "rope_theta": self.rope_theta, "rms_norm_eps": self.eps, "hidden_act": "silu", "clip_qkv": None,
                    "tie_word_embeddings": False}
        if self.family == "mixtral":
            return {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": self.vocab,
                    "hidden_size": self.d_model, "num_hidden_layers": self.n_layer,
                    "num_attention_heads": self.n_head, "num_key_value_heads": self.n_kv_head,
                    "head_dim": self.head_dim, "num_local_experts": self.n_expert, "num_experts_per_tok": self.top_k,
                    "intermediate_size": self.d_ff, "max_position_embeddings": self.max_seq,
                    "rope_theta": self.rope_theta, "rms_norm_eps": self.eps, "hidden_act": "silu",
                    "sliding_window": None, "tie_word_embeddings": False}
        return {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": self.vocab,
                "hidden_size": self.d_model, "num_hidden_layers": self.n_layer,
                "num_attention_heads": self.n_head, "num_key_value_heads": self.n_kv_head,
                "head_dim": self.head_dim, "num_experts": self.n_expert, "num_experts_per_tok": self.top_k,
                "moe_intermediate_size": self.d_ff, "intermediate_size": self.d_ff, "decoder_sparse_step": 1,
                "mlp_only_layers": [], "norm_topk_prob": self.norm_topk, "max_position_embeddings": self.max_seq,
                "rope_theta": self.rope_theta, "rms_norm_eps": self.eps, "hidden_act": "silu",
                "tie_word_embeddings": False}


def expert_names(c, p, e):
    """(gate, up, down) weight names of expert e of the layer with prefix p."""
    if c.family == "mixtral":
        x = f"{p}block_sparse_moe.experts.{e}."
        return x + "w1.weight", x + "w3.weight", x + "w2.weight"
    x = f"{p}mlp.experts.{e}."
    return x + "gate_proj.weight", x + "up_proj.weight", x + "down_proj.weight"


def router_name(c, p):
    return p + ("block_sparse_moe.gate.weight" if c.family == "mixtral" else "mlp.gate.weight")


def param_shapes(c):
    D, Dh, Fd = c.d_model, c.head_dim, c.d_ff
    QD, KD = c.n_head * Dh, c.n_kv_head * Dh
    norms = {"qwen3_moe": [(Dh,), (Dh,)], "olmoe": [(QD,), (KD,)], "mixtral": []}[c.family]
    out = [("model.embed_tokens.weight", (c.vocab, D))]
    for l in range(c.n_layer):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (D,)), (p + "self_attn.q_proj.weight", (QD, D)),
                (p + "self_attn.k_proj.weight", (KD, D)), (p + "self_attn.v_proj.weight", (KD, D)),
                (p + "self_attn.o_proj.weight", (D, QD))]
        out += [(p + "self_attn." + n, s) for n, s in zip(["q_norm.weight", "k_norm.weight"], norms)]
        out += [(p + "post_attention_layernorm.weight", (D,)), (router_name(c, p), (c.n_expert, D))]
        for e in range(c.n_expert):
            g, u, d = expert_names(c, p, e)
            out += [(g, (Fd, D)), (u, (Fd, D)), (d, (D, Fd))]
    out += [("model.norm.weight", (D,)), ("lm_head.weight", (c.vocab, D))]
    return out


def init_params(c, seed, shapes=None):
    g = torch.Generator().manual_seed(seed)
    P = {}
    for name, shape in (shapes or param_shapes(c)):
        if len(shape) == 1:
            # norm weights: near one (not exactly, so their gradients are exercised)
            P[name] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            P[name] = 0.02 * torch.randn(shape, generator=g)
    return {k: v.float().requires_grad_(True) for k, v in P.items()}


def rmsnorm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rope(x, theta):  # x [B, S, H, Dh], HF rotate_half layout
    S, Dh = x.shape[1], x.shape[3]
    inv = 1.0 / (theta ** (torch.arange(0, Dh, 2, dtype=torch.int64).float() / Dh))
    f = torch.arange(S).float()[:, None] * inv[None, :]
    emb = torch.cat([f, f], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    x1, x2 = x[..., : Dh // 2], x[..., Dh // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attention(c, P, p, x):
    B, S, D = x.shape
    H, Hkv, Dh = c.n_head, c.n_kv_head, c.head_dim
    q = x @ P[p + "self_attn.q_proj.weight"].T
    k = x @ P[p + "self_attn.k_proj.weight"].T
    v = (x @ P[p + "self_attn.v_proj.weight"].T).view(B, S, Hkv, Dh)
    if c.family == "olmoe":  # OlmoeAttention: RMSNorm over the whole projection, before the head split
        q, k = rmsnorm(q, P[p + "self_attn.q_norm.weight"], c.eps), rmsnorm(k, P[p + "self_attn.k_norm.weight"], c.eps)
    q, k = q.view(B, S, H, Dh), k.view(B, S, Hkv, Dh)
    if c.family == "qwen3_moe":  # Qwen3MoeAttention: RMSNorm per head
        q, k = rmsnorm(q, P[p + "self_attn.q_norm.weight"], c.eps), rmsnorm(k, P[p + "self_attn.k_norm.weight"], c.eps)
    q = rope(q, c.rope_theta).transpose(1, 2)
    k = rope(k, c.rope_theta).transpose(1, 2)
    v = v.transpose(1, 2)
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)
    mask = torch.triu(torch.ones(S, S, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float("-inf"))
    o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, S, H * Dh)
    return o @ P[p + "self_attn.o_proj.weight"].T


def moe_block(c, P, p, x, bias, B, S):
    N, D = x.shape
    E, K = c.n_expert, c.top_k
    logits = x @ P[router_name(c, p)].T
    scores = logits.softmax(-1)
    sel = scores.detach() + (bias[None, :] if bias is not None else 0.0)
    ids = sel.topk(K, dim=-1).indices
    if c.family == "mixtral":  # MixtralSparseMoeBlock: softmax, top-k, divide by the chosen sum
        raw = scores.gather(1, ids)
        w = raw / raw.sum(-1, keepdim=True)
    else:
        raw = scores.gather(1, ids)
        w = raw / raw.sum(-1, keepdim=True) if c.norm_topk else raw
    out = torch.zeros_like(x)
    for e in range(E):
        tok, kk = (ids == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        xe = x[tok]
        g, u, d = expert_names(c, p, e)
        h = F.silu(xe @ P[g].T) * (xe @ P[u].T)
        out = out.index_add(0, tok, (h @ P[d].T) * w[tok, kk][:, None])
    counts = torch.bincount(ids.flatten(), minlength=E).float()

    def aux_of(sc, cnt, n):
        return E * ((cnt / (n * K)) * sc.mean(0)).sum()

    aux = aux_of(scores, counts, N)
    seq_aux = sum(aux_of(scores[b * S:(b + 1) * S], torch.bincount(ids[b * S:(b + 1) * S].flatten(), minlength=E).float(), S)
                  for b in range(B)) / B
    z = torch.logsumexp(logits, -1).pow(2).mean()
    return out, aux, seq_aux, z, counts


def forward(c, P, bal, biases, tokens, targets):
    B, S = tokens.shape
    x = P["model.embed_tokens.weight"][tokens]
    aux = seq_aux = z = 0.0
    counts = []
    for l in range(c.n_layer):
        p = f"model.layers.{l}."
        x = x + attention(c, P, p, rmsnorm(x, P[p + "input_layernorm.weight"], c.eps))
        h = rmsnorm(x, P[p + "post_attention_layernorm.weight"], c.eps).view(B * S, -1)
        m, a, sa, zz, cnt = moe_block(c, P, p, h, biases[l] if bal.get("bias_rate", 0) > 0 else None, B, S)
        x = x + m.view(B, S, -1)
        aux, seq_aux, z = aux + a / c.n_layer, seq_aux + sa / c.n_layer, z + zz / c.n_layer
        counts.append(cnt)
    logits = rmsnorm(x, P["model.norm.weight"], c.eps) @ P["lm_head.weight"].T
    ce = F.cross_entropy(logits.view(-1, c.vocab), targets.view(-1))
    total = ce + bal.get("aux", 0) * aux + bal.get("seq_aux", 0) * seq_aux + bal.get("z", 0) * z
    return total, counts


def lr_at(o, step):
    if o["warmup"] > 0 and step < o["warmup"]:
        return o["lr"] * (step + 1) / o["warmup"]
    prog = min(1.0, (step - o["warmup"]) / (o["total"] - o["warmup"]))
    floor = o["lr"] * o["min_lr_ratio"]
    return floor + 0.5 * (1 + math.cos(math.pi * prog)) * (o["lr"] - floor)


def train_losses(c, P, bal, opt_o, batches, fwd=None, biases=None):
    decay = [v for k, v in P.items() if v.dim() >= 2]
    no_decay = [v for k, v in P.items() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": opt_o["wd"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=opt_o["lr"], betas=(0.9, 0.95), eps=1e-8)
    biases = biases or [torch.zeros(c.n_expert) for _ in range(c.n_layer)]
    losses = []
    for step, (tok, tgt) in enumerate(batches):
        loss, counts = (fwd or forward)(c, P, bal, biases, tok, tgt)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), opt_o["clip"])
        for gr in opt.param_groups:
            gr["lr"] = lr_at(opt_o, step)
        opt.step()
        if bal.get("bias_rate", 0) > 0:
            for l in range(c.n_layer):
                if counts[l] is not None:
                    biases[l] += bal["bias_rate"] * torch.sign(counts[l].mean() - counts[l])
        losses.append(loss.item())
    return losses


# ---------------------------------------------------------------------------------------------
# DeepSeek-V3 variant (HF DeepseekV3ForCausalLM semantics): MLA without YaRN, sigmoid router with
# e_score_correction_bias for the selection only (n_group = topk_group = 1), weights from the
# unbiased scores (renormalized + 1e-20 when norm_topk_prob and K > 1, times
# routed_scaling_factor), shared experts, dense first layers. The aux losses use P = s / sum(s).


class V3Cfg:
    def __init__(self, **kw):
        self.n_layer, self.d_model, self.n_head, self.q_lora, self.kv_lora = 3, 32, 4, 0, 16
        self.nope, self.rope, self.v_dim = 8, 4, 8
        self.n_expert, self.top_k, self.d_ff, self.n_shared, self.first_dense, self.d_ff_dense = 4, 2, 16, 1, 1, 48
        self.vocab, self.max_seq, self.rope_theta, self.eps, self.norm_topk, self.scaling = 256, 64, 10000.0, 1e-6, True, 1.5
        self.__dict__.update(kw)

    def n_moe(self):
        return self.n_layer - self.first_dense

    def hf(self):
        return {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "vocab_size": self.vocab,
                "hidden_size": self.d_model, "intermediate_size": self.d_ff_dense,
                "moe_intermediate_size": self.d_ff, "num_hidden_layers": self.n_layer,
                "num_attention_heads": self.n_head, "num_key_value_heads": self.n_head,
                "n_shared_experts": self.n_shared, "n_routed_experts": self.n_expert,
                "num_experts_per_tok": self.top_k, "routed_scaling_factor": self.scaling,
                "kv_lora_rank": self.kv_lora, "q_lora_rank": self.q_lora or None,
                "qk_rope_head_dim": self.rope, "qk_nope_head_dim": self.nope, "v_head_dim": self.v_dim,
                "topk_method": "noaux_tc", "scoring_func": "sigmoid", "n_group": 1, "topk_group": 1,
                "norm_topk_prob": self.norm_topk, "first_k_dense_replace": self.first_dense, "moe_layer_freq": 1,
                "num_nextn_predict_layers": 0, "max_position_embeddings": self.max_seq,
                "rope_theta": self.rope_theta, "rope_scaling": None, "rope_interleave": True,
                "rms_norm_eps": self.eps, "hidden_act": "silu", "tie_word_embeddings": False}


def v3_param_shapes(c):
    D, H, qk = c.d_model, c.n_head, c.nope + c.rope
    out = [("model.embed_tokens.weight", (c.vocab, D))]
    for l in range(c.n_layer):
        p, a = f"model.layers.{l}.", f"model.layers.{l}.self_attn."
        out.append((p + "input_layernorm.weight", (D,)))
        if c.q_lora:
            out += [(a + "q_a_proj.weight", (c.q_lora, D)), (a + "q_a_layernorm.weight", (c.q_lora,)),
                    (a + "q_b_proj.weight", (H * qk, c.q_lora))]
        else:
            out.append((a + "q_proj.weight", (H * qk, D)))
        out += [(a + "kv_a_proj_with_mqa.weight", (c.kv_lora + c.rope, D)), (a + "kv_a_layernorm.weight", (c.kv_lora,)),
                (a + "kv_b_proj.weight", (H * (c.nope + c.v_dim), c.kv_lora)), (a + "o_proj.weight", (D, H * c.v_dim)),
                (p + "post_attention_layernorm.weight", (D,))]
        m = p + "mlp."
        if l < c.first_dense:
            out += [(m + "gate_proj.weight", (c.d_ff_dense, D)), (m + "up_proj.weight", (c.d_ff_dense, D)),
                    (m + "down_proj.weight", (D, c.d_ff_dense))]
            continue
        out.append((m + "gate.weight", (c.n_expert, D)))
        for e in range(c.n_expert):
            x = f"{m}experts.{e}."
            out += [(x + "gate_proj.weight", (c.d_ff, D)), (x + "up_proj.weight", (c.d_ff, D)),
                    (x + "down_proj.weight", (D, c.d_ff))]
        if c.n_shared:
            Fs = c.d_ff * c.n_shared
            out += [(m + "shared_experts.gate_proj.weight", (Fs, D)), (m + "shared_experts.up_proj.weight", (Fs, D)),
                    (m + "shared_experts.down_proj.weight", (D, Fs))]
    out += [("model.norm.weight", (D,)), ("lm_head.weight", (c.vocab, D))]
    return out


def rope_deepseek(x, theta):  # x [B, S, H, d] in DeepSeek's interleaved layout
    S, d = x.shape[1], x.shape[3]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    f = torch.arange(S).float()[:, None] * inv[None, :]
    emb = torch.cat([f, f], -1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    x = x.reshape(*x.shape[:-1], d // 2, 2).transpose(-1, -2).reshape(x.shape)  # de-interleave, as HF
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def mla(c, P, p, x):
    B, S, D = x.shape
    H, qk = c.n_head, c.nope + c.rope
    a = p + "self_attn."
    if c.q_lora:
        q = rmsnorm(x @ P[a + "q_a_proj.weight"].T, P[a + "q_a_layernorm.weight"], c.eps) @ P[a + "q_b_proj.weight"].T
    else:
        q = x @ P[a + "q_proj.weight"].T
    q = q.view(B, S, H, qk)
    q_nope, q_pe = q[..., : c.nope], q[..., c.nope:]
    ckv = x @ P[a + "kv_a_proj_with_mqa.weight"].T
    lat, k_pe = ckv[..., : c.kv_lora], ckv[..., c.kv_lora:]
    kv = (rmsnorm(lat, P[a + "kv_a_layernorm.weight"], c.eps) @ P[a + "kv_b_proj.weight"].T).view(B, S, H, -1)
    k_nope, v = kv[..., : c.nope], kv[..., c.nope:]
    q_pe = rope_deepseek(q_pe, c.rope_theta)
    k_pe = rope_deepseek(k_pe.view(B, S, 1, c.rope), c.rope_theta)
    qs = torch.cat([q_nope, q_pe], -1).transpose(1, 2)
    ks = torch.cat([k_nope, k_pe.expand(B, S, H, c.rope)], -1).transpose(1, 2)
    v = v.transpose(1, 2)
    s = (qs @ ks.transpose(-1, -2)) * qk ** -0.5
    mask = torch.triu(torch.ones(S, S, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float("-inf"))
    o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, S, H * c.v_dim)
    return o @ P[a + "o_proj.weight"].T


def swiglu(P, pre, x):
    return (F.silu(x @ P[pre + "gate_proj.weight"].T) * (x @ P[pre + "up_proj.weight"].T)) @ P[pre + "down_proj.weight"].T


MARGIN = [float("inf")]  # smallest gap between the K-th and (K+1)-th selection score seen


def moe_v3(c, P, p, x, bias, B, S):
    N, D = x.shape
    E, K = c.n_expert, c.top_k
    m = p + "mlp."
    logits = x @ P[m + "gate.weight"].T
    scores = logits.sigmoid()
    sel = scores.detach() + bias[None, :]
    top = sel.topk(K + 1 if K < E else K, dim=-1).values
    if K < E:
        MARGIN[0] = min(MARGIN[0], float((top[:, K - 1] - top[:, K]).min()))
    ids = sel.topk(K, dim=-1).indices
    w = scores.gather(1, ids)
    if c.norm_topk and K > 1:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * c.scaling
    out = torch.zeros_like(x)
    for e in range(E):
        tok, kk = (ids == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        out = out.index_add(0, tok, swiglu(P, f"{m}experts.{e}.", x[tok]) * w[tok, kk][:, None])
    if c.n_shared:
        out = out + swiglu(P, m + "shared_experts.", x)
    counts = torch.bincount(ids.flatten(), minlength=E).float()
    probs = scores / scores.sum(-1, keepdim=True)

    def aux_of(pr, cnt, n):
        return E * ((cnt / (n * K)) * pr.mean(0)).sum()

    aux = aux_of(probs, counts, N)
    seq_aux = sum(aux_of(probs[b * S:(b + 1) * S], torch.bincount(ids[b * S:(b + 1) * S].flatten(), minlength=E).float(), S)
                  for b in range(B)) / B
    z = torch.logsumexp(logits, -1).pow(2).mean()
    return out, aux, seq_aux, z, counts


def forward_v3(c, P, bal, biases, tokens, targets):
    B, S = tokens.shape
    x = P["model.embed_tokens.weight"][tokens]
    aux = seq_aux = z = 0.0
    counts = []
    for l in range(c.n_layer):
        p = f"model.layers.{l}."
        x = x + mla(c, P, p, rmsnorm(x, P[p + "input_layernorm.weight"], c.eps))
        h = rmsnorm(x, P[p + "post_attention_layernorm.weight"], c.eps).view(B * S, -1)
        if l < c.first_dense:
            x = x + swiglu(P, p + "mlp.", h).view(B, S, -1)
            counts.append(None)
            continue
        mo, a, sa, zz, cnt = moe_v3(c, P, p, h, biases[l], B, S)
        x = x + mo.view(B, S, -1)
        aux, seq_aux, z = aux + a / c.n_moe(), seq_aux + sa / c.n_moe(), z + zz / c.n_moe()
        counts.append(cnt)
    logits = rmsnorm(x, P["model.norm.weight"], c.eps) @ P["lm_head.weight"].T
    ce = F.cross_entropy(logits.view(-1, c.vocab), targets.view(-1))
    total = ce + bal.get("aux", 0) * aux + bal.get("seq_aux", 0) * seq_aux + bal.get("z", 0) * z
    return total, counts


OPT = {"lr": 1e-2, "warmup": 3, "total": 10, "min_lr_ratio": 0.1, "wd": 0.1, "clip": 1.0}
SETUPS = {"aux": {"aux": 0.01, "z": 0.001}, "bias": {"bias_rate": 0.01}}


def make_fixtures():
    torch.manual_seed(0)
    c = Cfg()
    B, S, steps = 4, 16, 10
    text = open(os.path.join(HERE, "..", "..", "data", "corpus", "kjv.txt"), "rb").read()[:20000]
    g = torch.Generator().manual_seed(1)
    starts = torch.randint(0, len(text) - S - 1, (steps, B), generator=g)
    data = torch.tensor(list(text), dtype=torch.int32)
    tok = torch.stack([torch.stack([data[s:s + S] for s in row]) for row in starts])
    tgt = torch.stack([torch.stack([data[s + 1:s + S + 1] for s in row]) for row in starts])
    os.makedirs(OUT, exist_ok=True)
    P0 = init_params(c, 7)
    write_safetensors(os.path.join(OUT, "init.safetensors"), P0)
    write_safetensors(os.path.join(OUT, "batches.safetensors"), {"tokens": tok, "targets": tgt})
    result = {"config": c.hf(), "optimizer": OPT, "batch": B, "seq": S, "setups": {}}
    for name, bal in SETUPS.items():
        P = {k: v.detach().clone().requires_grad_(True) for k, v in P0.items()}
        losses = train_losses(c, P, bal, OPT, [(tok[i].long(), tgt[i].long()) for i in range(steps)])
        result["setups"][name] = {"balance": bal, "losses": losses}
        print(name, ["%.6f" % l for l in losses])
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(result, f, indent=1)
    make_v3_fixtures(tok, tgt, steps, B, S)
    make_finetune_fixtures(tok, tgt, B, S)


# Aux + z loss and the bias update on the DeepSeek-V3 variant (the batches are shared).
SETUPS_V3 = {"aux": {"aux": 0.01, "seq_aux": 0.01, "z": 0.001}, "bias": {"bias_rate": 0.01}}


def make_v3_fixtures(tok, tgt, steps, B, S):
    c = V3Cfg()
    P0 = init_params(c, 11, v3_param_shapes(c))
    write_safetensors(os.path.join(OUT, "init_v3.safetensors"), P0)
    result = {"config": c.hf(), "optimizer": OPT, "batch": B, "seq": S, "setups": {}}
    for name, bal in SETUPS_V3.items():
        P = {k: v.detach().clone().requires_grad_(True) for k, v in P0.items()}
        losses = train_losses(c, P, bal, OPT, [(tok[i].long(), tgt[i].long()) for i in range(steps)], forward_v3)
        result["setups"][name] = {"balance": bal, "losses": losses}
        print("v3", name, ["%.6f" % l for l in losses])
    # float32 rounding cannot flip a routing choice when the selection gap is this large
    assert MARGIN[0] > 1e-5, MARGIN[0]
    result["min_selection_margin"] = MARGIN[0]
    with open(os.path.join(OUT, "expected_v3.json"), "w") as f:
        json.dump(result, f, indent=1)


# Fine-tuning fixtures: one HF checkpoint folder per family, bfloat16 weights (the trainer reads them as
# float32, and so does this reference), and the losses of 5 steps with aux + z loss.
FINETUNE_STEPS = 5
FINETUNE_BAL = {"aux": 0.01, "z": 0.001}


def write_checkpoint_folder(name, hf, P, extra):
    d = os.path.join(OUT, "finetune_" + name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(hf, torch_dtype="bfloat16"), f, indent=1)
    tensors = {k: v.detach().bfloat16() for k, v in P.items()}
    tensors.update(extra)
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    return {k: v.detach().bfloat16().float().requires_grad_(True) for k, v in P.items()}


def make_finetune_fixtures(tok, tgt, B, S):
    result = {"optimizer": dict(OPT, total=FINETUNE_STEPS), "batch": B, "seq": S, "balance": FINETUNE_BAL,
              "families": {}}
    batches = [(tok[i].long(), tgt[i].long()) for i in range(FINETUNE_STEPS)]
    runs = [("qwen3_moe", Cfg(n_layer=1), None), ("olmoe", Cfg(n_layer=1, family="olmoe", n_kv_head=4, norm_topk=False),
                                                  None),
            ("mixtral", Cfg(n_layer=1, family="mixtral", rope_theta=1e6, eps=1e-5), None),
            ("deepseek_v3", V3Cfg(n_layer=2, first_dense=1), forward_v3)]
    for name, c, fwd in runs:
        shapes = v3_param_shapes(c) if fwd else param_shapes(c)
        biases, extra = None, {}
        if fwd:  # DeepSeek-V3: a learned e_score_correction_bias (f32, selection only) in each MoE layer
            g = torch.Generator().manual_seed(17)
            biases = [0.05 * torch.randn(c.n_expert, generator=g) for _ in range(c.n_layer)]
            extra = {f"model.layers.{l}.mlp.gate.e_score_correction_bias": biases[l]
                     for l in range(c.first_dense, c.n_layer)}
        P = write_checkpoint_folder(name, c.hf(), init_params(c, 13, shapes), extra)
        losses = train_losses(c, P, FINETUNE_BAL, result["optimizer"], batches, fwd, biases)
        result["families"][name] = losses
        print("finetune", name, ["%.6f" % l for l in losses])
    with open(os.path.join(OUT, "finetune_expected.json"), "w") as f:
        json.dump(result, f, indent=1)


def bench(a):
    # Intra-op threads = the asked count; no inter-op pool (nothing here forks). The OpenMP wait
    # policy, OpenBLAS threads and core type come from the environment (scripts/train-bench.sh
    # tries several and keeps PyTorch's best).
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    c = Cfg(n_layer=a.layers, d_model=a.d_model, n_head=a.heads, n_kv_head=a.heads, head_dim=a.d_model // a.heads,
            n_expert=a.experts, top_k=a.top_k, d_ff=a.d_ff, max_seq=a.seq)
    P = init_params(c, 1)
    g = torch.Generator().manual_seed(2)
    tok = torch.randint(0, 256, (a.steps + a.warmup, a.batch, a.seq), generator=g)
    times, cpu = [], []
    bal = {"aux": 0.01}
    decay = [v for v in P.values() if v.dim() >= 2]
    opt = torch.optim.AdamW(decay, lr=1e-3)
    biases = [torch.zeros(c.n_expert) for _ in range(c.n_layer)]
    for i in range(a.steps + a.warmup):
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _ = forward(c, P, bal, biases, tok[i], tok[i])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # all threads of the process
    times.sort()
    cpu.sort()
    med, med_cpu = times[len(times) // 2], cpu[len(cpu) // 2]
    tokens = a.batch * a.seq
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                      "median_step_s": med, "tokens_per_s": tokens / med, "median_cpu_s": med_cpu,
                      "tokens_per_cpu_s": tokens / med_cpu}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", action="store_true")
    for k, v in [("threads", 1), ("layers", 2), ("d_model", 128), ("heads", 4), ("experts", 8), ("top_k", 2),
                 ("d_ff", 256), ("batch", 8), ("seq", 128), ("steps", 10), ("warmup", 2)]:
        ap.add_argument("--" + k.replace("_", "-"), dest=k, type=int, default=v)
    a = ap.parse_args()
    bench(a) if a.bench else make_fixtures()
