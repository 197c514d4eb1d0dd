#!/usr/bin/env bash
# Builds and runs every libFuzzer harness for a bounded time: test/fuzz/run.sh SECONDS splits
# SECONDS over the harnesses (FUZZ_PER_HARNESS=1: SECONDS each). Each harness starts from a copy
# of its seed corpus (test/fuzz/corpus/<harness>/, never written to). Prints executions and
# crashes per harness and a closing line; exits non-zero on any crash, leak, sanitizer report
# or timeout, leaving the input under build/fuzz/artifacts/.
# FUZZ_SEED: libFuzzer's seed, 1 by default so that a CI run is reproducible (the same inputs on
# every machine for the same corpus); FUZZ_SEED=0 lets libFuzzer pick one, for the long runs of
# bench/fuzz_long.sh that look for new findings.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${ACME_FUZZ_DIR:-$top/build/fuzz}
seconds=${1:-120}

[ "${FUZZ_NO_BUILD:-}" = 1 ] || bash "$top/test/fuzz/build.sh" >/dev/null
harnesses=()
for h in "$top"/test/fuzz/fuzz_*.c; do
  harnesses+=("$(basename "${h%.c}")")
done
if [ "${FUZZ_PER_HARNESS:-}" = 1 ]; then
  each=$seconds
else
  each=$(( seconds / ${#harnesses[@]} ))
fi
[ "$each" -ge 1 ] || each=1

mkdir -p "$out/artifacts"
total_execs=0 total_crashes=0 failed=()
for name in "${harnesses[@]}"; do
  work="$out/work/$name"
  rm -rf "$work"
  mkdir -p "$work/corpus"
  if [ -d "$top/test/fuzz/corpus/$name" ]; then
    cp -r -- "$top/test/fuzz/corpus/$name"/. "$work/corpus/"
  fi
  rc=0
  (cd "$work" && ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$out/$name" -max_total_time="$each" -seed="${FUZZ_SEED:-1}" -timeout=20 -rss_limit_mb=2560 -max_len=16384 \
       -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" corpus \
       </dev/null >"$work/log" 2>&1) || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  execs=${execs:-0}
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    failed+=("$name")
  fi
  total_execs=$((total_execs + execs))
  total_crashes=$((total_crashes + crashes))
  printf '%-16s %12s executions %3s crashes  (%ss, corpus %s)\n' "$name" "$execs" "$crashes" \
    "$each" "$(find "$work/corpus" -type f | wc -l)"
  if [ "$rc" -ne 0 ]; then
    echo "--- $name failed (exit $rc); log $work/log:"
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written|^Base64' "$work/log" | head -20 || true
  fi
done
if [ ${#failed[@]} -eq 0 ]; then
  echo "fuzz: ${#harnesses[@]} harnesses, $total_execs executions, 0 crashes: OK"
else
  echo "fuzz: ${#harnesses[@]} harnesses, $total_execs executions, $total_crashes crashes" \
       "(${failed[*]}): FAILED"
  exit 1
fi
