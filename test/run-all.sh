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

# The Debian package: built from a copy of the tree, lintian-clean, installed into this machine's
# apache2, used for an issuance from Pebble, purged (about 2 minutes; see the script).
echo "== Debian package (build, lintian, install, issue, purge)"
bash test/package.sh

echo "== fuzzing (libFuzzer, clang, address + undefined sanitizers, about 2 minutes)"
bash test/fuzz/run.sh "${ACME_FUZZ_SECONDS:-120}" </dev/null

# Two pytest-xdist workers, each taking whole files (--dist loadfile: a file's tests share its
# helpers and order) and ports from its own block (harness.free_port). Most tests wait for
# certificates to age or for the CA, so two workers halve the wall time on two cores.
echo "== end-to-end tests (apache2 + pebble)"
cd test/e2e
ACME_BUILD_DIR="$top/build/main" /usr/bin/python3 -m pytest -v -p no:cacheprovider \
  -n "${ACME_E2E_WORKERS:-2}" --dist loadfile --durations=25 --timeout=600 "$@"

# The same module built with ASan + UBSan (build/san), loaded into apache2 with clang's runtime
# preloaded (harness.sanitizer_setup): issuance, renewal, activation, hostile input, profiles,
# account life, dns-persist-01, server-status, metrics, ACMEExport, the etcd client, the
# certificate API, hot activation, on-demand certificates and the etcd cluster; a test
# fails on any sanitizer report of any process. Left out to stay within about 5 minutes, because
# they mostly wait for 60-second certificates to age (their code paths run in the tests kept):
# the short-lived renewal of test_issue (renewal + reactivation: the MPM test below covers it),
# the worker and prefork runs of the MPM test (event runs), and the ARI window test (the other
# ARI tests run).
echo "== end-to-end tests under AddressSanitizer + UndefinedBehaviorSanitizer (build/san)"
ACME_SANITIZE=1 ACME_BUILD_DIR="$top/build/san" /usr/bin/python3 -m pytest -v -p no:cacheprovider \
  -n "${ACME_E2E_WORKERS:-2}" --dist loadfile --timeout=600 --durations=5 \
  test_module.py test_issue.py test_renewal.py test_activation.py test_hostile.py \
  test_profile.py test_account_life.py test_dns_persist.py \
  test_server_status.py test_metrics.py test_export.py test_etcd_client.py \
  test_api.py test_hot_activation.py test_ondemand.py test_cluster.py \
  --deselect test_issue.py::test_short_lived_certificate_is_renewed_and_reactivated \
  --deselect "test_hot_activation.py::test_renewals_are_served_without_a_restart[worker-short-validity]" \
  --deselect "test_hot_activation.py::test_renewals_are_served_without_a_restart[prefork-short-validity]" \
  --deselect "test_activation.py::test_issuance_renewal_and_activation_under_each_mpm[worker-short-validity]" \
  --deselect "test_activation.py::test_issuance_renewal_and_activation_under_each_mpm[prefork-short-validity]" \
  --deselect test_renewal.py::test_ari_window_brings_renewal_forward
