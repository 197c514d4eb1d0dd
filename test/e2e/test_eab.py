"""Issue 15, external account binding from httpd.conf: `ACMEExternalAccountBinding key-id
hmac-file` against a real Pebble that requires it (externalAccountBindingRequired with its MAC
keys). The right key issues; a wrong key and a missing directive are clear errors; a key file
others can read fails configtest; the HMAC key never reaches a log, the status or the store."""
import os
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert

KID = "kid-1"
HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
WRONG = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"
EAB = {"config": {"externalAccountBindingRequired": True,
                  "externalAccountMACKeys": {KID: HMAC}}}
NAMES = ["eab.test"]


def _key_file(workdir, name, text, mode=0o600):
    path = Path(workdir) / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def _config(httpd, pebble, binding=""):
    return site_config(httpd, pebble, [NAMES],
                       global_first=binding + "\nACMECheckInterval 1m",
                       extra="LogLevel warn acme:trace8\n")


def _everything_written(httpd, skip):
    """Text of every file httpd and the module wrote: logs, store, status."""
    parts = []
    for path in Path(httpd.root).rglob("*"):
        if path.is_file() and not path.is_symlink() and path != skip:
            parts.append(path.read_bytes().decode(errors="replace"))
    status = httpd.get("/acme-status")
    parts.append(str(status))
    return "\n".join(parts)


def _wait_for_log(httpd, text, timeout=60):
    harness.wait_for(lambda: text in httpd.log_text() or not httpd.running(), timeout,
                     f"{text!r} in the error log")
    assert httpd.running(), httpd.log_text()[-4000:]


@pytest.mark.parametrize("pebble", [EAB], indirect=True)
def test_bound_account_issues_and_the_key_stays_secret(httpd, pebble, workdir):
    key = _key_file(workdir, "eab.key", HMAC)
    httpd.write_config(_config(httpd, pebble, f"ACMEExternalAccountBinding {KID} {key}"))
    httpd.start()
    wait_for_pebble_cert(httpd, NAMES)
    written = _everything_written(httpd, skip=key)
    assert HMAC not in written, "the HMAC key was written somewhere"
    assert KID in (Path(httpd.root) / "acme" / "domains.json").read_text()


@pytest.mark.parametrize("pebble", [EAB], indirect=True)
def test_wrong_key_is_a_clear_error(httpd, pebble, workdir):
    key = _key_file(workdir, "wrong.key", WRONG)
    httpd.write_config(_config(httpd, pebble, f"ACMEExternalAccountBinding {KID} {key}"))
    httpd.start()
    _wait_for_log(httpd, "refused the external account binding")
    log = httpd.log_text()
    assert f'key id "{KID}"' in log, log[-4000:]
    assert "only once" in log, log[-4000:]
    assert WRONG not in _everything_written(httpd, skip=key)


@pytest.mark.parametrize("pebble", [EAB], indirect=True)
def test_missing_binding_names_the_directive(httpd, pebble):
    httpd.write_config(_config(httpd, pebble))
    httpd.start()
    _wait_for_log(httpd, "requires external account binding")
    assert "ACMEExternalAccountBinding key-id hmac-file" in httpd.log_text()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_key_file_others_can_read_fails_configtest(httpd_alone, workdir, mode):
    key = _key_file(workdir, "open.key", HMAC, mode)
    line = f"ACMEExternalAccountBinding {KID} {key}"
    conf = httpd_alone.write_config(line + "\nACMEDomain open.test\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    n = conf.read_text().splitlines().index(line) + 1
    assert f"Syntax error on line {n} of {conf}" in out, out
    assert str(key) in out and "chmod 600" in out, out
    assert HMAC not in out


def test_two_key_ids_for_one_ca_fail_configtest(httpd_alone, workdir):
    one = _key_file(workdir, "one.key", HMAC)
    two = _key_file(workdir, "two.key", WRONG)
    conf = httpd_alone.write_config(
        f"<ACMEDomain a.test>\n  ACMEExternalAccountBinding kid-a {one}\n</ACMEDomain>\n"
        f"<ACMEDomain b.test>\n  ACMEExternalAccountBinding kid-b {two}\n</ACMEDomain>\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    assert "already bound with key id kid-a" in out, out
    assert "one account per CA takes one binding" in out, out
    assert str(conf) in out, out
