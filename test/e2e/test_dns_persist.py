"""dns-persist-01 end to end (issue 15, draft-ietf-acme-dns-persist-02): real httpd + mod_acme
against Pebble behind the CA front (ca_proxy.DnsPersistFront), which advertises the issuer
domain names and accountHashPrefix, offers dns-persist-01, and lets a challenge POST through to
Pebble (PEBBLE_VA_ALWAYS_VALID) only when its own check of the _validation-persist TXT record at
pebble-challtestsrv's DNS passes. The admin's workflow: the first run creates the account and
says which record is missing, `a2acme dns-persist NAME` prints it, the admin publishes it (here:
challtestsrv's management API) and asks for a renewal."""
import re
import subprocess
import time

import pytest

import harness
from acme_site import (site_config, served_cert, serial_of, wait_for_pebble_cert, status,
                       notify_script, notify_events)
from ca_proxy import CaProxy, DnsPersistFront, persist_account_uri

A2ACME = harness.BUILD_DIR / "src" / "a2acme"
ALWAYS_VALID = {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"}}
DOMAINS = [["ok.test", "*.ok.test"], ["missing.test"], ["wrongacct.test"], ["expired.test"],
           ["soon.test"]]


def a2acme(*args):
    return subprocess.run([str(A2ACME), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def last_error(httpd, name):
    dom = status(httpd, name)
    return (((dom.get("renewal") or {}).get("last_error") or {}).get("message")) or ""


def wait_error(httpd, name, needle, timeout=60):
    deadline = time.monotonic() + timeout
    msg = ""
    while time.monotonic() < deadline:
        msg = last_error(httpd, name)
        if needle in msg:
            return msg
        time.sleep(0.3)
    raise AssertionError(f"{name}: last error never had {needle!r}: {msg!r}\n"
                         f"{httpd.log_text()[-4000:]}")


def printed_records(store, name):
    """{fqdn: value} from `a2acme dns-persist NAME` (zone-file lines)."""
    res = a2acme("--store", store, "dns-persist", name)
    assert res.returncode == 0, res.stderr
    out = {}
    for line in res.stdout.splitlines():
        m = re.fullmatch(r'(\S+)\. IN TXT "(.*)"', line)
        if m:
            out[m.group(1)] = m.group(2)
    assert out, res.stdout
    return out


def set_txt(pebble, fqdn, value):
    pebble.challtestsrv.post("set-txt", {"host": fqdn + ".", "value": value})


def clear_txt(pebble, fqdn):
    pebble.challtestsrv.post("clear-txt", {"host": fqdn + "."})


class _Via:
    """site_config's view of the CA: the front's directory, Pebble's trust."""
    def __init__(self, front, pebble):
        self.directory_url, self.ca_file = front.directory_url, pebble.ca_file


@pytest.mark.parametrize("pebble", [ALWAYS_VALID], indirect=True)
def test_dns_persist_records_checked_before_ordering(httpd, pebble, workdir):
    front = CaProxy(pebble)
    front.persist = DnsPersistFront(front, pebble.challtestsrv.dns_port)
    try:
        _run(httpd, pebble, workdir, front)
    finally:
        front.stop()


def _run(httpd, pebble, workdir, front):
    script, events = notify_script(workdir)
    dns = pebble.challtestsrv.dns_port
    extra = "\n".join(["ACMEChallenges dns-persist-01",
                       f"ACMEDns01Propagation check 127.0.0.1:{dns} 10s",
                       "ACMEWarnWindow 30d", f"ACMENotifyCommand {script}"])
    httpd.write_config(site_config(httpd, _Via(front, pebble), DOMAINS, global_first=extra))
    rc, out = httpd.configtest()
    assert rc == 0, out            # a wildcard with dns-persist-01 needs no ACMEDns01Command
    httpd.start()
    store = httpd.root / "acme"

    # First run: the account is made, every record is missing, nothing is ordered.
    for names in DOMAINS:
        msg = wait_error(httpd, names[0], "ACME01601")
        assert "no TXT record at _validation-persist." + names[0] in msg, msg
    assert front.order_times() == [], front.order_times()
    [(acct_url, thumb)] = front.persist.accounts.items()

    # a2acme prints the records; the front computes the same hashed account URI.
    records = {}
    for names in DOMAINS:
        records.update(printed_records(store, names[0]))
    ok = records["_validation-persist.ok.test"]
    want_uri = persist_account_uri(front.persist.prefix, "ok.test", thumb, acct_url)
    assert ok == f"pebble-ca.test; accounturi={want_uri}; policy=wildcard", ok
    assert "policy" not in records["_validation-persist.soon.test"]
    other_uri = persist_account_uri(front.persist.prefix, "wrongacct.test", thumb,
                                    acct_url + "9")
    now = int(time.time())
    set_txt(pebble, "_validation-persist.ok.test", ok)
    set_txt(pebble, "_validation-persist.ok.test", "other-ca.example; accounturi=x")
    set_txt(pebble, "_validation-persist.wrongacct.test", f"pebble-ca.test; accounturi={other_uri}")
    set_txt(pebble, "_validation-persist.expired.test",
            records["_validation-persist.expired.test"] + f"; persistUntil={now - 3600}")
    soon_until = now + 2 * 86400
    set_txt(pebble, "_validation-persist.soon.test",
            records["_validation-persist.soon.test"] + f"; persistUntil={soon_until}")

    # The front's own check (what lets a challenge POST reach Pebble) refuses the wrong records.
    check = front.persist.check
    assert check("ok.test", True, acct_url) is None
    assert "not the account's" in check("wrongacct.test", False, acct_url)
    assert "has passed" in check("expired.test", False, acct_url)
    assert "no TXT record" in check("missing.test", False, acct_url)
    assert "policy=wildcard" in check("soon.test", True, acct_url)
    assert "unknown account" in check("ok.test", False, acct_url + "9")

    for names in DOMAINS:
        assert a2acme("--store", store, "renew", names[0]).returncode == 0
    ok_cert = wait_for_pebble_cert(httpd, DOMAINS[0], timeout=60)
    assert "DNS:*.ok.test" in ok_cert
    wait_for_pebble_cert(httpd, ["soon.test"], timeout=60)
    msg = wait_error(httpd, "wrongacct.test", "names another account")
    expected = persist_account_uri(front.persist.prefix, "wrongacct.test", thumb, acct_url)
    assert f"expected accounturi={expected}" in msg, msg
    assert f"found accounturi={other_uri}" in msg, msg
    msg = wait_error(httpd, "expired.test", "expired")
    assert f"persistUntil={now - 3600}" in msg, msg
    wait_error(httpd, "missing.test", "no TXT record")

    ordered = {n for e in front.order_times() for n in e["names"]}
    assert ordered == {"ok.test", "*.ok.test", "soon.test"}, ordered
    passed = [(n, r) for n, _, r in front.persist.checks]
    assert ("ok.test", None) in passed and ("soon.test", None) in passed, passed
    assert all(r is None for _, r in passed), passed

    # persistUntil inside ACMEWarnWindow: a warning and a notification.
    log = httpd.log_text()
    assert "ACME01602: soon.test" in log and str(soon_until) in log, log[-3000:]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            e[0] == "dns-persist-expiring" for e in notify_events(events)):
        time.sleep(0.3)
    expiring = [e for e in notify_events(events) if e[0] == "dns-persist-expiring"]
    assert expiring and expiring[0][1] == "soon.test", notify_events(events)
    assert str(soon_until) in expiring[0][2]["error"], expiring

    # The record goes away: the renewal stops before ordering, the certificate stays served.
    assert "no TXT record" not in last_error(httpd, "ok.test")     # cleared by the success
    orders_before = len(front.order_times())
    serial = serial_of(served_cert(httpd, "ok.test"))
    clear_txt(pebble, "_validation-persist.ok.test")
    assert a2acme("--store", store, "renew", "ok.test").returncode == 0
    msg = wait_error(httpd, "ok.test", "no TXT record at _validation-persist.ok.test")
    assert "the served certificate (if any) is kept" in msg, msg
    assert len(front.order_times()) == orders_before
    assert serial_of(served_cert(httpd, "ok.test")) == serial

    # That run did not renew soon.test, yet looked its record up again (from
    # jobs/soon.test.persist.json, no CA): warned again, not notified again within the hour.
    assert (store / "jobs" / "soon.test.persist.json").exists()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and httpd.log_text().count("ACME01602: soon.test") < 2:
        time.sleep(0.3)
    assert httpd.log_text().count("ACME01602: soon.test") >= 2, httpd.log_text()[-3000:]
    assert len([e for e in notify_events(events) if e[0] == "dns-persist-expiring"]) == 1
    assert httpd.running()
