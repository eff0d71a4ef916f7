#!/usr/bin/env bash
# The main job `make run` runs: the machine, then text generation with the embedded default
# model (data/default-model, trained by `moe train`, see docs/TRAINING.md) and its activation
# report: parameters really activated per token, expert load, bytes per token vs the measured
# read bandwidth. Without the default model it measures the machine's ceilings instead.
set -euo pipefail
moe="${1:-build/bin/moe}"
root="$(cd "$(dirname "$0")/.." && pwd)"
"$moe" info
echo
if [[ -f "$root/data/default-model/config.json" ]]; then
  "$moe" run --prompt "${MOE_PROMPT:-And God said, }" --max-new-tokens "${MOE_MAX_NEW_TOKENS:-200}" \
    --temperature 0.8 --top-k 40 --seed 1
else
  echo "(no data/default-model yet: measuring the machine instead)"
  "$moe" bench ceilings
fi
