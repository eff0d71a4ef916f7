#!/usr/bin/env bash
# What each quantization type costs in accuracy: quantizes a checkpoint to every GGUF type moe writes,
# evaluates each on the same token windows, and prints bits per weight, perplexity and KL divergence of
# the next-token distributions against the BF16 GGUF of the same checkpoint (plus the f32 original).
#
# usage: scripts/quant-accuracy.sh [--build build] [--windows 8] [--window 256] MODEL_DIR (--text FILE | --random-ids VOCAB)
#   --text FILE       evaluate on windows of FILE encoded by the model's tokenizer (byte models: the bytes)
#   --random-ids V    evaluate on random ids below V (random-weight fixtures: KL is meaningful, perplexity not)
# Output: a markdown table (docs/QUANTIZATION.md quotes it).
set -euo pipefail
build=build windows=8 window=256 text="" random_vocab=0 model=""
types="BF16 Q8_0 Q6_K Q5_K_M Q4_K_M Q5_0 Q5_1 Q4_1 Q4_0 MXFP4 IQ4_XS"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --windows) windows="$2"; shift 2 ;;
    --window) window="$2"; shift 2 ;;
    --text) text="$2"; shift 2 ;;
    --random-ids) random_vocab="$2"; shift 2 ;;
    --types) types="$2"; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) model="$1"; shift ;;
  esac
done
[[ -n "$model" && ( -n "$text" || "$random_vocab" -gt 0 ) ]] || { sed -n 6,8p "$0" >&2; exit 2; }
moe="$build/bin/moe"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export MOE_PACK_CACHE=0

# The evaluation windows: --text: consecutive windows of the file's bytes from its middle; else random ids.
python3 - "$tmp" "$windows" "$window" "$text" "$random_vocab" <<'PY'
import random, sys
tmp, n, w, text, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
if text:
    data = open(text, "rb").read()
    start = len(data) // 2
    for i in range(n):
        # whole UTF-8 characters: cut at ASCII bytes only
        chunk = data[start + i * w * 4: start + i * w * 4 + w]
        open(f"{tmp}/win{i}.txt", "wb").write(chunk.decode("utf-8", "ignore").encode())
else:
    rng = random.Random(7)
    for i in range(n):
        open(f"{tmp}/win{i}.ids", "w").write(" ".join(str(rng.randrange(vocab)) for _ in range(w)))
PY
input() { if [[ -n "$text" ]]; then echo "--text-file $tmp/win$1.txt"; else echo "--ids-file $tmp/win$1.ids"; fi; }

echo "quantizing $model to: $types" >&2
for t in $types; do
  "$moe" quantize --model "$model" --out "$tmp/m.$t.gguf" --type "$t" > "$tmp/q.$t.txt" 2>&1 ||
    { echo "   $t: not written ($(tail -1 "$tmp/q.$t.txt"))" >&2; continue; }
done
for ((i = 0; i < windows; ++i)); do
  "$moe" eval --model "$tmp/m.BF16.gguf" $(input $i) --logits-out "$tmp/base$i.f32" > /dev/null
done
for t in F32 $types; do
  m="$tmp/m.$t.gguf"; [[ "$t" == F32 ]] && m="$model"
  [[ -e "$m" ]] || continue
  for ((i = 0; i < windows; ++i)); do
    "$moe" --json eval --model "$m" $(input $i) --per-token --kl-base "$tmp/base$i.f32" > "$tmp/e.$t.$i.json"
  done
done
python3 - "$tmp" "$windows" "$model" "F32 $types" <<'PY'
import json, math, os, re, statistics, sys
tmp, n, model, types = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
print(f"| type | bits/weight | file MB | perplexity | mean KL vs BF16 (nats) | max KL | same top token |")
print("|---|---|---|---|---|---|---|")
for t in types:
    evs = [f"{tmp}/e.{t}.{i}.json" for i in range(n)]
    if not all(os.path.exists(e) for e in evs): continue
    js = [json.load(open(e)) for e in evs]
    nll = sum(sum(j["cross_entropy"]) for j in js) / sum(len(j["cross_entropy"]) for j in js)
    pos = [j["kl_base"] for j in js]
    mean_kl = statistics.mean(p["mean_kl"] for p in pos)
    max_kl = max(p["max_kl"] for p in pos)
    top1 = statistics.mean(p["top1_agreement"] for p in pos)
    if t == "F32":
        bpw, mb = "32 (original)", sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors")) / 1e6
    else:
        q = open(f"{tmp}/q.{t}.txt").read()
        m = re.search(r"([0-9.]+) bits per weight", q)
        bpw, mb = (m.group(1) if m else "?"), os.path.getsize(f"{tmp}/m.{t}.gguf") / 1e6
    print(f"| {t} | {bpw} | {mb:.2f} | {math.exp(nll):.4f} | {mean_kl:.6f} | {max_kl:.4f} | {100*top1:.2f}% |")
PY
