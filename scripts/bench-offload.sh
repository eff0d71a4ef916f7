#!/usr/bin/env bash
# Models bigger than RAM: decode speed of moe with --mem-budget (routed experts read from the file into
# its expert cache) against moe with everything in memory and against llama.cpp on the same GGUF with mmap
# under the same memory limit (a cgroup-v1 memory controller, or systemd-run --scope -p MemoryMax= when
# cgroup v2), runs alternated, the page cache dropped before each run (root: /proc/sys/vm/drop_caches).
# Also the disk's read ceiling (moe bench ceilings --disk) and what `moe inspect --mem-budget` predicted.
#
# usage: scripts/bench-offload.sh --budget 2.5G [--slack 0.5G] [--pairs 3] [--prompt 16] [--decode 32]
#                                 [--threads 2] [--build build] [--greedy] [--out FILE.md] FILE.gguf...
# Decode steps feed uniformly random tokens (moe: sampling at temperature 100; llama.cpp: --random-decode),
# so routing is as varied as the model's router makes it (a random model's greedy text repeats itself and
# routes to a few experts); --greedy decodes the argmax in both. A benchmark, not a test.
set -euo pipefail
budget="" slack="0.5G" pairs=3 prompt=16 decode=32 threads=2 build=build out="" random=1
files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --budget) budget="$2"; shift 2 ;;
    --slack) slack="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --prompt) prompt="$2"; shift 2 ;;
    --decode) decode="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --greedy) random=0; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done
[[ -n "$budget" && ${#files[@]} -gt 0 ]] || { echo "usage: $0 --budget SIZE [options] FILE.gguf[:HF_DIR]..." >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
moe="$build/bin/moe"
ref="$build/bin/llamacpp_ref"
[[ -x "$moe" && -x "$ref" ]] || { echo "build first: make build (needs $moe and $ref)" >&2; exit 1; }
export LD_LIBRARY_PATH="$root/.llamacpp/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp="$(mktemp -d)"
cg=/sys/fs/cgroup/memory/moe-bench-offload
trap 'rm -rf "$tmp"; rmdir "$cg" 2>/dev/null || true' EXIT
bytes() { python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)([KMGT]?)i?B?', sys.argv[1].upper()); print(int(float(m[1])*1024**' KMGT'.index(m[2] or ' ')))" "$1"; }
limit=$(( $(bytes "$budget") + $(bytes "$slack") ))
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "   (could not drop the page cache: not root?)" >&2; }
# Runs a command with the memory limit: cgroup v1 memory controller when writable, else systemd-run.
limited() {
  if [[ -d /sys/fs/cgroup/memory ]] && mkdir -p "$cg" 2>/dev/null; then
    echo "$limit" > "$cg/memory.limit_in_bytes"
    echo 0 > "$cg/memory.swappiness" 2>/dev/null || true
    sh -c "echo \$\$ > $cg/cgroup.procs && exec \"\$@\"" sh "$@"
  else
    systemd-run --quiet --scope -p MemoryMax="$limit" -p MemorySwapMax=0 "$@"
  fi
}

for spec in "${files[@]}"; do
  f="$spec"
  name="$(basename "$f")"
  echo "== $name: budget $budget (+ $slack slack for llama.cpp's limit), $pairs pairs, prompt $prompt, decode $decode" >&2
  drop
  "$moe" --json bench ceilings --repetitions 1 --stream-mib 256 --sgemm-n 256 --disk "$f" --disk-mib 2048 \
    > "$tmp/$name.disk.json"
  temp=0; ref_random=(); [[ $random == 1 ]] && temp=100 && ref_random=(--random-decode)
  "$moe" --json --threads "$threads" run --model "$f" --prompt-ids 1,2,3,4 --max-new-tokens 64 --temperature "$temp" \
    --seed 3 --quiet --no-ceiling --trace "$tmp/$name.trace" > /dev/null
  "$moe" --json inspect "$f" --mem-budget "$budget" --trace "$tmp/$name.trace" > "$tmp/$name.inspect.json"
  "$moe" --json --threads "$threads" bench model --model "$f" --prompt "$prompt" --decode 1 \
    --repetitions 1 > /dev/null  # builds the pack cache once
  # The worst case for any cache: every token's experts drawn uniformly at random (moe only; llama.cpp has
  # no such switch), all in memory against the budget, alternated.
  for ((i = 1; i <= pairs; ++i)); do
    "$moe" --json --threads "$threads" bench model --model "$f" --prompt "$prompt" --decode "$decode" \
      --uniform-routing --repetitions 1 > "$tmp/$name.uram.$i.json"
    drop
    limited "$moe" --json --threads "$threads" bench model --model "$f" --prompt "$prompt" --decode "$decode" \
      --uniform-routing --repetitions 1 --mem-budget "$budget" > "$tmp/$name.umoe.$i.json"
  done
  for ((i = 1; i <= pairs; ++i)); do  # all in memory, under the budget, llama.cpp: alternated
    "$moe" --json --threads "$threads" bench model --model "$f" --prompt "$prompt" --decode "$decode" \
      --temperature "$temp" --repetitions 1 > "$tmp/$name.ram.$i.json"
    drop
    limited "$moe" --json --threads "$threads" bench model --model "$f" --prompt "$prompt" --decode "$decode" \
      --temperature "$temp" --repetitions 1 --mem-budget "$budget" > "$tmp/$name.moe.$i.json"
    drop
    limited "$ref" bench "$f" --threads "$threads" --prompt "$prompt" --decode "$decode" --depth "$prompt" --reps 1 \
      "${ref_random[@]}" > "$tmp/$name.ref.$i.json" || echo '{"failed": true}' > "$tmp/$name.ref.$i.json"
    echo "   pair $i done" >&2
  done
done

BENCH_RANDOM=$random python3 - "$tmp" "$pairs" "$budget" "$limit" "${files[@]}" > "$tmp/table.md" <<'PY'
import json, os, statistics, sys
tmp, pairs, budget, limit, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
random = os.environ.get("BENCH_RANDOM", "1") == "1"
med = statistics.median
def load(p):
    return json.load(open(p)) if os.path.exists(p) else {}
print(f"budget {budget} for moe's weights; llama.cpp (mmap) and moe both run under a {limit/1e9:.2f} GB memory "
      f"limit; page cache dropped before each run; medians of {pairs} alternated pairs; decode tokens "
      f"{'uniformly random' if random else 'greedy'}\n")
print("| file | disk GB/s | all in RAM tok/s | moe budget tok/s | % of RAM | hit rate | MB read/token | "
      "disk floor tok/s | % of floor | llama.cpp tok/s | moe / llama.cpp | moe peak RSS GB | predicted hit (uniform / trace) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for spec in specs:
    f = spec; n = os.path.basename(f)
    disk = load(f"{tmp}/{n}.disk.json").get("disk", {}).get("read_gb_per_s", 0)
    ram = med([load(f"{tmp}/{n}.ram.{i}.json").get("decode_tokens_per_s", 0) for i in range(1, pairs + 1)])
    moe = [load(f"{tmp}/{n}.moe.{i}.json") for i in range(1, pairs + 1)]
    ref = [load(f"{tmp}/{n}.ref.{i}.json") for i in range(1, pairs + 1)]
    tps = med([m["decode_tokens_per_s"] for m in moe])
    hit = med([m["offload"]["hit_rate"] for m in moe])
    per_tok = med([m["offload"]["bytes_read_per_token"] for m in moe])
    rss = max(m["peak_rss_bytes"] for m in moe) / 1e9
    floor = disk * 1e9 / per_tok if per_tok > 0 else float("inf")
    rtps = [r.get("decode_tokens_per_s", 0) for r in ref if not r.get("failed")]
    lt = med(rtps) if rtps else 0
    ins = load(f"{tmp}/{n}.inspect.json")["models"][0].get("offload_prediction") or {}
    pred = f"{100*ins.get('uniform',{}).get('hit_rate',0):.0f}% / {100*ins.get('trace',{}).get('hit_rate',0):.0f}%" if ins else "-"
    print(f"| {n} | {disk:.2f} | {ram:.2f} | {tps:.2f} | {100*tps/ram if ram else 0:.0f}% | {100*hit:.1f}% | "
          f"{per_tok/1e6:.1f} | {floor:.2f} | {100*tps/floor if floor else 0:.0f}% | {lt:.2f} | "
          f"{tps/lt if lt else float('inf'):.2f}x | {rss:.2f} | {pred} |")
print("\nUniform routing (--uniform-routing: each token's experts drawn at random; moe only):\n")
print("| file | all in RAM tok/s | moe budget tok/s | % of RAM | hit rate | predicted (uniform) | MB read/token | "
      "disk floor tok/s | % of floor |")
print("|---|---|---|---|---|---|---|---|---|")
for spec in specs:
    n = os.path.basename(spec)
    disk = load(f"{tmp}/{n}.disk.json").get("disk", {}).get("read_gb_per_s", 0)
    ram = med([load(f"{tmp}/{n}.uram.{i}.json")["decode_tokens_per_s"] for i in range(1, pairs + 1)])
    um = [load(f"{tmp}/{n}.umoe.{i}.json") for i in range(1, pairs + 1)]
    tps = med([m["decode_tokens_per_s"] for m in um])
    hit = med([m["offload"]["hit_rate"] for m in um])
    per_tok = med([m["offload"]["bytes_read_per_token"] for m in um])
    floor = disk * 1e9 / per_tok if per_tok > 0 else float("inf")
    ins = load(f"{tmp}/{n}.inspect.json")["models"][0].get("offload_prediction") or {}
    print(f"| {n} | {ram:.2f} | {tps:.2f} | {100*tps/ram:.0f}% | {100*hit:.1f}% | "
          f"{100*ins.get('uniform',{}).get('hit_rate',0):.1f}% | {per_tok/1e6:.1f} | {floor:.2f} | {100*tps/floor:.0f}% |")
PY
cat "$tmp/table.md"
[[ -n "$out" ]] && cp "$tmp/table.md" "$out"
exit 0
