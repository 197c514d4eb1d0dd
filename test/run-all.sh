#!/usr/bin/env bash
# Runs every test: unit tests (gcc, then clang with ASan/UBSan), the libFuzzer harnesses for a
# bounded time, and the end-to-end tests against a real apache2 and a real Pebble on loopback.
# Installs what it needs first.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

[ "${ACME_SKIP_DEPS:-}" = 1 ] || bash test/install-deps.sh
bash test/build.sh --sanitizers

echo "== unit tests (gcc)"
make -C build/main check
echo "== unit tests (clang, address + undefined sanitizers)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 make -C build/san check

echo "== fuzzing (libFuzzer, clang, address + undefined sanitizers, about 2 minutes)"
bash test/fuzz/run.sh "${ACME_FUZZ_SECONDS:-120}" </dev/null

echo "== end-to-end tests (apache2 + pebble)"
cd test/e2e
ACME_BUILD_DIR="$top/build/main" /usr/bin/python3 -m pytest -v -p no:cacheprovider \
  --timeout=600 "$@"
