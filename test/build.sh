#!/usr/bin/env bash
# Builds mod_acme out of tree: build/main (gcc, warnings are errors) and, with --sanitizers,
# build/san (clang, AddressSanitizer + UndefinedBehaviorSanitizer) for the unit tests.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ -f config.status ]; then
  echo "the source tree is configured in place; run 'make distclean' there first" >&2
  exit 1
fi
[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || autoreconf -fi

build() {
  local dir=$1; shift
  mkdir -p "$dir"
  (cd "$dir" && { [ -f Makefile ] || "$top/configure" --enable-werror "$@" >configure.out; } && make -j"$(nproc)" >/dev/null)
}

build build/main CC=gcc
if [ "${1:-}" = "--sanitizers" ]; then
  build build/san CC=clang --enable-sanitizers
fi
