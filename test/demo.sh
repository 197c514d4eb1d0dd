#!/usr/bin/env bash
# The demo: installs what it needs, builds mod_acme, starts Pebble and a private apache2 on
# loopback, obtains certificates for demo names, shows them as a TLS client sees them, stops.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "${ACME_SKIP_DEPS:-}" = 1 ] || bash test/install-deps.sh
bash test/build.sh
ACME_BUILD_DIR="$top/build/main" exec /usr/bin/python3 test/e2e/demo.py
