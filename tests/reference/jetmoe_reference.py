"""JetMoE (transformers' modeling_jetmoe.py) in plain torch, for the `jetmoe` whole-model fixture.

Semantics, written from the modeling code:
- Every block: x = RMSNorm(h) with eps 1e-6 (JetMoeBlock builds its two norms without rms_norm_eps; only the
  final model.norm reads it), h += MoA(x), h += MoE(RMSNorm(h)).
- Both routers (JetMoeTopKGating, `router.layer` Linear without bias): top-k of the f32 logits, weights =
  softmax over those k logits.
- Mixture of attention heads: expert e has a query projection input_linear[e] [Hkv Dh, D] and an output
  projection output_linear[e] [D, Hkv Dh]; kv_proj [2 Hkv Dh, D] gives keys (first half) and values, shared
  by the experts. Token t's slot j (its j-th best expert) yields Hkv query heads: the queries [T, k, Hkv Dh]
  are viewed as H = k Hkv heads, head j Hkv + g. The kv heads are *repeated* k times (key head h is kv head
  h mod Hkv), not interleaved as in GQA. RoPE (half-split, rope_theta, dim kv_channels) on q and k; scores
  scaled by kv_channels^-0.5; causal softmax. The output: sum_j w_j output_linear[e_j] o_j + experts.bias,
  o_j the attention output of slot j's Hkv heads.
- MoE MLP: input_linear [E, 2F, D] (first F rows through the activation, activation_function, then times the
  last F rows), output_linear [E, D, F], weighted by the router and summed, plus mlp.bias [D].
- Tied embeddings by default (JetMoeConfig's tie_word_embeddings is true).
"""
import math

import torch

from hf_config import value
from hf_model_reference import MARGINS, attend, cache_append, cos_sin, linear, rms_norm, rope_half, rope_params

BLOCK_NORM_EPS = 1e-6

ACTIVATIONS = {
    "silu": lambda x: x * torch.sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))),
}


def jetmoe_gating(x, weight, k):
    """JetMoeTopKGating: ids [T, k] of the k best logits (best first) and the softmax over those logits."""
    logits = linear(x, weight)
    MARGINS.topk(logits, k)
    top, ids = torch.topk(logits, k, dim=-1)
    return ids, torch.softmax(top, dim=-1)


def moa(cfg, W, a, x, pos, cache, li):
    T = x.shape[0]
    Hkv, Dh, k = value(cfg, "num_key_value_heads"), value(cfg, "kv_channels"), value(cfg, "num_experts_per_tok")
    ids, w = jetmoe_gating(x, W[a + "experts.router.layer.weight"], k)
    wq, wo = W[a + "experts.input_linear.weight"], W[a + "experts.output_linear.weight"]
    q = torch.stack([torch.stack([x[t] @ wq[int(ids[t, j])].t() for j in range(k)]) for t in range(T)])  # [T, k, Q]
    q = q.reshape(T, k * Hkv, Dh).transpose(0, 1)  # [H, T, Dh], head j Hkv + g
    kk, vv = linear(x, W[a + "kv_proj.weight"]).chunk(2, dim=-1)
    kk = kk.reshape(T, Hkv, Dh).transpose(0, 1)
    vv = vv.reshape(T, Hkv, Dh).transpose(0, 1)
    inv_freq, att = rope_params({"rope_theta": value(cfg, "rope_theta"), "rope_scaling": cfg.get("rope_scaling")}, Dh)
    cos, sin = cos_sin(inv_freq, att, pos)
    q, kk = rope_half(q, cos, sin), rope_half(kk, cos, sin)
    kk, vv = cache_append(cache, li, kk, vv)
    # repeat, not repeat_interleave: query head h reads kv head h mod Hkv (attend's own repeat is 1 here)
    o = attend(q, kk.repeat(k, 1, 1), vv.repeat(k, 1, 1), pos, torch.arange(kk.shape[1]), Dh ** -0.5)
    o = o.reshape(T, k, Hkv * Dh)
    out = torch.zeros_like(x)
    for t in range(T):
        for j in range(k):
            out[t] += w[t, j] * (o[t, j] @ wo[int(ids[t, j])].t())
    return out + W[a + "experts.bias"]


def moe(cfg, W, m, x):
    k = value(cfg, "num_experts_per_tok")
    act = ACTIVATIONS[value(cfg, "activation_function")]
    ids, w = jetmoe_gating(x, W[m + "router.layer.weight"], k)
    wi, wo = W[m + "input_linear.weight"], W[m + "output_linear.weight"]
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(k):
            e = int(ids[t, j])
            g, u = (x[t] @ wi[e].t()).chunk(2, dim=-1)
            out[t] += w[t, j] * ((act(g) * u) @ wo[e].t())
    return out + W[m + "bias"]


def forward_jetmoe(cfg, W, ids, cache, start, hidden_out=None):
    """ids [T] at positions start..start+T-1; cache: dict layer -> (k, v). Returns logits [T, V]."""
    pos = torch.arange(start, start + ids.shape[0])
    h = W["model.embed_tokens.weight"][ids]
    if hidden_out is not None:
        hidden_out.append(h.clone())
    for li in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % li
        h = h + moa(cfg, W, p + "self_attention.", rms_norm(h, W[p + "input_layernorm.weight"], BLOCK_NORM_EPS),
                    pos, cache, li)
        h = h + moe(cfg, W, p + "mlp.", rms_norm(h, W[p + "post_attention_layernorm.weight"], BLOCK_NORM_EPS))
        if hidden_out is not None:
            hidden_out.append(h.clone())
    h = rms_norm(h, W["model.norm.weight"], value(cfg, "rms_norm_eps"))
    head = W["model.embed_tokens.weight"] if value(cfg, "tie_word_embeddings") else W["lm_head.weight"]
    return linear(h, head)


def build_jetmoe(cfg, ini):
    """Random weights in JetMoE's checkpoint layout (Init from make_model_fixtures)."""
    D, V, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    E, F = value(cfg, "num_local_experts"), value(cfg, "intermediate_size")
    Q = value(cfg, "num_key_value_heads") * value(cfg, "kv_channels")
    tied = value(cfg, "tie_word_embeddings")
    ini.W["model.embed_tokens.weight"] = ini.randn(V, D) * (0.1 if tied else 1.0)
    if not tied:
        ini.lin("lm_head", V, D)
    ini.norm("model.norm", D)
    for li in range(L):
        p = "model.layers.%d." % li
        ini.norm(p + "input_layernorm", D)
        ini.norm(p + "post_attention_layernorm", D)
        a = p + "self_attention."
        ini.lin(a + "experts.router.layer", E, D, gain=3.0)
        ini.W[a + "experts.input_linear.weight"] = ini.randn(E, Q, D) * (2.0 / math.sqrt(D))
        ini.W[a + "experts.output_linear.weight"] = ini.randn(E, D, Q) * (1.0 / math.sqrt(Q))
        ini.W[a + "experts.bias"] = ini.randn(D) * 0.1
        ini.lin(a + "kv_proj", 2 * Q, D, gain=2.0)
        m = p + "mlp."
        ini.lin(m + "router.layer", E, D, gain=3.0)
        ini.W[m + "input_linear.weight"] = ini.randn(E, 2 * F, D) * (1.0 / math.sqrt(D))
        ini.W[m + "output_linear.weight"] = ini.randn(E, D, F) * (1.0 / math.sqrt(F))
        ini.W[m + "bias"] = ini.randn(D) * 0.1
    return ini.W
