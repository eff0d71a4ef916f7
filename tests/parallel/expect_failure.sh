#!/bin/sh
# Runs a command that must fail: passes when it exits non-zero and its output contains PATTERN.
# Usage: expect_failure.sh PATTERN COMMAND... (wrap COMMAND in `timeout` so a hang fails too)
pattern="$1"
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "expect_failure: timed out (a hang)"; exit 1; fi
if [ "$rc" -eq 0 ]; then echo "expect_failure: the command succeeded"; exit 1; fi
if ! printf '%s\n' "$out" | grep -q -- "$pattern"; then echo "expect_failure: output lacks '$pattern'"; exit 1; fi
echo "expect_failure: exit code $rc with the expected message"
