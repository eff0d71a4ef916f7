#!/usr/bin/env bash
# DeepSeek-V4-Flash's KV cache at long contexts, measured: `moe bench model` on 2 layers of V4-Flash (its last
# two: HCA ratio 128, then CSA ratio 4 with the lightning indexer) whose attention keeps V4-Flash's cache shape
# (head_dim 512 with 64 rope dims, index_head_dim 128, sliding_window 128, index_topk 512, YaRN to 1M) but
# with fewer query heads, a narrower model and fewer experts, so that a 2-core machine prefills 128k or 1M tokens.
# What the cache holds per token depends only on the cache shape; the heads and width set the compute.
#
#   scripts/dsv4-long-context.sh 8192 131072 [1048572]   # prompt lengths (4 decode steps follow each)
#
# Environment: MOE (the binary, default build/bin/moe), HEADS (query heads, default 8), INDEX_HEADS (the
# indexer's heads, default 8), KV_TYPE (default bf16, the accounting's element). Prints each run's JSON and a table: what the cache held against the accounting at that length.
set -euo pipefail
cd "$(dirname "$0")/.."
moe=${MOE:-build/bin/moe}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cfg=$dir/dsv4-flash-cache-shape.json
HEADS=${HEADS:-8} INDEX_HEADS=${INDEX_HEADS:-8} python3 - "$cfg" <<'PY'
import json, os, sys
c = json.load(open("data/models/DeepSeek-V4-Flash.json"))
c.update(hidden_size=512, num_attention_heads=int(os.environ["HEADS"]), q_lora_rank=256, o_lora_rank=128,
         o_groups=1, index_n_heads=int(os.environ["INDEX_HEADS"]), n_routed_experts=16, moe_intermediate_size=256)
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
for n in "$@"; do
  "$moe" --json bench model -m "$cfg" --layers 2 --prompt "$n" --decode 4 --repetitions 1 --no-warmup \
    --dtype bf16 --kv-type "${KV_TYPE:-bf16}" | tee -a "$dir/runs.jsonl"
done
python3 - "$dir/runs.jsonl" <<'PY'
import json, sys
print("| tokens held | engine (bytes) | accounting (bytes) | engine - accounting | prefill tokens/s | decode tokens/s |")
print("|---:|---:|---:|---:|---:|---:|")
text, pos, dec = open(sys.argv[1]).read(), 0, json.JSONDecoder()
while text[pos:].strip():
    j, pos = dec.raw_decode(text, pos + len(text[pos:]) - len(text[pos:].lstrip()))
    e, a = j["kv_cache_bytes"], j["kv_cache_bytes_accounting"]
    print(f"| {j['kv_cache_tokens']:,} | {e:,} | {a:,.0f} | {e - a:,.0f} | {j['prefill_tokens_per_s']:.1f} | "
          f"{j['decode_tokens_per_s']:.2f} |")
PY
