#!/usr/bin/env bash
# Runs every libFuzzer harness (test/fuzz/) for longer: bench/fuzz.sh [SECONDS per harness, 60].
# Prints executions and crashes per harness, the total, and the issue 14 target
# (>= 10^7 executions in all, 0 crashes). Random seeds (CI uses a fixed one), so a long run finds
# what CI cannot. Exit status: non-zero on any crash.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

rc=0
FUZZ_SEED=${FUZZ_SEED:-0} FUZZ_PER_HARNESS=1 bash "$top/test/fuzz/run.sh" "$seconds" | tee "$log" || rc=$?
total=$(awk '/ executions /{s += $2} END {print s + 0}' "$log")
crashes=$(awk '/ executions /{s += $4} END {print s + 0}' "$log")
echo "total: $total executions, $crashes crashes in $(grep -c ' executions ' "$log") harnesses" \
     "x ${seconds}s (target: >= 10000000 executions, 0 crashes:" \
     "$([ "$total" -ge 10000000 ] && [ "$crashes" -eq 0 ] && echo met || echo not met))"
exit "$rc"
