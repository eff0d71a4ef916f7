#!/usr/bin/env bash
# Training throughput of `moe train` vs PyTorch (Debian python3-torch, the reference model of
# tests/reference/make_train_fixtures.py) on the same tiny MoE model, batch and thread count,
# measured in the same run. PyTorch runs under several thread settings (all with T threads) and
# its best is the baseline; both sides report the median step after 2 warm-up steps, in tokens
# per wall second (best of REPS alternating runs) and per CPU second of all threads (the best
# run and setting on each side: the figure to trust when other jobs share the cores).
# Usage: scripts/train-bench.sh [path/to/moe] [threads]    env: STEPS (12), REPS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${1:-build/bin/moe}
T=${2:-2}
STEPS=${STEPS:-12}
REPS=${REPS:-2}
model=(--layers 2 --d-model 128 --heads 4 --experts 8 --experts-per-token 2 --d-ff 256 --batch 8 --seq 128)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Every PyTorch setting uses exactly T threads: T intra-op OpenMP threads (torch.set_num_threads)
# and T OpenBLAS threads (Debian's torch calls OpenBLAS's pthread build, which otherwise starts one
# thread per core whatever torch.set_num_threads says). What varies: the OpenMP wait policy
# (libgomp's default spins ~300k iterations, which starves a co-scheduled thread on a busy
# machine; PASSIVE sleeps at once) and OpenBLAS's core type (the environment may force Haswell on
# this AVX-512 CPU; unset lets OpenBLAS detect it). For T > 1, OpenBLAS single-threaded as well.
configs=("" "OMP_WAIT_POLICY=PASSIVE" "-u OPENBLAS_CORETYPE" "-u OPENBLAS_CORETYPE OMP_WAIT_POLICY=PASSIVE")
if [ "$T" -gt 1 ]; then configs+=("-u OPENBLAS_CORETYPE OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1"); fi

run_torch() {  # $1: extra env settings
  # shellcheck disable=SC2086
  env OMP_NUM_THREADS="$T" OPENBLAS_NUM_THREADS="$T" env $1 /usr/bin/python3 tests/reference/make_train_fixtures.py \
    --bench --threads "$T" "${model[@]}" --steps "$STEPS"
}
run_moe() {  # one metrics line per step; steps 1-2 are warm-up
  rm -rf "$tmp/run"
  "$MOE" --threads "$T" train --data data/corpus/kjv.txt "${model[@]}" --kv-heads 4 --head-dim 32 \
    --max-seq 128 --steps $((STEPS + 2)) --log-every 1 --eval-every 0 --eval-batches 1 --aux-loss 0.01 \
    --no-progress --out "$tmp/run" > /dev/null
  cat "$tmp/run/metrics.jsonl"
}

: > "$tmp/torch.jsonl"
: > "$tmp/moe.jsonl"
for ((rep = 0; rep < REPS; ++rep)); do
  for cfg in "${configs[@]}"; do
    echo "{\"env\": \"$cfg\", \"result\": $(run_torch "$cfg")}" >> "$tmp/torch.jsonl"
  done
  run_moe | python3 -c 'import json, sys; print(json.dumps([json.loads(l) for l in sys.stdin]))' >> "$tmp/moe.jsonl"
done

python3 - "$tmp/torch.jsonl" "$tmp/moe.jsonl" "$T" <<'PY'
import json, statistics, sys
torch_runs = [json.loads(l) for l in open(sys.argv[1])]
moe_runs = [json.loads(l) for l in open(sys.argv[2])]
best_torch = max(torch_runs, key=lambda r: r["result"]["tokens_per_s"])
per_env = {}
for r in torch_runs:
    e = r["env"] or "(inherited)"
    per_env[e] = max(per_env.get(e, 0), round(r["result"]["tokens_per_s"]))
def moe_median(lines, key):
    return statistics.median(l[key] for l in lines[2:])
best_moe = max(moe_runs, key=lambda ls: moe_median(ls, "tokens_per_s"))
moe_tok = moe_median(best_moe, "tokens_per_s")
moe_cpu = max(moe_median(ls, "tokens_per_cpu_s") for ls in moe_runs)
pt = best_torch["result"]
pt_cpu = max(r["result"]["tokens_per_cpu_s"] for r in torch_runs)  # best per CPU second, any setting
print(json.dumps({
    "threads": int(sys.argv[3]),
    "pytorch_tokens_per_s": round(pt["tokens_per_s"], 1),
    "pytorch_tokens_per_cpu_s": round(pt_cpu, 1),
    "pytorch_best_env": best_torch["env"] or "(inherited)",
    "moe_tokens_per_s": round(moe_tok, 1),
    "moe_tokens_per_cpu_s": round(moe_cpu, 1),
    "speedup": round(moe_tok / pt["tokens_per_s"], 2),
    "speedup_per_cpu_s": round(moe_cpu / pt_cpu, 2),
    "moe_mfu": round(moe_median(best_moe, "mfu"), 4),
    "pytorch_by_env": per_env,
    "torch": pt["torch"]}))
PY
