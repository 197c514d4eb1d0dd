"""The admin command a2acme against a real store: real httpd + mod_acme issuing from Pebble,
a2acme run as a separate process on the store while the server runs."""
import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

import harness
from acme_site import (site_config, served_cert, serial_of, wait_for_pebble_cert, notify_script,
                       notify_events)

A2ACME = harness.BUILD_DIR / "src" / "a2acme"


@pytest.fixture(autouse=True)
def _built():
    if not A2ACME.exists():
        pytest.fail(f"{A2ACME} is missing: build first (make), or set ACME_BUILD_DIR")


def a2acme(*args, timeout=120):
    return subprocess.run([str(A2ACME), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def store_of(httpd):
    return Path(httpd.root) / "acme"


def norm_serial(s):
    return s.lower().replace(":", "").lstrip("0")


def hex_serial(cert_text):
    """The serial of `openssl x509 -text` output as hex: small serials are printed in decimal
    with the hex in parentheses, which acme_site.serial_of reads as hex digits."""
    m = re.search(r"Serial Number: \d+ \(0x([0-9a-f]+)\)", cert_text, re.I)
    return norm_serial(m.group(1)) if m else norm_serial(serial_of(cert_text))


def issued_site(httpd, pebble, domains, global_first=""):
    httpd.write_config(site_config(httpd, pebble, domains, global_first=global_first))
    httpd.start()
    return {names[0]: wait_for_pebble_cert(httpd, names) for names in domains}


def wait_for_new_cert(httpd, name, old_text, timeout=90):
    """The served certificate once its serial differs from old_text's."""
    text = wait_for_pebble_cert(httpd, [name], timeout=timeout, not_serial=serial_of(old_text))
    assert hex_serial(text) != hex_serial(old_text)
    return text


def listed(store):
    res = a2acme("--store", store, "list", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    return {d["name"]: d for d in doc["domains"]}, doc


def test_list_human_and_json_match_the_served_certificate(httpd, pebble):
    serials = issued_site(httpd, pebble, [["www.list.test", "list.test"], ["other.test"]])
    store = store_of(httpd)
    by_name, doc = listed(store)
    assert set(by_name) == {"www.list.test", "other.test"}, doc
    dom = by_name["www.list.test"]
    assert dom["state"] == "valid", dom
    assert set(dom["names"]) == {"www.list.test", "list.test"}
    cert = dom["certificates"][0]
    assert norm_serial(cert["serial"]) == hex_serial(serials["www.list.test"])
    assert "Pebble" in cert["issuer"]
    assert cert["not_after_epoch"] > time.time()
    assert dom["ca"] == pebble.directory_url
    assert dom["staged"] is False
    assert "PRIVATE KEY" not in json.dumps(doc)

    res = a2acme("--store", store, "list")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["DOMAIN", "STATE", "KEY"], res.stdout
    row = next(line for line in lines if line.startswith("www.list.test "))
    assert " valid " in row and "secp256r1" in row
    assert cert["serial"] in row
    assert "list.test" in row.split()[-1]
    assert "PRIVATE KEY" not in res.stdout

    # Without the domain set the server writes, the store itself tells the same.
    (store / "domains.json").rename(store / "domains.json.off")
    scanned, doc = listed(store)
    assert doc["source"] == "store"
    assert set(scanned) == set(by_name)
    assert scanned["www.list.test"]["certificates"][0]["serial"] == cert["serial"]
    assert set(scanned["www.list.test"]["names"]) == {"www.list.test", "list.test"}
    assert scanned["www.list.test"]["state"] == "valid"
    (store / "domains.json.off").rename(store / "domains.json")

    # Through the environment instead of --store.
    res = subprocess.run([str(A2ACME), "list"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "ACME_STORE": str(store)})
    assert res.returncode == 0 and "other.test" in res.stdout, res.stderr


def test_usage_errors_exit_2(workdir):
    missing = Path(workdir) / "no-store-here"
    res = a2acme("--store", missing, "list")
    assert res.returncode == 2
    assert "no store at" in res.stderr and str(missing) in res.stderr
    assert not missing.exists(), "a2acme must not create a store at a mistyped path"
    not_store = Path(workdir) / "empty"
    not_store.mkdir()
    res = a2acme("--store", not_store, "list")
    assert res.returncode == 2 and "not a mod_acme store" in res.stderr
    res = subprocess.run([str(A2ACME), "list"], capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items() if k != "ACME_STORE"})
    assert res.returncode == 2 and "--store" in res.stderr
    assert a2acme("--store", not_store, "frobnicate").returncode == 2
    assert a2acme("--store", not_store, "renew").returncode == 2
    assert a2acme("--store", not_store, "revoke", "x.test", "--reason", "7").returncode == 2
    res = a2acme("--help")
    assert res.returncode == 0 and "rollover" in res.stdout and "revoke" in res.stdout


def test_list_shows_the_last_error(httpd, pebble):
    dead = harness.free_port()
    httpd.write_config(site_config(httpd, pebble, [["broken.test"]]).replace(
        pebble.directory_url, f"https://127.0.0.1:{dead}/dir"))
    httpd.start()
    store = store_of(httpd)
    harness.wait_for(lambda: (listed(store)[0].get("broken.test", {}).get("renewal") or {})
                     .get("last_error"), 30, "the first attempt to fail")
    dom = listed(store)[0]["broken.test"]
    assert dom["state"] in ("failing", "pending"), dom
    assert dom["certificates"] == []
    assert str(dead) in dom["renewal"]["last_error"]["message"]
    res = a2acme("--store", store, "list")
    assert res.returncode == 0, res.stderr
    assert "last error (1 failure" in res.stdout and str(dead) in res.stdout, res.stdout
    # Nothing to revoke, and the CA cannot be reached: exit 1 with the reason.
    res = a2acme("--store", store, "revoke", "broken.test")
    assert res.returncode == 1 and "no certificate to revoke" in res.stderr, res.stderr
    res = a2acme("--store", store, "account")
    assert res.returncode == 1 and str(dead) in res.stderr, res.stderr


def test_revoke_is_visible_at_the_ca_with_its_reason(httpd, pebble):
    serials = issued_site(httpd, pebble, [["revoke.test"]])
    store = store_of(httpd)
    serial = hex_serial(serials["revoke.test"])
    assert pebble.cert_status(serial)["Status"] == "Valid"

    res = a2acme("--store", store, "revoke", "nosuch.test", "--reason", "keyCompromise")
    assert res.returncode == 2 and "unknown domain 'nosuch.test'" in res.stderr, res.stderr

    # The CA's trust comes from the configuration (ACMECACertificate via domains.json).
    res = a2acme("--store", store, "revoke", "revoke.test", "--reason", "keyCompromise",
                 "--no-renew")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "revoked" in res.stdout and "keyCompromise" in res.stdout
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked", status
    assert status["Reason"] == 1, status
    assert not (store / "requests" / "revoke.test.force").exists()   # --no-renew
    # Again: the CA answers alreadyRevoked, which is no error.
    again = a2acme("--store", store, "revoke", "revoke.test", "--no-renew")
    assert again.returncode == 0, again.stderr
    assert httpd.running()


def test_revoke_superseded_by_number_requests_renewal(httpd, pebble, workdir):
    script, events = notify_script(workdir)
    serials = issued_site(httpd, pebble, [["super.test"]],
                          global_first=f"ACMENotifyCommand {script}")
    store = store_of(httpd)
    old = hex_serial(serials["super.test"])
    res = a2acme("--store", store, "revoke", "super.test", "--reason", "4",
                 "--ca-file", pebble.ca_file)
    assert res.returncode == 0, res.stdout + res.stderr
    status = pebble.cert_status(old)
    assert (status["Status"], status["Reason"]) == ("Revoked", 4), status
    assert "renewal requested" in res.stdout
    # The server's ACMENotifyCommand heard of it, with the revoked certificate's serial.
    revoked = [d for e, dom, d in notify_events(events) if e == "revoked" and dom == "super.test"]
    assert len(revoked) == 1, notify_events(events)
    assert norm_serial(revoked[0]["serial"]) == old, revoked
    assert revoked[0]["certificates"][0]["key_type"] == "secp256r1", revoked
    # The server replaces the revoked certificate by itself, and says so.
    new = hex_serial(wait_for_new_cert(httpd, "super.test", serials["super.test"]))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            e == "installed" and norm_serial(d["serial"]) == new
            for e, _, d in notify_events(events)):
        time.sleep(0.5)
    assert [e for e, _, d in notify_events(events) if e == "installed"
            and norm_serial(d["serial"]) == new], notify_events(events)


def test_renew_writes_the_marker_and_the_server_renews(httpd, pebble):
    serials = issued_site(httpd, pebble, [["renew.test"]])
    store = store_of(httpd)
    res = a2acme("--store", store, "renew", "unknown.test")
    assert res.returncode == 2 and "unknown domain" in res.stderr
    res = a2acme("--store", store, "renew", "renew.test")
    assert res.returncode == 0, res.stderr
    marker = store / "requests" / "renew.test.force"
    pid = httpd.proc.pid
    wait_for_new_cert(httpd, "renew.test", serials["renew.test"])
    assert httpd.proc.pid == pid and httpd.running()
    harness.wait_for(lambda: not marker.exists(), 30, "the server to remove the marker")


def test_account_and_rollover(httpd, pebble):
    serials = issued_site(httpd, pebble, [["acct.test"]])
    store = store_of(httpd)
    recorded = [json.loads(p.read_text()) for p in (store / "jobs").glob("account.*.json")]
    assert len(recorded) == 1, recorded
    url = recorded[0]["url"]

    res = a2acme("--store", store, "account")
    assert res.returncode == 0, res.stderr
    assert url in res.stdout and "valid" in res.stdout
    assert "mailto:admin@example.test" in res.stdout
    assert "PRIVATE KEY" not in res.stdout + res.stderr

    res = a2acme("--store", store, "account", "--ca", pebble.directory_url, "--json")
    assert res.returncode == 0, res.stderr
    acct = json.loads(res.stdout)["accounts"][0]
    assert (acct["url"], acct["status"], acct["key_type"]) == (url, "valid", "secp256r1")

    key_files = list((store / "accounts").glob("*/account.key"))
    assert len(key_files) == 1
    old_key = key_files[0].read_bytes()
    res = a2acme("--store", store, "rollover", "--ca", pebble.directory_url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "new secp256r1 key" in res.stdout
    new_key = key_files[0].read_bytes()
    assert new_key != old_key and b"PRIVATE KEY" in new_key
    assert stat.S_IMODE(key_files[0].stat().st_mode) == 0o600
    assert not list((store / "accounts").glob("*/account.key.next"))
    assert any(p == "/rollover-account-key" for _, p in pebble.requests())

    # The CA knows the account by the new key: a signed POST-as-GET with it works.
    res = a2acme("--store", store, "account", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["accounts"][0]["url"] == url

    assert a2acme("--store", store, "renew", "acct.test").returncode == 0
    wait_for_new_cert(httpd, "acct.test", serials["acct.test"])
    assert [r for r in pebble.requests() if r == ("POST", "/sign-me-up")].__len__() == 1


def test_list_in_a_loop_while_the_server_issues(httpd, pebble):
    domains = [[f"loop{i}.test"] for i in range(4)]
    httpd.write_config(site_config(httpd, pebble, domains))
    httpd.start()
    store = store_of(httpd)
    runs, deadline = 0, time.monotonic() + 90
    while time.monotonic() < deadline:
        as_json = runs % 2 == 0
        res = a2acme("--store", store, "list", *(["--json"] if as_json else []), timeout=60)
        assert res.returncode == 0, res.stderr
        runs += 1
        if as_json:
            doc = json.loads(res.stdout)
            if all(d["state"] == "valid" for d in doc["domains"]) and len(doc["domains"]) == 4:
                break
    assert runs >= 2
    for names in domains:
        wait_for_pebble_cert(httpd, names, timeout=60)
    by_name, _ = listed(store)
    for names in domains:
        served = hex_serial(served_cert(httpd, names[0]))
        assert by_name[names[0]]["state"] == "valid"
        assert norm_serial(by_name[names[0]]["certificates"][0]["serial"]) == norm_serial(served)
    assert httpd.running()
    assert "activation refused" not in httpd.log_text()
