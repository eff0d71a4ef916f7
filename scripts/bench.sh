#!/usr/bin/env bash
# `make bench`: every Google Benchmark program, then the moe bench figures.
set -euo pipefail
build="${1:-build}"
for b in "$build"/bin/*_bench; do
  [ -x "$b" ] || continue
  echo "== $b"
  "$b" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
done
echo "== moe bench ceilings"
"$build/bin/moe" bench ceilings
if [[ -f "$(dirname "$0")/../data/default-model/config.json" ]]; then
  echo "== thread pool: decode with --threads 1 and the default, quiet and with one busy core"
  bash "$(dirname "$0")/bench-threads.sh" --rounds 5 "$build/bin/moe"
fi
if [[ -n "${MOE_BENCH_GGUF:-}" ]]; then
  echo "== moe vs llama.cpp on: $MOE_BENCH_GGUF"
  bash "$(dirname "$0")/bench-vs-llamacpp.sh" --build "$build" $MOE_BENCH_GGUF
else
  echo "(set MOE_BENCH_GGUF='a.gguf b.gguf' to add the moe vs llama.cpp table, scripts/bench-vs-llamacpp.sh)"
fi
