"""Expert load of one generation, plotted with matplotlib (docs/PYTHON.md).

    PYTHONPATH=build/python python3 python/examples/expert_load.py [MODEL] [--out expert_load.png]

Generates from a prompt, then draws from model.trace: the tokens each expert received per MoE layer
(a heatmap, dead experts marked), and which experts every token chose in the first MoE layer.
"""

import argparse

import numpy as np

import moe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None, help="model folder or .gguf (default: the embedded model)")
    ap.add_argument("--prompt", default="The mixture of experts ")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--out", default="expert_load.png")
    args = ap.parse_args()

    model = moe.Model(args.model)
    gen = model.generate(args.prompt, max_new_tokens=args.max_new_tokens, temperature=0.8, seed=1)
    print(args.prompt, end="")
    for piece in gen:
        print(piece.text, end="", flush=True)
    print()

    trace = model.trace  # expert_ids, weights: [MoE layers, tokens, k]
    n_layers, n_tokens, k = trace.expert_ids.shape
    load = np.zeros((n_layers, model.n_expert), dtype=np.int64)
    for li in range(n_layers):
        load[li] = np.bincount(trace.expert_ids[li].ravel(), minlength=model.n_expert)
    report = model.report()
    print(f"{n_tokens} tokens x {n_layers} MoE layers x top-{k}; "
          f"max/mean load per layer: {[round(l['max_over_mean'], 2) for l in report['expert_load']]}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_load, ax_tok) = plt.subplots(1, 2, figsize=(12, 0.9 * n_layers + 3.5),
                                          gridspec_kw={"width_ratios": [1, 2]})
    share = load / load.sum(axis=1, keepdims=True)
    im = ax_load.imshow(share * 100, aspect="auto", cmap="viridis")
    for li in range(n_layers):
        for e in range(model.n_expert):
            if load[li, e] == 0:
                ax_load.text(e, li, "x", ha="center", va="center", color="red", fontsize=14)
            elif model.n_expert <= 16:
                bright = share[li, e] > (share.min() + share.max()) / 2
                ax_load.text(e, li, f"{100 * share[li, e]:.0f}", ha="center", va="center", fontsize=8,
                             color="black" if bright else "white")
    ax_load.set_xlabel("expert")
    ax_load.set_ylabel("MoE layer")
    ax_load.set_yticks(range(n_layers), [str(l) for l in trace.layers])
    ax_load.set_xticks(range(model.n_expert))
    ax_load.set_title("share of routed tokens (%); x: never used")
    fig.colorbar(im, ax=ax_load, label="% of the layer's token-slots")

    chosen = np.full((model.n_expert, n_tokens), np.nan)  # experts not chosen stay blank
    for j in range(k):  # weight of each chosen expert, first MoE layer
        chosen[trace.expert_ids[0, :, j], np.arange(n_tokens)] = trace.weights[0, :, j]
    im2 = ax_tok.imshow(np.ma.masked_invalid(chosen), aspect="auto", cmap="viridis", interpolation="nearest",
                        vmin=0, vmax=1)
    ax_tok.set_facecolor("#eeeeee")
    prompt_len = len(gen.prompt_ids)
    ax_tok.axvline(prompt_len - 0.5, color="black", lw=1)  # where generation starts
    ax_tok.text(prompt_len - 1, -0.7, "prompt ", ha="right", va="bottom", fontsize=8)
    ax_tok.text(prompt_len, -0.7, " generated", ha="left", va="bottom", fontsize=8)
    ax_tok.set_xlabel("token position (prompt, then generated)")
    ax_tok.set_ylabel("expert")
    ax_tok.set_yticks(range(model.n_expert))
    ax_tok.set_title(f"router weight of each token's top-{k} experts, MoE layer {trace.layers[0]}", pad=16)
    fig.colorbar(im2, ax=ax_tok, label="router weight")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
