#!/bin/sh
# `mpirun -np R moe eval --ep R --logits-out` against one process's `moe eval --logits-out` on the
# same ids: the two logits files must be equal byte for byte (cmp). Prints both reports.
# Usage: ep_eval_equal.sh MOE MODEL_DIR OUT_PREFIX R MPIRUN [MPIRUN_ARGS...]
set -e
moe="$1"; model="$2"; out="$3"; ranks="$4"
shift 4
ids="1,7,42,3,200,9,18,5,77,130,2,64"
rm -f "$out.one.f32" "$out.ep.f32"
"$moe" eval --model "$model" --ids "$ids" --logits-out "$out.one.f32"
timeout 100 "$@" -np "$ranks" "$moe" eval --model "$model" --ids "$ids" --logits-out "$out.ep.f32" --ep "$ranks"
cmp "$out.one.f32" "$out.ep.f32"
echo "ep_eval_equal: logits of $ranks ranks equal one process's, byte for byte"
