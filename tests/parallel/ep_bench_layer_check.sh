#!/bin/sh
# `mpirun -np 2 moe bench layer --ep 2 --json` on a small layer: every row (rank x token count)
# must report the bytes measured from the collectives equal to the formula for the routing that
# happened ("bytes_match": true), and the 1- and 16-token rows must be there for both ranks.
# Usage: ep_bench_layer_check.sh MOE MPIRUN [MPIRUN_ARGS...]
moe="$1"
shift
out=$(timeout 100 "$@" -np 2 "$moe" --json bench layer --ep 2 --d-model 64 --d-ff 32 --experts 8 --experts-per-token 2 --shared-experts 0 --dtype f32 \
  --tokens 1,16 --repetitions 2 --no-dense) || { echo "$out"; echo "ep_bench_layer_check: the run failed"; exit 1; }
printf '%s\n' "$out"
n=$(printf '%s\n' "$out" | grep -c '"bytes_match": true')
if printf '%s\n' "$out" | grep -q '"bytes_match": false' || [ "$n" -ne 4 ]; then
  echo "ep_bench_layer_check: expected 4 rows with measured bytes = predicted, got $n"
  exit 1
fi
echo "ep_bench_layer_check: measured bytes equal the prediction on all 4 rows"
