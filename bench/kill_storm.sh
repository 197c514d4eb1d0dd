#!/bin/sh
# SIGKILL storms (issue 14 fault matrix): prints kills, kills in the newOrder->saved window,
# duplicate orders, corrupt files, names served and times. Usage:
#   bench/kill_storm.sh [worker-kills] [tree-kills]   (KILL_STORM_SEED=<n> repeats a run)
set -e
cd "$(dirname "$0")/../test/e2e"
KILL_STORM_WORKER_KILLS="${1:-100}" KILL_STORM_TREE_KILLS="${2:-20}" \
ACME_BUILD_DIR="${ACME_BUILD_DIR:-$PWD/../../build/main}" \
    /usr/bin/python3 -m pytest -q -s -p no:cacheprovider --timeout=3600 test_kill_storm.py \
    | grep -E "KILL_STORM_SEED|kill storm figures|passed|failed"
