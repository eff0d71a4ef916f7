#!/usr/bin/python3
"""MoE-block reference fixtures: Hugging Face semantics written by hand in plain torch (float64)
for the sparse MoE blocks of Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3, OLMoE and gpt-oss.
Each fixture holds random small weights under the family's HF tensor names and layout, an input
[T, D], the expected output [T, D] and the chosen experts [T, K]; the config is in __metadata__.
tests/moe/fixtures_test.cc loads them and requires a match within 1e-5.

Output: fixtures/moe/<family>.safetensors
Run: /usr/bin/python3 tests/reference/make_moe_fixtures.py  (or `make fixtures`)
"""
import json
import os

import torch
import torch.nn.functional as F

from st_write import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "moe")
T = 7  # tokens


class Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape, scale=1.0):
        # Values rounded to float32, then used in float64 (what the C++ side reads).
        return (torch.randn(*shape, generator=self.g) * scale).to(torch.float32).to(torch.float64)


def mlp(x, gate, up, down, act=F.silu):
    """HF *MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)); weights [out, in]."""
    return (act(x @ gate.T) * (x @ up.T)) @ down.T


def topk_margin_ok(sel, k):
    """Selection scores [T, E]: the k-th and (k+1)-th best differ enough that float32 agrees."""
    if k == sel.shape[1]:
        return True
    v = torch.sort(sel, dim=-1, descending=True).values
    return bool(((v[:, k - 1] - v[:, k]) > 1e-4).all())


def experts_forward(x, ids, weights, expert_fn):
    """The HF loop: for each expert, its tokens, scaled by their routing weights, index_add."""
    out = torch.zeros_like(x)
    for e in range(int(ids.max()) + 1):
        tok, slot = torch.where(ids == e)
        if tok.numel() == 0:
            continue
        out.index_add_(0, tok, expert_fn(e, x[tok]) * weights[tok, slot, None])
    return out


def softmax_topk_family(name, seed, E, K, D, Fd, norm_topk_prob, names, shared=None):
    """Mixtral / Qwen2-MoE / Qwen3-MoE / OLMoE: softmax over E, top-k, optional renormalization."""
    g = Gen(seed)
    tensors = {}
    while True:
        gate_w = g.randn(E, D, scale=D**-0.5)
        x = g.randn(T, D)
        probs = F.softmax(x @ gate_w.T, dim=-1)
        if topk_margin_ok(probs, K):
            break
    w, ids = torch.topk(probs, K, dim=-1)
    if norm_topk_prob:
        w = w / w.sum(dim=-1, keepdim=True)
    tensors["gate.weight"] = gate_w
    ex = []
    for e in range(E):
        m = (g.randn(Fd, D, scale=D**-0.5), g.randn(Fd, D, scale=D**-0.5), g.randn(D, Fd, scale=Fd**-0.5))
        ex.append(m)
        for nm, t in zip(names, m):
            tensors[f"experts.{e}.{nm}.weight"] = t
    out = experts_forward(x, ids, w, lambda e, xe: mlp(xe, *ex[e]))
    meta = {"family": name, "n_expert": E, "top_k": K, "d_model": D, "d_ff": Fd,
            "norm_topk_prob": int(norm_topk_prob), "expert_names": ",".join(names)}
    if shared is not None:  # Qwen2-MoE: one shared expert with a sigmoid gate [1, D]
        Fs = shared
        sm = (g.randn(Fs, D, scale=D**-0.5), g.randn(Fs, D, scale=D**-0.5), g.randn(D, Fs, scale=Fs**-0.5))
        sg = g.randn(1, D, scale=D**-0.5)
        for nm, t in zip(("gate_proj", "up_proj", "down_proj"), sm):
            tensors[f"shared_expert.{nm}.weight"] = t
        tensors["shared_expert_gate.weight"] = sg
        out = out + torch.sigmoid(x @ sg.T) * mlp(x, *sm)
        meta["d_ff_shared"] = Fs
    return finish(name, tensors, x, out, ids, meta)


def deepseek_v3(seed):
    """DeepseekV3MoE: sigmoid scores, e_score_correction_bias for selection, noaux_tc groups
    (group score = sum of top-2 biased scores), masked_fill 0.0 outside the chosen groups,
    weights from the unbiased scores, norm_topk_prob with +1e-20, routed_scaling_factor; one
    shared expert MLP of moe_intermediate_size * n_shared_experts."""
    E, K, D, Fd, n_group, topk_group, scale, n_shared = 12, 3, 16, 8, 4, 2, 2.5, 1
    g = Gen(seed)
    while True:
        gate_w = g.randn(E, D, scale=D**-0.5)
        bias = g.randn(E, scale=0.05)
        x = g.randn(T, D)
        scores = torch.sigmoid(x @ gate_w.T)
        sfc = scores + bias
        grp = sfc.view(T, n_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
        gsorted = torch.sort(grp, dim=-1, descending=True).values
        if not bool(((gsorted[:, topk_group - 1] - gsorted[:, topk_group]) > 1e-4).all()):
            continue
        gidx = torch.topk(grp, k=topk_group, dim=-1, sorted=False)[1]
        gmask = torch.zeros_like(grp).scatter_(1, gidx, 1)
        smask = gmask.unsqueeze(-1).expand(T, n_group, E // n_group).reshape(T, -1)
        masked = sfc.masked_fill(~smask.bool(), 0.0)
        # HF fills with 0.0; the C++ router (and DeepSeek's reference code) use -inf. They agree when
        # every kept score is positive, which this fixture checks.
        if bool((sfc[smask.bool()] > 0).all()) and topk_margin_ok(masked, K):
            break
    ids = torch.topk(masked, k=K, dim=-1, sorted=False)[1]
    w = scores.gather(1, ids)
    w = w / (w.sum(dim=-1, keepdim=True) + 1e-20) * scale
    tensors = {"gate.weight": gate_w, "gate.e_score_correction_bias": bias}
    names = ("gate_proj", "up_proj", "down_proj")
    ex = []
    for e in range(E):
        m = (g.randn(Fd, D, scale=D**-0.5), g.randn(Fd, D, scale=D**-0.5), g.randn(D, Fd, scale=Fd**-0.5))
        ex.append(m)
        for nm, t in zip(names, m):
            tensors[f"experts.{e}.{nm}.weight"] = t
    Fs = Fd * n_shared
    sm = (g.randn(Fs, D, scale=D**-0.5), g.randn(Fs, D, scale=D**-0.5), g.randn(D, Fs, scale=Fs**-0.5))
    for nm, t in zip(names, sm):
        tensors[f"shared_experts.{nm}.weight"] = t
    out = experts_forward(x, ids, w, lambda e, xe: mlp(xe, *ex[e])) + mlp(x, *sm)
    meta = {"family": "deepseek_v3", "n_expert": E, "top_k": K, "d_model": D, "d_ff": Fd, "n_group": n_group,
            "topk_group": topk_group, "routed_scaling_factor": scale, "norm_topk_prob": 1, "d_ff_shared": Fs,
            "expert_names": ",".join(names)}
    # Report ids in descending weight order, as the C++ router lists them.
    order = torch.argsort(masked.gather(1, ids), dim=-1, descending=True)
    return finish("deepseek_v3", tensors, x, out, ids.gather(1, order), meta)


def gpt_oss(seed):
    """GptOssMLP: router Linear with bias; top-k of the logits; softmax over the k values.
    Experts: gate_up_proj [E, D, 2F] (x @ W, interleaved: gate = [..., ::2], up = [..., 1::2]) with
    bias [E, 2F]; gate clamped above at limit, up clamped to +-limit; glu = gate * sigmoid(alpha * gate);
    (up + 1) * glu @ down_proj [E, F, D] + down_proj_bias [E, D]."""
    E, K, D, Fd, alpha, limit = 8, 2, 16, 12, 1.702, 1.5
    g = Gen(seed)
    while True:
        rw, rb = g.randn(E, D, scale=D**-0.5), g.randn(E, scale=0.5)
        x = g.randn(T, D)
        logits = x @ rw.T + rb
        if topk_margin_ok(logits, K):
            break
    vals, ids = torch.topk(logits, K, dim=-1)
    w = F.softmax(vals, dim=-1)
    gate_up = g.randn(E, D, 2 * Fd, scale=D**-0.5)
    gate_up_bias = g.randn(E, 2 * Fd, scale=0.3)
    down = g.randn(E, Fd, D, scale=Fd**-0.5)
    down_bias = g.randn(E, D, scale=0.3)

    def expert(e, xe):
        gu = xe @ gate_up[e] + gate_up_bias[e]
        gate, up = gu[..., ::2], gu[..., 1::2]
        gate = gate.clamp(max=limit)
        up = up.clamp(min=-limit, max=limit)
        glu = gate * torch.sigmoid(gate * alpha)
        return ((up + 1) * glu) @ down[e] + down_bias[e]

    out = experts_forward(x, ids, w, expert)
    tensors = {"router.weight": rw, "router.bias": rb, "experts.gate_up_proj": gate_up,
               "experts.gate_up_proj_bias": gate_up_bias, "experts.down_proj": down, "experts.down_proj_bias": down_bias}
    meta = {"family": "gpt_oss", "n_expert": E, "top_k": K, "d_model": D, "d_ff": Fd, "alpha": alpha,
            "limit": limit}
    return finish("gpt_oss", tensors, x, out, ids, meta)


def finish(name, tensors, x, out, ids, meta):
    tensors = {k: v.to(torch.float32) for k, v in tensors.items()}
    tensors["input"] = x.to(torch.float32)
    tensors["expected_output"] = out.to(torch.float32)
    tensors["expected_ids"] = ids.to(torch.int32)
    meta = {k: str(v) for k, v in meta.items()}
    path = os.path.join(OUT, f"{name}.safetensors")
    write_safetensors(path, tensors, meta)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    mixtral = ("w1", "w3", "w2")  # gate, up, down
    hf = ("gate_proj", "up_proj", "down_proj")
    softmax_topk_family("mixtral", 1, E=8, K=2, D=16, Fd=12, norm_topk_prob=True, names=mixtral)
    softmax_topk_family("qwen2_moe", 2, E=10, K=4, D=16, Fd=8, norm_topk_prob=False, names=hf, shared=20)
    softmax_topk_family("qwen3_moe", 3, E=12, K=4, D=16, Fd=8, norm_topk_prob=True, names=hf)
    softmax_topk_family("olmoe", 4, E=10, K=3, D=16, Fd=8, norm_topk_prob=False, names=hf)
    deepseek_v3(5)
    gpt_oss(6)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
