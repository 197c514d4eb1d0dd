#!/usr/bin/env bash
# The cluster demo (issue 16): a 3-member etcd cluster, Pebble and three apache2 nodes with
# mod_acme on 127.0.0.2-4, sharing certificates through etcd; shows each certificate as each node
# serves it and stops everything. As root, after test/install-deps.sh (ACME_SKIP_DEPS=1 skips it;
# ACME_BUILD_DIR=dir uses that build instead of building build/main).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "${ACME_SKIP_DEPS:-}" = 1 ] || bash test/install-deps.sh
if [ -z "${ACME_BUILD_DIR:-}" ]; then
  bash test/build.sh
  ACME_BUILD_DIR="$top/build/main"
fi
export ACME_BUILD_DIR
ACME_DEMO_PIDFILE=$(mktemp /tmp/mod_acme-cluster-demo.XXXXXX)
export ACME_DEMO_PIDFILE
demo=

# Whatever happens (failure, Ctrl-C, SIGTERM): the script stops what it started; anything still
# running from the PID file (the script killed hard) is stopped here, by PID and process group.
cleanup() {
  local rc=$? hard=0 pid
  trap - EXIT INT TERM
  if [ -n "$demo" ] && kill -0 "$demo" 2>/dev/null; then
    hard=1
    kill -TERM "$demo" 2>/dev/null || true     # its finally block stops what it started
    wait "$demo" 2>/dev/null || true
  fi
  [ "$rc" -lt 128 ] || hard=1
  if [ "$hard" = 1 ]; then
    for sig in TERM KILL; do
      while read -r pid; do
        # only our own processes, should the script have died before stopping them
        grep -qaE 'etcd|pebble|apache2' "/proc/$pid/cmdline" 2>/dev/null || continue
        kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
      done < "$ACME_DEMO_PIDFILE"
      [ "$sig" = KILL ] || sleep 2
    done
  fi
  rm -f "$ACME_DEMO_PIDFILE"
  exit "$rc"
}
trap cleanup EXIT INT TERM

/usr/bin/python3 test/e2e/cluster_demo.py &
demo=$!
wait "$demo"
