#!/usr/bin/env bash
# The Debian package (issue 18): builds libapache2-mod-acme from a copy of the tree, checks it
# with lintian (errors and warnings fail), installs it into this machine's apache2 with apt-get,
# checks its files and that installing did not enable it, enables it (a2enmod ssl acme) and runs
# the configuration test, issues a certificate from Pebble through the packaged module
# (test/e2e/test_package.py, in a private apache2: the system apache2 is never started), then
# disables and purges it and checks that nothing of it is left.
#
#   bash test/package.sh               # all of the above (root; CI runs it)
#   bash test/package.sh --build-only  # build + lintian; the .deb is left in build/package/
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/build/package"
pkg=libapache2-mod-acme
build_only=0
[ "${1:-}" = --build-only ] && build_only=1

fail() { echo "package.sh: FAIL: $*" >&2; exit 1; }
# Installed, or removed with its configuration kept ("not-installed" is neither).
present() { dpkg-query -W -f='${Status}\n' $pkg 2>/dev/null | grep -qE ' (installed|config-files)$'; }

build_and_lint() {
  # The package's version is the top of debian/changelog; it must be the one configure.ac and
  # src/acme_version.h give (a release adds a changelog entry).
  local deb_ver ac_ver
  deb_ver=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
  ac_ver=$(sed -n 's/^AC_INIT(\[mod_acme\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
  [ "$deb_ver" = "$ac_ver" ] || fail "debian/changelog has $deb_ver, configure.ac $ac_ver"
  grep -q "ACME_VERSION \"$ac_ver\"" "$top/src/acme_version.h" \
    || fail "src/acme_version.h is not $ac_ver"
  for page in "$top"/docs/man/*.8; do
    grep -q "^\.TH .* \"mod_acme $ac_ver\"" "$page" || fail "$page: .TH does not say mod_acme $ac_ver"
  done
  rm -rf "$out" && mkdir -p "$out/src"
  # dpkg-buildpackage builds in the source directory: give it the files git knows (tracked and
  # new, not ignored), so a developer's configure output and build dirs stay out.
  (cd "$top" && git ls-files -z -co --exclude-standard) \
    | tar -C "$top" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$out/src" -xf -
  echo "== dpkg-buildpackage -us -uc -b (log: $out/build.log)"
  # The unit tests ran before this step: nocheck.
  if ! (cd "$out/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
        dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1); then
    tail -40 "$out/build.log"; fail "dpkg-buildpackage"
  fi
  deb=$(ls "$out"/${pkg}_*.deb)
  echo "built $deb"
  echo "== lintian (the .changes: both .debs and the .buildinfo)"
  local lint rc=0
  lint=$(lintian --fail-on error,warning "$out"/${pkg}_*.changes 2>&1) || rc=$?
  grep -v '^running with root privileges' <<<"$lint" || true
  [ "$rc" = 0 ] || fail "lintian (exit status $rc)"
}

build_and_lint
[ "$build_only" = 1 ] && exit 0
[ "$(id -u)" = 0 ] || fail "installing needs root"

export DEBIAN_FRONTEND=noninteractive
mods_before=$(ls /etc/apache2/mods-enabled)

# Leaves the machine as it was, also when a check fails: package purged, the modules this script
# enabled (ssl and what it needs) disabled again.
restore() {
  if present; then
    a2dismod -q acme >/dev/null 2>&1 || true
    apt-get purge -y -q $pkg >/dev/null 2>&1 || true
  fi
  for m in $(comm -13 <(echo "$mods_before") <(ls /etc/apache2/mods-enabled) \
             | sed -n 's/\.load$//p'); do
    # -p: no "disabled by admin" marker either, as if never enabled.
    a2dismod -q -f -p "$m" >/dev/null 2>&1 || true
  done
}
trap restore EXIT

if present; then
  echo "purging $pkg left by an earlier run"
  apt-get purge -y -q $pkg >/dev/null
fi

echo "== apt-get install ./$(basename "$deb")"
apt-get install -y -q "$deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "install"; }

echo "== installed files"
for f in /usr/lib/apache2/modules/mod_acme.so /etc/apache2/mods-available/acme.load \
         /etc/apache2/mods-available/acme.conf /usr/sbin/a2acme \
         /usr/share/man/man8/a2acme.8.gz /usr/share/man/man8/mod_acme.8.gz \
         /usr/share/doc/$pkg/copyright /usr/share/doc/$pkg/README.Debian \
         /usr/share/doc/$pkg/directives.md.gz /usr/share/doc/$pkg/admin-guide.md.gz \
         /usr/share/doc/$pkg/a2acme.md.gz; do
  [ -f "$f" ] || fail "$f is missing"
done
[ "$(stat -c '%F %a %U:%G' /etc/apache2/acme)" = "directory 755 root:root" ] \
  || fail "store /etc/apache2/acme: $(stat -c '%F %a %U:%G' /etc/apache2/acme 2>&1)"
grep -qx "LoadModule acme_module /usr/lib/apache2/modules/mod_acme.so" \
  /etc/apache2/mods-available/acme.load || fail "acme.load does not load the packaged module"
for page in a2acme mod_acme; do
  [ "$(man -w "$page")" = "/usr/share/man/man8/$page.8.gz" ] || fail "man $page not found"
  warn=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \
         "/usr/share/man/man8/$page.8.gz" 2>&1 >/dev/null)
  [ -z "$warn" ] || fail "man $page warns: $warn"
done

echo "== not enabled by the installation; a2enmod ssl acme; apache2ctl -t"
[ ! -e /etc/apache2/mods-enabled/acme.load ] || fail "installing enabled the module"
a2query -q -m acme && fail "a2query says acme is enabled after installation"
a2enmod -q ssl acme >/dev/null
[ -L /etc/apache2/mods-enabled/acme.load ] && [ -L /etc/apache2/mods-enabled/acme.conf ] \
  || fail "a2enmod acme made no links"
apache2ctl -t || fail "configtest of the system apache2 with the packaged module"

echo "== issuance from Pebble through the packaged module (test_package.py)"
(cd "$top/test/e2e" && ACME_PACKAGE_TEST=1 ACME_MODULE_SO=/usr/lib/apache2/modules/mod_acme.so \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider --timeout=300 test_package.py) \
  || fail "test_package.py"

echo "== a2dismod acme; apt-get remove, then purge $pkg; nothing left"
a2dismod -q acme
[ ! -e /etc/apache2/mods-enabled/acme.load ] || fail "a2dismod left the link"
dpkg -L $pkg >"$out/files.list"
# remove keeps the configuration and the store (README.Debian), purge deletes them.
apt-get remove -y -q $pkg >"$out/remove.log" 2>&1 || { cat "$out/remove.log"; fail "remove"; }
[ -d /etc/apache2/acme ] && [ -f /etc/apache2/mods-available/acme.load ] \
  || fail "apt-get remove deleted the store or the configuration"
[ ! -e /usr/lib/apache2/modules/mod_acme.so ] || fail "apt-get remove left the module"
apt-get purge -y -q $pkg >"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "purge"; }
present && fail "still installed after purge"
left=()
while read -r path; do
  [ -e "$path" ] || [ -L "$path" ] || continue
  # The root and the directories other packages also own (/etc/apache2, /usr/sbin…) stay.
  [ "$path" = /. ] && continue
  [ -d "$path" ] && [ ! -L "$path" ] && dpkg -S "$path" >/dev/null 2>&1 && continue
  left+=("$path")
done <"$out/files.list"
for path in /etc/apache2/acme /etc/apache2/mods-enabled/acme.load \
            /etc/apache2/mods-enabled/acme.conf /var/lib/apache2/module/*/acme; do
  [ -e "$path" ] || [ -L "$path" ] && left+=("$path")
done
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
echo "package.sh: OK ($(basename "$deb") built, lintian clean, installed, used, purged)"
