#!/usr/bin/env bash
# moe against llama.cpp on the same GGUF files: prefill and decode tokens/s, decode as a share of the read
# floor (the bytes each engine's decode step reads, at the read bandwidth measured next to each moe run),
# peak RSS and load time. Runs are alternated (moe, llama.cpp, moe, ...) and the table gives medians of
# --pairs pairs. llama.cpp is the prebuilt one scripts/install-llamacpp.sh installs, driven through its C
# API by build/bin/llamacpp_ref (no JavaScript layer), same threads, same prompt, same depth.
#
# usage: scripts/bench-vs-llamacpp.sh [--pairs 5] [--prompt 512] [--decode 32] [--threads 2]
#                                     [--kv-type auto] [--build build] [--out FILE.md] FILE.gguf...
# A benchmark, not a test: run it on a quiet machine. The prompt is the decode depth too (decode starts
# after the prompt's tokens are cached). MOE_PACK_CACHE applies to moe as usual (the first run of a file
# builds the cache; that run's load time is reported separately as "cold"). --kv-type goes to moe (its
# default, auto, keeps f16 rows for these files, as llama.cpp does).
set -euo pipefail
pairs=5 prompt=512 decode=32 threads=2 build=build out="" kv=auto
files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --prompt) prompt="$2"; shift 2 ;;
    --decode) decode="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --kv-type) kv="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
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
  echo "== $name: $pairs pairs, prompt $prompt, decode $decode, $threads threads" >&2
  # One untimed moe run first: builds the pack cache (its load time is the cold one) and warms the page cache.
  "$moe" --json --threads "$threads" bench model --model "$f" --prompt 16 --decode 2 --repetitions 1 \
    > "$tmp/$name.cold.json"
  for ((i = 1; i <= pairs; ++i)); do
    "$moe" --json --threads "$threads" bench model --model "$f" --prompt "$prompt" --decode "$decode" \
      --kv-type "$kv" --repetitions 1 > "$tmp/$name.moe.$i.json"
    "$ref" bench "$f" --threads "$threads" --prompt "$prompt" --decode "$decode" --depth "$prompt" --reps 1 \
      > "$tmp/$name.ref.$i.json"
    echo "   pair $i done" >&2
  done
done

python3 - "$tmp" "$pairs" "$prompt" "$decode" "$threads" "${files[@]}" > "$tmp/table.md" <<'PY'
import json, os, statistics, sys
tmp, pairs, prompt, decode, threads, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
med = statistics.median
print(f"prompt {prompt} tokens (also the decode depth), {decode} decode steps, {threads} threads, "
      f"medians of {pairs} alternated pairs\n")
print("| file | size GB | engine | prefill tok/s | decode tok/s | % of read floor | peak RSS GB | load s |")
print("|---|---|---|---|---|---|---|---|")
for f in files:
    n = os.path.basename(f)
    size = os.path.getsize(f) / 1e9
    moe = [json.load(open(f"{tmp}/{n}.moe.{i}.json")) for i in range(1, pairs + 1)]
    ref = [json.load(open(f"{tmp}/{n}.ref.{i}.json")) for i in range(1, pairs + 1)]
    cold = json.load(open(f"{tmp}/{n}.cold.json"))
    # The floor of each pair: moe's bytes per decode token at the read bandwidth measured beside that run.
    floors = [m["decode_floor_tokens_per_s"] for m in moe]
    mp, md = med([m["prefill_tokens_per_s"] for m in moe]), med([m["decode_tokens_per_s"] for m in moe])
    rp, rd = med([r["prefill_tokens_per_s"] for r in ref]), med([r["decode_tokens_per_s"] for r in ref])
    mfl = med([m["decode_tokens_per_s"] / fl for m, fl in zip(moe, floors)])
    rfl = med([r["decode_tokens_per_s"] / fl for r, fl in zip(ref, floors)])
    mload = med([m["load_s"] for m in moe])
    print(f"| {n} | {size:.2f} | moe | {mp:.1f} | {md:.2f} | {100*mfl:.1f}% | "
          f"{max(m['peak_rss_bytes'] for m in moe) / 1e9:.2f} | {mload:.2f} (cold {cold['load_s']:.2f}) |")
    print(f"| | | llama.cpp | {rp:.1f} | {rd:.2f} | {100*rfl:.1f}% | "
          f"{max(r['peak_rss_gb'] for r in ref):.2f} | {med([r['load_s'] for r in ref]):.2f} |")
    print(f"| | | moe / llama.cpp | {mp/rp:.2f}x | {md/rd:.2f}x | | | |")
PY
cat "$tmp/table.md"
if [[ -n "$out" ]]; then cp "$tmp/table.md" "$out"; fi
