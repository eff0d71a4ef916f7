#!/usr/bin/env bash
# Runs each libFuzzer target of a MOE_FUZZ build (fuzz/CMakeLists.txt) for a bounded time, one at a
# time in one process (libFuzzer's -jobs would fork workers and write fuzz-N.log into the current folder), starting from its committed seed corpus fuzz/corpus/<target>/ (never written);
# new inputs go to BUILD/fuzz-corpus/<target>/, crashing inputs to BUILD/fuzz-findings/<target>/.
# Prints one line per target (executions, rate, result) and exits 1 when any target found something.
#
# Usage: scripts/fuzz.sh BUILD [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, every target)
# FUZZ_RUNS=N: each target also stops after N executions (libFuzzer's -runs), whichever comes first.
# FUZZ_PAUSE_FILE=path: while that file exists no target starts, and a running one is stopped (its
# executions so far are reported), so the fuzzers can share a machine with timing runs.
set -uo pipefail

build=${1:?usage: scripts/fuzz.sh BUILD [SECONDS] [TARGET...]}
seconds=${2:-60}
shift $(($# >= 2 ? 2 : $#))
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=()
  for f in "$root"/fuzz/*_fuzz.cc; do
    n=$(basename "$f" _fuzz.cc)
    targets+=("$n")
  done
fi
pause=${FUZZ_PAUSE_FILE:-}
runs=${FUZZ_RUNS:--1}
if ! [[ "$runs" =~ ^(-1|[1-9][0-9]*)$ ]]; then
  echo "fuzz: FUZZ_RUNS must be a positive number of executions, got '$runs'" >&2
  exit 2
fi
log_dir="$build/fuzz-logs"
mkdir -p "$log_dir"

wait_for_quiet_end() {
  [[ -n "$pause" ]] || return 0
  while [[ -e "$pause" ]]; do sleep 10; done
}

executions() {  # from libFuzzer's final stats, else its last status line
  local n
  n=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$1" | tail -1 | awk '{print $2}')
  [[ -n "$n" ]] || n=$(grep -oE '^#[0-9]+' "$1" | tail -1 | tr -d '#')
  echo "${n:-0}"
}

found=0
printf '%-16s %8s %14s %10s  %s\n' target seconds executions exec/s result
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  if [[ ! -x "$bin" ]]; then
    echo "fuzz: $bin is missing; build it with: make fuzz (or cmake --build $build --target fuzz_all)" >&2
    exit 2
  fi
  wait_for_quiet_end
  corpus="$build/fuzz-corpus/$t"
  findings="$build/fuzz-findings/$t"
  mkdir -p "$corpus" "$findings"
  dict=()
  [[ -f "$root/fuzz/dict/$t.dict" ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  log="$log_dir/$t.log"
  start=$(date +%s)
  "$bin" "$corpus" "$root/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1 &
  pid=$!
  stopped=""
  while kill -0 "$pid" 2>/dev/null; do
    if [[ -n "$pause" && -e "$pause" ]]; then
      kill -INT "$pid" 2>/dev/null
      stopped=" (stopped early: $pause appeared)"
    fi
    sleep 2
  done
  wait "$pid"
  rc=$?
  elapsed=$(($(date +%s) - start))
  n=$(executions "$log")
  rate=$((n / (elapsed > 0 ? elapsed : 1)))
  result="ok$stopped"
  if [[ $rc -ne 0 && -z "$stopped" ]] || ls "$findings" | grep -q .; then
    result="FINDING (exit $rc): $(ls "$findings" | head -3 | tr '\n' ' ') see $log"
    found=1
  fi
  printf '%-16s %8d %14d %10d  %s\n' "$t" "$elapsed" "$n" "$rate" "$result"
done
exit $found
