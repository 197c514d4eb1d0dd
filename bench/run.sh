#!/usr/bin/env bash
# Prints mod_acme's bench figures next to the targets of issue 4 (and mod_md's).
# Builds nothing. Module: $ACME_BUILD_DIR/modules/mod_acme.so (default: the source tree).
# Extra arguments go to bench_module.py (e.g. --only cold --sizes 50, --no-mod-md).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${ACME_BUILD_DIR:-$top}
case $build in /*) ;; *) build=$top/$build ;; esac
if [ ! -f "$build/modules/mod_acme.so" ]; then
  echo "no module at $build/modules/mod_acme.so" >&2
  echo "build it first: 'bash test/build.sh' (builds into build/main; then run with" >&2
  echo "ACME_BUILD_DIR=build/main), or 'make' in a tree configured in place" >&2
  exit 2
fi
for tool in pebble pebble-challtestsrv openssl "${ACME_HTTPD:-/usr/sbin/apache2}"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see test/install-deps.sh)" >&2; exit 2; }
done
export ACME_BUILD_DIR=$build
exec /usr/bin/python3 "$top/bench/bench_module.py" "$@"
