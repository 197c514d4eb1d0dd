#!/usr/bin/env bash
# Renewal worker start-up time against N domains with a certificate each (issue 18: it was
# quadratic). Usage: bench/worker_start.sh BUILD_DIR [N...]  (BUILD_DIR holds .libs/libacmecore.a)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?build dir}; shift
ns=${*:-1000 2500 5000 10000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# shellcheck disable=SC2046
gcc -std=c99 -O2 -D_GNU_SOURCE ${ACME_BENCH_SRC:+-I"$ACME_BENCH_SRC"} -I"$top/src" \
    $(apr-1-config --cflags --cppflags --includes) $(apu-1-config --includes) \
    $(pkg-config --cflags openssl libcurl jansson) "$top/bench/worker_start.c" \
    "$build/.libs/libacmecore.a" $(pkg-config --libs openssl libcurl jansson) \
    $(apu-1-config --link-ld --libs) $(apr-1-config --link-ld --libs) -o "$out/worker_start"
for n in $ns; do
    "$out/worker_start" "$n" "$out/run"
done
