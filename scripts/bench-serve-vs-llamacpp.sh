#!/usr/bin/env bash
# Continuous batching, moe against llama.cpp on the same GGUF files: aggregate decode tokens/s at each
# number of concurrent streams (moe: `moe bench serve`, its serving scheduler; llama.cpp: one
# llama_decode of B tokens of B sequences per step, build/bin/llamacpp_ref bench-parallel), next to
# moe's measured distinct experts per step, the uniform-routing prediction and the byte floor. Runs
# are alternated (moe, llama.cpp, moe, ...) per stream count; the table gives medians of --pairs pairs.
#
# usage: scripts/bench-serve-vs-llamacpp.sh [--pairs 3] [--streams 1,2,4,8,16] [--prompt 64] [--decode 16]
#                                           [--threads 2] [--build build] [--out FILE.md] FILE.gguf...
# A benchmark, not a test: run it on a quiet machine.
set -euo pipefail
pairs=3 streams=1,2,4,8,16 prompt=64 decode=16 threads=2 build=build out=""
files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    --prompt) prompt="$2"; shift 2 ;;
    --decode) decode="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done
[[ ${#files[@]} -gt 0 ]] || { echo "usage: $0 [options] FILE.gguf..." >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
moe="$build/bin/moe"
ref="$build/bin/llamacpp_ref"
[[ -x "$moe" && -x "$ref" ]] || { echo "build first: make build (needs $moe and $ref)" >&2; exit 1; }
export LD_LIBRARY_PATH="$root/.llamacpp/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for f in "${files[@]}"; do
  [[ -f "$f" ]] || { echo "no such file: $f" >&2; exit 1; }
  name="$(basename "$f")"
  for b in ${streams//,/ }; do
    echo "== $name, $b streams: $pairs pairs, prompt $prompt, decode $decode, $threads threads" >&2
    for ((i = 1; i <= pairs; ++i)); do
      "$moe" --json --threads "$threads" bench serve --model "$f" --streams "$b" --prompt "$prompt" \
        --decode "$decode" --repetitions 1 > "$tmp/$name.$b.moe.$i.json"
      "$ref" bench-parallel "$f" --streams "$b" --threads "$threads" --prompt "$prompt" --decode "$decode" \
        --reps 1 > "$tmp/$name.$b.ref.$i.json"
    done
  done
done

python3 - "$tmp" "$pairs" "$streams" "$prompt" "$decode" "$threads" "${files[@]}" > "$tmp/table.md" <<'PY'
import json, os, statistics, sys
tmp, pairs, streams, prompt, decode, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
files = sys.argv[7:]
med = statistics.median
print(f"prompt {prompt} tokens per stream, {decode} decode steps, {threads} threads, medians of {pairs} alternated pairs\n")
print("| file | streams | moe tok/s | llama.cpp tok/s | moe / llama.cpp | moe vs 1 stream | llama.cpp vs 1 stream "
      "| experts/layer (uniform pred.) | moe % of byte floor | moe % of roofline | hot-k share |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for f in files:
    n = os.path.basename(f)
    m1 = r1 = None
    for b in streams.split(","):
        moe = [json.load(open(f"{tmp}/{n}.{b}.moe.{i}.json"))["rows"][0] for i in range(1, pairs + 1)]
        ref = [json.load(open(f"{tmp}/{n}.{b}.ref.{i}.json")) for i in range(1, pairs + 1)]
        mt = med([m["tokens_per_s"] for m in moe])
        rt = med([r["aggregate_decode_tokens_per_s"] for r in ref])
        if m1 is None: m1, r1 = mt, rt
        print(f"| {n} | {b} | {mt:.1f} | {rt:.1f} | {mt/rt:.2f}x | {mt/m1:.2f}x | {rt/r1:.2f}x "
              f"| {med([m['distinct_experts_per_layer'] for m in moe]):.1f} "
              f"({moe[0]['distinct_experts_uniform_prediction']:.1f}) "
              f"| {100*med([m['fraction_of_floor'] for m in moe]):.1f}% "
              f"| {100*med([m['fraction_of_roofline'] for m in moe]):.1f}% "
              f"| {100*med([m['hottest_k_share'] for m in moe]):.1f}% |")
PY
cat "$tmp/table.md"
if [[ -n "$out" ]]; then cp "$tmp/table.md" "$out"; fi
