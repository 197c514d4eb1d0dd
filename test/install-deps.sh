#!/usr/bin/env bash
# Installs every package needed to build mod_acme and run its tests and demo (Debian/Ubuntu).
set -euo pipefail

PACKAGES=(
  build-essential autoconf automake libtool pkg-config clang
  apache2 apache2-dev libapr1-dev libaprutil1-dev
  libssl-dev libcurl4-openssl-dev libjansson-dev libcmocka-dev
  pebble openssl curl ca-certificates
  python3 python3-pytest python3-pytest-timeout python3-pytest-xdist python3-cryptography wrk
  bind9 bind9-dnsutils faketime
)
# The sanitizer and libFuzzer runtimes (build/san, test/fuzz) are only Recommended by Debian's
# clang, and recommends are not installed below: libclang-rt-dev names the default clang's.
PACKAGES+=(libclang-rt-dev)
# The Debian package (test/package.sh): dpkg-buildpackage and debhelper (dh_apache2 comes with
# apache2-dev), lintian, fakeroot, and man-db for checking the man pages.
PACKAGES+=(dpkg-dev debhelper lintian fakeroot man-db)
# A real forward proxy for the ACMEProxy tests (test/e2e/proxy.py).
PACKAGES+=(tinyproxy)
# The real Prometheus text parser for the acme-metrics test (test/e2e/test_metrics.py), and YAML
# for checking docs/examples/acme-alerts.yml.
PACKAGES+=(python3-prometheus-client python3-yaml)
# A real etcd cluster (3 members on loopback) for the cluster tests (issue 16), and etcdctl to
# read back what the nodes wrote.
PACKAGES+=(etcd-server etcd-client)
# A real HAProxy loading the ACMEExport haproxy directory (test/e2e/test_export.py); setpriv
# (util-linux) checks the exported keys are unreadable by the httpd User.
PACKAGES+=(haproxy util-linux)
# gdb: a test that times out waiting for a certificate shows the stacks of httpd's parent and
# renewal worker (harness.Httpd.processes), so that a hang seen once in CI can be read.
PACKAGES+=(gdb)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Debian apache2 package starts a system instance on port 80; the tests use their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q apache2 2>/dev/null; then
  $SUDO systemctl stop apache2 || true
fi
# So does etcd-server (on 2379); the tests start their own members on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q etcd 2>/dev/null; then
  $SUDO systemctl stop etcd || true
fi
# Debian's haproxy package starts a system instance too; the export test starts its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q haproxy 2>/dev/null; then
  $SUDO systemctl stop haproxy || true
fi
