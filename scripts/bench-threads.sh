#!/usr/bin/env bash
# Thread-pool benchmark (docs/PERFORMANCE.md, "Thread pool on a busy machine"): `moe run` decode
# tokens/s on the embedded default model with --threads 1 and the default thread count, on a
# quiet machine and with one busy process pinned to the last usable CPU; optionally the same for
# a second binary (A/B, runs alternated so both see the same machine) and the MoE layer benchmark.
# Usage: scripts/bench-threads.sh [--rounds N] [--layer] NEW_MOE [OLD_MOE]
# Prints one line per (binary, setting) with the median and range over the rounds.
set -euo pipefail
rounds=7
layer=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --layer) layer=1; shift ;;
    *) break ;;
  esac
done
new="${1:?usage: bench-threads.sh [--rounds N] [--layer] NEW_MOE [OLD_MOE]}"
old="${2:-}"
bins=("$new")
[[ -n "$old" ]] && bins+=("$old")
out="$(mktemp -d)"
busy_pid=""
cleanup() {
  [[ -n "$busy_pid" ]] && kill "$busy_pid" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
last_cpu="$(python3 -c 'import os; print(max(os.sched_getaffinity(0)))')"

decode() {  # binary, thread flag ("" = default) -> decode tokens/s
  "$1" $2 run --prompt "And God said, " --max-new-tokens 200 --temperature 0.8 --top-k 40 --seed 1 \
    --no-ceiling --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tokens_per_s"])'
}
layer_bench() {  # binary -> "ms(T=1) ms(T=512)" per MoE layer call (each the median of 9 repetitions)
  "$1" --json bench layer --model qwen3-30b-a3b --tokens 1,512 --dtype bf16 --repetitions 9 2>/dev/null |
    python3 -c 'import json,sys; print(" ".join(str(r["ms"]) for r in json.load(sys.stdin)["rows"]))'
}

for ((r = 1; r <= rounds; ++r)); do
  for setting in quiet busy; do
    if [[ "$setting" == busy ]]; then
      taskset -c "$last_cpu" sh -c 'while :; do :; done' &
      busy_pid=$!
      sleep 0.3
    fi
    for i in "${!bins[@]}"; do
      echo "$(decode "${bins[$i]}" "--threads 1")" >>"$out/$i.$setting.t1"
      echo "$(decode "${bins[$i]}" "")" >>"$out/$i.$setting.default"
    done
    if [[ "$setting" == busy ]]; then
      kill "$busy_pid"
      wait "$busy_pid" 2>/dev/null || true
      busy_pid=""
    fi
  done
  if [[ "$layer" == 1 ]]; then
    for i in "${!bins[@]}"; do layer_bench "${bins[$i]}" >>"$out/$i.layer"; done
  fi
  echo "round $r/$rounds done" >&2
done

python3 - "$out" "${bins[@]}" <<'EOF'
import os, statistics, sys
out, bins = sys.argv[1], sys.argv[2:]
def read(name):
    p = os.path.join(out, name)
    return [list(map(float, l.split())) for l in open(p)] if os.path.exists(p) else []
def med(v): return statistics.median(v) if v else float("nan")
print(f"decode tokens/s, moe run on the default model, 200 new tokens, medians of {len(read('0.quiet.t1'))} rounds [min-max]")
for i, b in enumerate(bins):
    for setting in ("quiet", "busy"):
        for t in ("t1", "default"):
            v = [x[0] for x in read(f"{i}.{setting}.{t}")]
            print(f"  {b:<28} {setting:<5} --threads {'1' if t == 't1' else 'default':<7} "
                  f"{med(v):9.0f} [{min(v):.0f}-{max(v):.0f}]")
        t1 = med([x[0] for x in read(f"{i}.{setting}.t1")])
        d = med([x[0] for x in read(f"{i}.{setting}.default")])
        print(f"  {b:<28} {setting:<5} default / --threads 1 = {d / t1:.2f}")
if len(bins) == 2:
    for setting in ("quiet", "busy"):
        for t in ("t1", "default"):
            a = med([x[0] for x in read(f"0.{setting}.{t}")]); o = med([x[0] for x in read(f"1.{setting}.{t}")])
            print(f"  new / old, {setting}, {t}: {a / o:.2f}")
lay = [read(f"{i}.layer") for i in range(len(bins))]
if lay[0]:
    print("moe bench layer qwen3-30b-a3b bf16, ms per MoE layer call (median over rounds of the 9-repetition medians)")
    for i, b in enumerate(bins):
        cols = list(zip(*lay[i]))
        print(f"  {b:<28} T=1 {med(cols[0]):9.3f}   T=512 {med(cols[1]):9.2f}")
    if len(bins) == 2:
        c0, c1 = list(zip(*lay[0])), list(zip(*lay[1]))
        print(f"  new / old time: T=1 {med(c0[0]) / med(c1[0]):.3f}   T=512 {med(c0[1]) / med(c1[1]):.3f}")
EOF
