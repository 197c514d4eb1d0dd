"""Issue 15, account life: `a2acme account contact | bind | deactivate | agree` against a real
Pebble (requiring external account binding, as ZeroSSL-like CAs do), a changed ACMEContactEmail
pushed to the CA by the worker, and, through the CA front (ca_proxy.py), changed terms of
service (logged, notified as `tos-changed`, shown in the status) and a CA answering newOrder
with userActionRequired: its orders stop, the terms are named, the served certificate stays and
a domain with a second CA is issued there."""
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

import harness
from acme_site import (site_config, served_cert, serial_of, status, wait_for_pebble_cert,
                       notify_script, notify_events)
from ca_proxy import CaProxy

A2ACME = harness.BUILD_DIR / "src" / "a2acme"
HMAC1 = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
HMAC2 = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"
EAB = {"config": {"externalAccountBindingRequired": True,
                  "externalAccountMACKeys": {"kid-1": HMAC1, "kid-2": HMAC2}}}
TOS2 = "https://ca.example/terms-v2.pdf"
TOS3 = "https://ca.example/terms-v3.pdf"


def a2acme(store, *args):
    return subprocess.run([str(A2ACME), "--store", str(store), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def account_json(store, *extra):
    res = a2acme(store, "account", "--json", *extra)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["accounts"][0]


def wait_for_log(httpd, text, timeout=60, after=0):
    harness.wait_for(lambda: text in httpd.log_text()[after:] or not httpd.running(), timeout,
                     f"{text!r} in the error log")
    assert httpd.running(), httpd.log_text()[-4000:]
    return httpd.log_text()[after:]


def graceful_until(httpd, text, after, timeout=60):
    """Graceful restarts until `text` is logged after offset `after`: a worker still running
    from the previous generation carries on with the old configuration, so a restart only
    brings a new worker (with the new configuration) once the old one has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        httpd.graceful()
        try:
            return wait_for_log(httpd, text, timeout=5, after=after)
        except TimeoutError:
            continue
    return wait_for_log(httpd, text, timeout=1, after=after)


def key_file(workdir, name, text, mode=0o600):
    path = Path(workdir) / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def record_of(store, ca_url):
    for path in (Path(store) / "jobs").glob("account.*.json"):
        doc = json.loads(path.read_text())
        if doc.get("ca_url") == ca_url:
            return doc
    return None


@pytest.mark.parametrize("pebble", [EAB], indirect=True)
def test_contact_bind_and_deactivate_with_a2acme(httpd, pebble, workdir):
    store = Path(httpd.root) / "acme"
    key1 = key_file(workdir, "eab1.key", HMAC1)
    binding = f"ACMEExternalAccountBinding kid-1 {key1}\nLogLevel warn acme:info"

    def config(contact, domains):
        return site_config(httpd, pebble, domains, global_first=binding).replace(
            "ACMEContactEmail admin@example.test", f"ACMEContactEmail {contact}")

    httpd.write_config(config("admin@example.test", [["acct.test"]]))
    httpd.start()
    served = wait_for_pebble_cert(httpd, ["acct.test"])
    first = account_json(store)
    assert first["contact"] == ["mailto:admin@example.test"], first

    # The admin sets the contact at the CA; a wrong one is a usage error, before any request.
    res = a2acme(store, "account", "contact", "tel:+4912345")
    assert res.returncode == 2 and "only mailto" in res.stderr, res.stderr
    res = a2acme(store, "account", "contact", "mailto:ops@example.test", "sec@example.test")
    assert res.returncode == 0, res.stderr
    assert account_json(store)["contact"] == ["mailto:ops@example.test",
                                              "mailto:sec@example.test"]

    # A changed ACMEContactEmail reaches the CA through the worker (message ID ACME01501).
    mark = len(httpd.log_text())
    httpd.write_config(config("new@example.test", [["acct.test"]]))
    log = graceful_until(httpd, "ACME01501", mark)
    assert "new@example.test" in log, log
    assert account_json(store)["contact"] == ["mailto:new@example.test"]

    # bind: a key file others may read is refused without showing it, then a new bound account.
    open_key = key_file(workdir, "eab2-open.key", HMAC2, 0o644)
    res = a2acme(store, "account", "bind", "kid-2", open_key)
    assert res.returncode == 1 and "chmod 600" in res.stderr, res.stderr
    assert HMAC2 not in res.stdout + res.stderr
    assert a2acme(store, "account", "bind", "kid-2").returncode == 2
    key2 = key_file(workdir, "eab2.key", HMAC2)
    res = a2acme(store, "account", "bind", "kid-2", key2)
    assert res.returncode == 0, res.stderr
    assert "bound with key id kid-2" in res.stdout and HMAC2 not in res.stdout, res.stdout
    bound = account_json(store)
    assert bound["url"] != first["url"] and bound["status"] == "valid", bound
    assert bound["eab_kid"] == "kid-2", bound
    assert bound["contact"] == ["mailto:new@example.test"], bound
    assert "a2acme account bind" in bound["history"][-1]["reason"], bound

    # deactivate: irreversible at the CA, recorded, and the worker does not register again.
    res = a2acme(store, "account", "deactivate")
    assert res.returncode == 0, res.stderr
    assert "deactivated" in res.stdout and "account.key" in res.stdout, res.stdout
    rec = record_of(store, pebble.directory_url)
    assert rec["deactivated_at"] and rec["url"] == bound["url"], rec
    gone = account_json(store)
    assert gone["status"] == "deactivated" and gone["deactivated_at"], gone
    mark = len(httpd.log_text())
    httpd.write_config(config("new@example.test", [["acct.test"], ["after.test"]]))
    log = graceful_until(httpd, "ACME01507", mark)
    assert "after.test" in log and "a2acme account deactivate" in log, log
    assert record_of(store, pebble.directory_url)["url"] == bound["url"]
    assert serial_of(served_cert(httpd, "acct.test")) == serial_of(served)
    for path in Path(httpd.root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes().decode(errors="replace")
            assert HMAC1 not in text and HMAC2 not in text, path


def _via(conf, pebble, urls_by_domain):
    """The site's config with each ACMEDomain given its own CA list."""
    conf = conf.replace(f"ACMECertificateAuthority {pebble.directory_url}\n", "")
    for name, urls in urls_by_domain.items():
        conf = conf.replace(f"ACMEDomain {name}\n",
                            f"<ACMEDomain {name}>\n  ACMECertificateAuthority {' '.join(urls)}\n"
                            "</ACMEDomain>\n")
    return conf


def test_terms_change_and_user_action_required(httpd, pebble, workdir):
    script, events = notify_script(workdir)
    front = CaProxy(pebble)
    try:
        front.tos_url = "https://ca.example/terms-v1.pdf"
        direct = pebble.directory_url

        def config(cas):
            return _via(site_config(httpd, pebble, [[n] for n in cas],
                                    global_first=f"ACMENotifyCommand {script}\n"
                                                 "LogLevel warn acme:info"), pebble, cas)

        httpd.write_config(config({"old.test": [front.directory_url]}))
        httpd.start()
        served = wait_for_pebble_cert(httpd, ["old.test"])

        # New terms in the directory: logged (ACME01503), notified, shown; accepted goes on.
        # (A worker runs at each check and when the domain set changes: a new domain here.)
        front.tos_url = TOS2
        mark = len(httpd.log_text())
        httpd.write_config(config({"old.test": [front.directory_url],
                                   "two.test": [front.directory_url]}))
        graceful_until(httpd, "two.test: requesting", mark)
        log = wait_for_log(httpd, "ACME01503", after=mark)
        assert TOS2 in log and "recorded as agreed" in log, log
        harness.wait_for(lambda: any(e[0] == "tos-changed" for e in notify_events(events)), 30,
                         "the tos-changed notification")
        ev = [e for e in notify_events(events) if e[0] == "tos-changed"][0]
        assert ev[2]["terms_of_service"] == TOS2 and ev[2]["ca"] == front.directory_url, ev
        acct = [a for a in status(httpd)["accounts"] if a["ca"] == front.directory_url][0]
        assert acct["terms_of_service"]["current"] == TOS2, acct
        assert acct["terms_of_service"]["agreed"] == TOS2, acct
        wait_for_pebble_cert(httpd, ["two.test"])

        # newOrder answers userActionRequired: that CA is blocked (ACME01504, terms named), the
        # served certificate stays, and a domain with a second CA is issued there.
        front.user_action_terms = TOS3
        mark = len(httpd.log_text())
        httpd.write_config(config({"old.test": [front.directory_url],
                                   "two.test": [front.directory_url],
                                   "blocked.test": [front.directory_url],
                                   "next.test": [front.directory_url, direct]}))
        log = graceful_until(httpd, "ACME01504", mark)
        assert TOS3 in log and "a2acme account agree" in log, log
        wait_for_pebble_cert(httpd, ["next.test"])
        assert status(httpd, "next.test")["renewal"]["ca_url"] == direct
        acct = [a for a in status(httpd)["accounts"] if a["ca"] == front.directory_url][0]
        assert acct["terms_of_service"]["blocked"] == TOS3, acct
        assert acct["terms_of_service"]["orders_stopped"] is True, acct
        assert serial_of(served_cert(httpd, "old.test")) == serial_of(served)
        harness.wait_for(lambda: any(e[0] == "tos-changed" and e[2]["terms_of_service"] == TOS3
                                     for e in notify_events(events)), 30, "tos-changed for v3")

        # While blocked, orders for that CA never reach it.
        refused = front.user_action_refused
        mark = len(httpd.log_text())
        httpd.write_config(config({"old.test": [front.directory_url],
                                   "two.test": [front.directory_url],
                                   "blocked.test": [front.directory_url],
                                   "next.test": [front.directory_url, direct],
                                   "later.test": [front.directory_url]}))
        log = graceful_until(httpd, "ACME01505", mark)
        assert "later.test" in log and TOS3 in log, log
        assert front.user_action_refused == refused

        # The admin agrees: the block is lifted in the store.
        front.user_action_terms = None
        front.tos_url = TOS3
        res = a2acme(Path(httpd.root) / "acme", "account", "agree", "--ca", front.directory_url)
        assert res.returncode == 0, res.stderr
        assert TOS3 in res.stdout, res.stdout
        acct = [a for a in status(httpd)["accounts"] if a["ca"] == front.directory_url][0]
        assert acct["terms_of_service"]["orders_stopped"] is False, acct
        assert acct["terms_of_service"]["agreed"] == TOS3, acct
    finally:
        front.stop()
