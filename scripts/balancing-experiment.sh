#!/usr/bin/env bash
# The load-balancing experiment of docs/TRAINING.md: the same model, data and seed trained with
# no balancing, the Switch aux loss, the aux-loss-free bias update and the router z-loss alone;
# writes docs/balancing/results.md (final loss, load CV and dead experts per layer) and
# docs/balancing/balancing.svg (loss curves + layer x expert load heatmaps, via `moe plot`).
# Usage: scripts/balancing-experiment.sh [path/to/moe]   (STEPS=N to change the length)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${1:-build/bin/moe}
STEPS=${STEPS:-200}
OUT=${OUT:-/tmp/moe-balancing}
DOC=docs/balancing
mkdir -p "$DOC"
rm -rf "$OUT"
common=(--threads 2 train --data data/corpus/kjv.txt --seed 3 --layers 2 --d-model 64 --heads 4 --kv-heads 4
  --head-dim 16 --experts 8 --experts-per-token 2 --d-ff 128 --max-seq 64 --batch 8 --seq 64 --steps "$STEPS" --lr 3e-3
  --warmup 10 --log-every 5 --eval-every 50 --eval-batches 4 --no-progress)
declare -A runs=(
  [none]=""
  [aux-loss]="--aux-loss 0.01"
  [bias-update]="--bias-update 0.001"
  [z-loss]="--z-loss 0.001"
)
for name in none aux-loss bias-update z-loss; do
  echo "== $name"
  # shellcheck disable=SC2086
  "$MOE" "${common[@]}" ${runs[$name]} --out "$OUT/$name"
done
"$MOE" plot "$OUT/none" "$OUT/aux-loss" "$OUT/bias-update" "$OUT/z-loss" --out "$DOC/balancing.svg"
python3 - "$OUT" "$STEPS" > "$DOC/results.md" <<'PY'
import json, sys
out, steps = sys.argv[1], sys.argv[2]
print(f"Same data, seed and model (2 layers, D 64, 8 experts top-2), {steps} steps; load figures over")
print("the last 25 steps (5 log windows). CV = std/mean of tokens per expert; dead = experts with no token.\n")
print("| run | final train CE | final val CE | layer 0 CV | layer 1 CV | layer 0 max/mean | layer 1 max/mean | dead (L0, L1) |")
print("|---|---|---|---|---|---|---|---|")
for name in ["none", "aux-loss", "bias-update", "z-loss"]:
    lines = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    last = lines[-5:]
    cvs, mm, dead = [], [], []
    for l in range(len(last[0]["layers"])):
        load = [sum(x["layers"][l]["load"][e] for x in last) for e in range(len(last[0]["layers"][l]["load"]))]
        m = sum(load) / len(load)
        sd = (sum((v - m) ** 2 for v in load) / len(load)) ** 0.5
        cvs.append(sd / m); mm.append(max(load) / m); dead.append(sum(v == 0 for v in load))
    val = [x["val_loss"] for x in lines if "val_loss" in x][-1]
    print(f"| {name} | {lines[-1]['ce']:.4f} | {val:.4f} | {cvs[0]:.3f} | {cvs[1]:.3f} | {mm[0]:.2f} | {mm[1]:.2f} | {dead[0]}, {dead[1]} |")
PY
cat "$DOC/results.md"
