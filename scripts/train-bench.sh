#!/usr/bin/env bash
# Training throughput of `moe train` vs PyTorch (Debian python3-torch, the reference model of
# tests/reference/make_train_fixtures.py) on the same tiny MoE model, batch and thread count,
# measured in the same run. Prints both tokens/s, the ratio and moe's MFU.
# Usage: scripts/train-bench.sh [path/to/moe] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${1:-build/bin/moe}
T=${2:-2}
STEPS=${STEPS:-12}
model=(--layers 2 --d-model 128 --heads 4 --experts 8 --top-k 2 --d-ff 256 --batch 8 --seq 128)
py=$(/usr/bin/python3 tests/reference/make_train_fixtures.py --bench --threads "$T" "${model[@]}" --steps "$STEPS")
ours=$("$MOE" --json --threads "$T" train --data data/corpus/kjv.txt "${model[@]}" --kv-heads 4 --head-dim 32 \
  --max-seq 128 --steps "$STEPS" --log-every "$STEPS" --eval-every 0 --eval-batches 1 --aux-loss 0.01 --no-progress)
python3 - "$py" "$ours" <<'PY'
import json, sys
py, ours = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"threads": py["threads"], "pytorch_tokens_per_s": round(py["tokens_per_s"], 1),
                  "moe_tokens_per_s": round(ours["tokens_per_s"], 1),
                  "speedup": round(ours["tokens_per_s"] / py["tokens_per_s"], 2), "moe_mfu": ours["mfu"],
                  "torch": py["torch"]}))
PY
