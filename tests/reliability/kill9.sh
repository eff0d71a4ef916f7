#!/usr/bin/env bash
# Fault injection: `kill -9` at random moments of every command that writes files, many rounds.
# After each kill the output is the old file or the new one, byte for byte, never a mix or a
# truncation; at most one temporary (the killed run's) is left; and after the next complete run none
# remains. Commands: `moe train` checkpointing (the checkpoint `latest` names is whole: it loads and
# resumes), `moe eval --logits-out`, `moe plot --out` and `moe quantize --out`.
#
# Usage: kill9.sh MOE WORKDIR [ROUNDS]     (ROUNDS per command, default 30; KILL9_SEED for the draws)
set -euo pipefail

moe=${1:?usage: kill9.sh MOE WORKDIR [ROUNDS]}
work=${2:?usage: kill9.sh MOE WORKDIR [ROUNDS]}
rounds=${3:-${KILL9_ROUNDS:-30}}
RANDOM=${KILL9_SEED:-$$}
echo "kill9: $rounds rounds per command, seed ${KILL9_SEED:-$$}"
rm -rf "$work"
mkdir -p "$work"
export MOE_THREADS=1

die() {
  echo "kill9: FAIL: $*" >&2
  exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Temporaries the atomic writers leave when killed: "<file>.tmp.<pid>" and ".tmp-<name>-<pid>".
# (A temporary folder counts once, with what is inside it.)
temporaries() { find "$1" \( -name '.tmp-*' -prune -print \) -o \( -name '*.tmp.*' -print \) | sort; }
expect_temporaries_at_most() {
  local n
  n=$(temporaries "$1" | wc -l)
  [[ $n -le $2 ]] || die "$3: $n temporaries left in $1 (at most $2 expected): $(temporaries "$1" | tr '\n' ' ')"
}

# A sleep that forks nothing (bash's own `read -t` on a pipe nobody writes), so sub-millisecond
# delays are real even for commands that finish in a few milliseconds.
exec {never}<> <(:)
pause_ms() { read -r -t "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" -u "$never" || true; }

# Runs "$@" in the background and kills it with SIGKILL after a random delay in [0, 1.3 x base_ms]
# (the command's own duration, measured on a full run); returns 0 if the kill ended it (status 137),
# 1 if it had already finished.
run_and_kill() {
  local base_ms=$1
  shift
  local delay_ms=$((RANDOM % (base_ms * 13 / 10 + 1)))
  "$@" >/dev/null 2>&1 &
  local pid=$!
  pause_ms "$delay_ms"
  kill -9 "$pid" 2>/dev/null || true
  local status=0
  wait "$pid" 2>/dev/null || status=$?
  [[ $status -eq 137 ]]
}

timed() {  # runs "$@" to completion (must succeed); prints its duration in ms
  local t0
  t0=$(now_ms)
  "$@" >/dev/null 2>"$work/last.err" || die "$* failed: $(cat "$work/last.err")"
  echo $(($(now_ms) - t0 + 1))
}

# One file output: old and new are made by complete runs first; each round puts the old file in
# place, starts the command that writes the new one and kills it.
file_output_rounds() {
  local name=$1 out=$2 old=$3 new=$4 base_ms=$5
  shift 5
  local hits=0 olds=0 news=0
  old_differs_from_new "$old" "$new" "$name"
  for ((r = 1; r <= rounds; r++)); do
    cp "$old" "$out"
    if run_and_kill "$base_ms" "$@"; then hits=$((hits + 1)); fi
    if cmp -s "$out" "$old"; then
      olds=$((olds + 1))
    elif cmp -s "$out" "$new"; then
      news=$((news + 1))
    else
      die "$name round $r: $out is neither the old nor the new output ($(stat -c %s "$out") bytes)"
    fi
    expect_temporaries_at_most "$(dirname "$out")" 1 "$name round $r"
  done
  "$@" >/dev/null 2>&1 || die "$name: the run after the kills failed"
  cmp -s "$out" "$new" || die "$name: the complete run after the kills did not write the new output"
  expect_temporaries_at_most "$(dirname "$out")" 0 "$name after the next complete run"
  echo "kill9: $name: $rounds rounds, $hits killed mid-run, output old $olds / new $news, no temporaries after the next run"
}

# ---- a small random checkpoint, made by `moe train` itself (one step from random weights), with
# rows that are multiples of 32 for Q8_0.
common=(train --layers 2 --d-model 64 --heads 2 --kv-heads 1 --head-dim 32 --experts 4 --experts-per-token 2 --d-ff 64
        --max-seq 256 --seq 32 --batch 2 --eval-batches 1 --no-progress --no-mfu)
data="$work/data.txt"
for i in $(seq 1 400); do echo "line $i of the kill -9 corpus: the quick brown fox jumps over the lazy dog"; done >"$data"
"$moe" "${common[@]}" --steps 1 --data "$data" --out "$work/seed-run" >/dev/null 2>&1 || die "making the checkpoint"
model="$work/seed-run/$(tr -d '\n' <"$work/seed-run/latest")"
[[ -f "$model/model.safetensors" ]] || die "no model.safetensors in $model"
old_differs_from_new() { cmp -s "$1" "$2" && die "$3: the old and the new outputs are equal; the test could not tell them apart"; true; }

# ---- moe eval --logits-out
mkdir -p "$work/eval"
ids_old=$(seq -s, 1 64)
ids_new=$(seq -s, 3 250 | head -c 2000 | sed 's/,[0-9]*$//')
"$moe" eval --model "$model" --ids "$ids_old" --logits-out "$work/eval.old" >/dev/null 2>&1 || die "eval old"
ms=$(timed "$moe" eval --model "$model" --ids "$ids_new" --logits-out "$work/eval.new")
file_output_rounds "eval --logits-out" "$work/eval/logits.bin" "$work/eval.old" "$work/eval.new" "$ms" \
  "$moe" eval --model "$model" --ids "$ids_new" --logits-out "$work/eval/logits.bin"

# ---- moe quantize --out
mkdir -p "$work/quant"
"$moe" quantize --model "$model" --type BF16 --out "$work/quant.old.gguf" --no-progress >/dev/null 2>&1 || die "quantize old"
ms=$(timed "$moe" quantize --model "$model" --type Q8_0 --out "$work/quant.new.gguf" --no-progress)
file_output_rounds "quantize --out" "$work/quant/model.gguf" "$work/quant.old.gguf" "$work/quant.new.gguf" "$ms" \
  "$moe" quantize --model "$model" --type Q8_0 --out "$work/quant/model.gguf" --no-progress

# ---- moe train checkpointing (and the metrics a plot reads, below)
run="$work/run"
train=("$moe" "${common[@]}" --steps 24 --checkpoint-every 2 --log-every 2 --data "$data" --out "$run")
ms=$(timed "${train[@]}" --overwrite)
cp "$run/metrics.jsonl" "$work/metrics.new.jsonl"
hits=0
for ((r = 1; r <= rounds; r++)); do
  # Alternate: a fresh run over the old one, and a resumed run (from whatever the last kill left).
  if ((r % 2)) || [[ ! -f "$run/latest" ]]; then mode=--overwrite; else mode=--resume; fi
  if run_and_kill "$ms" "${train[@]}" "$mode"; then hits=$((hits + 1)); fi
  expect_temporaries_at_most "$run" 1 "train round $r"
  if [[ -f "$run/latest" ]]; then
    step=$(tr -d '\n' <"$run/latest")
    [[ -f "$run/$step/trainer_state.json" ]] || die "train round $r: latest names $step, which is incomplete"
    for f in config.json model.safetensors optimizer.safetensors trainer_state.json; do
      [[ -f "$run/$step/$f" ]] || die "train round $r: $step lacks $f"
    done
    "$moe" eval --model "$run/$step" --ids 1,2,3 >/dev/null 2>"$work/last.err" ||
      die "train round $r: the checkpoint $step does not load: $(cat "$work/last.err")"
  fi
done
# Resume from what the kills left; when the last rounds were all killed before their first checkpoint
# there is nothing to resume (--resume refuses a folder without one, as it should), so start over.
if [[ -f "$run/latest" ]]; then mode=--resume; else mode=--overwrite; fi
"${train[@]}" "$mode" >/dev/null 2>"$work/last.err" || die "train: $mode after the kills failed: $(cat "$work/last.err")"
[[ "$(tr -d '\n' <"$run/latest")" == step-00000024 ]] || die "train: the resumed run did not reach step 24"
expect_temporaries_at_most "$run" 0 "train after the next complete run"
echo "kill9: train checkpoints: $rounds rounds, $hits killed mid-run, every latest checkpoint whole and loadable, no temporaries after the next run"

# ---- moe plot --out (old: the plot of the first metrics line, new: of all of them)
mkdir -p "$work/plot"
head -n 1 "$work/metrics.new.jsonl" >"$work/metrics.old.jsonl"
"$moe" plot "$work/metrics.old.jsonl" --out "$work/plot.old.svg" >/dev/null 2>&1 || die "plot old"
ms=$(timed "$moe" plot "$work/metrics.new.jsonl" --out "$work/plot.new.svg")
file_output_rounds "plot --out" "$work/plot/training.svg" "$work/plot.old.svg" "$work/plot.new.svg" "$ms" \
  "$moe" plot "$work/metrics.new.jsonl" --out "$work/plot/training.svg"

rm -rf "$work"
echo "kill9: PASS"
