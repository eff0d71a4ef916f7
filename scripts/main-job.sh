#!/usr/bin/env bash
# The main job `make run` runs: what this machine is, then its ceilings.
# (Becomes text generation with the embedded default model once that lands.)
set -euo pipefail
moe="${1:-build/bin/moe}"
"$moe" info
echo
"$moe" bench ceilings
