#!/usr/bin/env bash
# Trains the embedded default model (data/default-model/: Hugging Face Qwen3-MoE layout,
# byte-level vocab 256) on the embedded corpus with `moe train`, exactly as committed.
# Usage: scripts/train-default.sh [path/to/moe]   (default build/bin/moe)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${1:-build/bin/moe}
OUT=${OUT:-/tmp/moe-default-model-run}
rm -rf "$OUT"
"$MOE" --threads 2 train --data data/corpus/kjv.txt --seed 1 \
  --layers 2 --d-model 128 --heads 4 --kv-heads 4 --head-dim 32 --experts 8 --experts-per-token 2 --d-ff 256 --max-seq 256 \
  --batch 8 --seq 128 --steps 400 --lr 3e-3 --warmup 20 --min-lr-ratio 0.1 --weight-decay 0.1 --grad-clip 1.0 \
  --aux-loss 0.01 --z-loss 0.001 \
  --log-every 10 --eval-every 100 --eval-batches 4 --checkpoint-every 100 --out "$OUT"
mkdir -p data/default-model
ckpt=$(cat "$OUT/latest")
cp "$OUT/$ckpt/config.json" "$OUT/$ckpt/model.safetensors" data/default-model/
cp "$OUT/metrics.jsonl" data/default-model/training-metrics.jsonl
"$MOE" plot "$OUT/metrics.jsonl" --out data/default-model/training.svg
ls -l data/default-model
