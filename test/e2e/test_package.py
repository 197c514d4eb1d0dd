"""The installed Debian package at work (issue 18): a private apache2 loads the PACKAGED module
(/usr/lib/apache2/modules/mod_acme.so, through ACME_MODULE_SO), orders a certificate from
Pebble and serves it; the packaged /usr/sbin/a2acme lists it.

Run by test/package.sh after `apt-get install ./libapache2-mod-acme_*.deb`; skipped otherwise
(ACME_PACKAGE_TEST=1 turns it on). package.sh checks the files, the enable/disable and the purge.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, serial_of

PACKAGED_SO = Path("/usr/lib/apache2/modules/mod_acme.so")
PACKAGED_A2ACME = Path("/usr/sbin/a2acme")
PACKAGED_LOAD = Path("/etc/apache2/mods-available/acme.load")

pytestmark = pytest.mark.skipif(os.environ.get("ACME_PACKAGE_TEST") != "1",
                                reason="needs the installed package (test/package.sh)")


def test_packaged_module_issues_and_packaged_a2acme_lists(httpd, pebble):
    # The fixtures must load the package's module, not a build tree's.
    assert httpd.module == PACKAGED_SO, f"set ACME_MODULE_SO={PACKAGED_SO} (is {httpd.module})"
    assert PACKAGED_SO.is_file() and PACKAGED_A2ACME.is_file()
    assert PACKAGED_LOAD.read_text().split() == ["LoadModule", "acme_module", str(PACKAGED_SO)]

    names = ["www.pkg.test", "pkg.test"]
    httpd.write_config(site_config(httpd, pebble, [names]))
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    served = wait_for_pebble_cert(httpd, names, timeout=90)

    res = subprocess.run([str(PACKAGED_A2ACME), "--store", str(httpd.root / "acme"), "list",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    dom = {d["name"]: d for d in doc["domains"]}["www.pkg.test"]
    assert dom["state"] == "valid", dom
    listed = dom["certificates"][0]["serial"].lower().replace(":", "").lstrip("0")
    assert listed == serial_of(served).lstrip("0"), (dom, served)

    res = subprocess.run([str(PACKAGED_A2ACME), "--version"], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0 and "mod_acme/" in res.stdout, res.stdout + res.stderr
