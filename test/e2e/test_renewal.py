"""Issue 7, renewal that never lets a certificate expire: CA failover, backoff, expiry warnings,
notifications and ARI, end to end with real httpd + Pebble. A small https front (ca_proxy.py)
passes the ACME conversation through to Pebble, or plays a CA that is down or answers 500s, and
adds the renewalInfo resource Pebble 2.4.0 lacks. The arithmetic is unit-tested in
test/unit/test_plan.c and test/unit/test_renewal.c."""
import base64
import json
import time

import pytest

import harness
from acme_site import (site_config, wait_for_pebble_cert, status, serial_of, notify_script,
                       notify_events)
from ca_proxy import CaProxy, DOWN, FAIL, PASS


def _wait(predicate, timeout, what, httpd):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s\n--- error log ---\n"
                         f"{httpd.log_text()[-6000:]}")


def test_configtest_checks_the_new_directives(httpd_alone, workdir):
    script, _ = notify_script(workdir)
    good = ["ACMERenewalInfo off", "ACMEWarnWindow 20%", "ACMEWarnWindow 2d",
            f"ACMENotifyCommand {script} --flag"]
    for line in good:
        httpd_alone.write_config(line + "\n")
        rc, out = httpd_alone.configtest()
        assert rc == 0, (line, out)
    bad = {"ACMERenewalInfo maybe": "ACMERenewalInfo",
           "ACMEWarnWindow soon": "ACMEWarnWindow",
           "ACMEWarnWindow 150%": "ACMEWarnWindow",
           "ACMENotifyCommand relative/prog": "ACMENotifyCommand",
           f"ACMENotifyCommand {workdir}/missing": "ACMENotifyCommand"}
    for line, needle in bad.items():
        httpd_alone.write_config(line + "\n")
        rc, out = httpd_alone.configtest()
        assert rc != 0 and needle in out, (line, out)


def test_failover_to_the_second_ca_when_the_first_is_unreachable(httpd, pebble, workdir):
    names = ["failover.test"]
    dead = f"https://127.0.0.1:{harness.free_port()}/dir"
    conf = _via(site_config(httpd, pebble, [names]), pebble, dead, pebble.directory_url)
    httpd.write_config(conf)
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    text = wait_for_pebble_cert(httpd, names, timeout=60)
    assert serial_of(text)
    log = httpd.log_text()
    assert f"the CA {dead} failed" in log and f"switching to the next CA {pebble.directory_url}" \
        in log, log[-4000:]
    dom = status(httpd, names[0])
    assert dom["ca"] == pebble.directory_url, dom
    assert dom["renewal"]["ca_index"] == 1, dom
    assert dom["renewal"]["ca_url"] == pebble.directory_url, dom
    job = json.loads((httpd.root / "acme" / "jobs" / f"{names[0]}.json").read_text())
    assert job["ca_index"] == 1 and job["ca_failures"] == 0, job


def _via(conf, pebble, *urls):
    return conf.replace(f"ACMECertificateAuthority {pebble.directory_url}",
                        "ACMECertificateAuthority " + " ".join(urls))


def test_failover_to_the_second_ca_when_the_first_answers_500(httpd, pebble):
    names = ["failover500.test"]
    front = CaProxy(pebble)
    try:
        front.mode = FAIL
        httpd.write_config(_via(site_config(httpd, pebble, [names]), pebble,
                                front.directory_url, pebble.directory_url))
        httpd.start()
        # Two 500s in a row (one retried at once because another CA is configured), then the
        # second CA: seconds, not the minutes of the retry schedule.
        text = wait_for_pebble_cert(httpd, names, timeout=45)
        assert serial_of(text)
        assert front.refused >= 2
        log = httpd.log_text()
        assert f"the CA {front.directory_url} failed" in log, log[-4000:]
        assert "500" in log or "serverInternal" in log, log[-4000:]
        dom = status(httpd, names[0])
        assert dom["renewal"]["ca_url"] == pebble.directory_url, dom
    finally:
        front.stop()


def _job(httpd, name):
    try:
        return json.loads((httpd.root / "acme" / "jobs" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.parametrize("pebble", ["short-validity"], indirect=True)
def test_ca_down_then_500s_backoff_warning_and_recovery(httpd, pebble, workdir):
    """60 s certificates, renewed with 50 s left: the CA goes away, then answers 500s, then
    recovers. The old certificate stays served, the retry delay grows, CRIT and `errored`
    appear inside the warn window, and the recovery brings `renewed` and `installed`."""
    names = ["warn.test"]
    script, events = notify_script(workdir)
    front = CaProxy(pebble)
    try:
        httpd.write_config(_via(site_config(
            httpd, pebble, [names],
            global_first=(f"ACMECheckInterval 1m\nACMEWarnWindow 90%\nACMERenewWindow 50s\n"
                          f"ACMEActivationInterval 0\nACMENotifyCommand {script}")),
            pebble, front.directory_url))
        httpd.start()
        first = serial_of(wait_for_pebble_cert(httpd, names))
        _wait(lambda: any(e[0] == "installed" for e in notify_events(events)), 30,
              "no 'installed' notification", httpd)
        installed = [e for e in notify_events(events) if e[0] == "installed"][0][2]
        assert installed["serial"] and installed["serial"].lstrip("0").lower() == \
            first.lstrip("0"), installed
        # Down: connections closed unanswered; 10 s after issuance the renewal starts failing.
        front.mode = DOWN
        delays = {}

        def failing(n):
            job = _job(httpd, names[0])
            err = job.get("last_error") or {}
            if job.get("failures") and job.get("next_run") and err.get("at"):
                delays[job["failures"]] = job["next_run"] - err["at"]
            return job.get("failures", 0) >= n
        _wait(lambda: failing(2), 40, "two failed attempts with the CA down", httpd)
        front.mode = FAIL
        _wait(lambda: failing(4), 40, "four failed attempts", httpd)
        # The retry delay grew: 1 s, 2 s, then 4 s and more (each +-25 % jitter, and the error's
        # time is kept in whole seconds, so a delay reads up to 2 s longer): the last two delays
        # add up to more than the first two.
        seen = [delays[k] for k in sorted(delays)]
        assert len(seen) >= 4 and sum(seen[-2:]) > sum(seen[:2]), delays
        # ... the old certificate is still served ...
        assert serial_of(wait_for_pebble_cert(httpd, names, timeout=5)) == first
        # ... and the warn window brought a CRIT line, the status warning and the events.
        line = _wait(lambda: next((l for l in httpd.log_text().splitlines()
                                   if ":crit]" in l and "warn.test" in l
                                   and "renewal keeps failing" in l), None),
                     20, "no CRITICAL warning", httpd)
        assert "GMT" in line and "last error" in line, line
        dom = status(httpd, names[0])
        assert "renewal keeps failing" in dom.get("warning", ""), dom
        assert dom["renewal"]["failures"] >= 4 and dom["next_attempt"], dom
        assert dom["state"] == "valid, renewal failing", dom
        evs = notify_events(events)
        errored = [d for e, _, d in evs if e == "errored"]
        assert errored and errored[0]["error"] and errored[0]["names"] == names, evs
        assert errored[0]["serial"], errored[0]
        assert any(e == "expiring" for e, _, _ in evs), evs
        # The CA recovers: renewed (staged) and installed (served), with the new serial.
        front.mode = PASS
        second = serial_of(wait_for_pebble_cert(httpd, names, timeout=40, not_serial=first))
        assert second != first
        _wait(lambda: [e for e in notify_events(events) if e[0] == "installed"
                       and e[2]["serial"].lstrip("0").lower() == second.lstrip("0")],
              20, "no 'installed' notification for the new certificate", httpd)
        order = [e for e, _, _ in notify_events(events)]
        last_errored = max(i for i, e in enumerate(order) if e == "errored")
        assert "renewed" in order[last_errored:], order
        assert _job(httpd, names[0]).get("failures", 0) == 0
        assert httpd.running()
    finally:
        front.stop()


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _replaced_serial(replaces):
    """The serial (lower-case hex) inside an ARI certificate id "<AKI>.<serial>" (RFC 9773)."""
    part = replaces.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).hex().lstrip("0")


def test_ari_window_brings_renewal_forward(httpd, pebble):
    names = ["ari.test"]
    front = CaProxy(pebble, ari=True)
    try:
        front.window = (_rfc3339(time.time() + 30 * 86400), _rfc3339(time.time() + 31 * 86400))
        httpd.write_config(_via(site_config(
            httpd, pebble, [names], global_first="ACMECheckInterval 1m\nACMEActivationInterval 0"),
            pebble, front.directory_url))
        httpd.start()
        first = serial_of(wait_for_pebble_cert(httpd, names))
        assert len(front.orders) == 1 and "replaces" not in front.orders[0], front.orders
        # Pebble's 5-year certificate: the local window is years away, ARI says in 30 days.
        dom = _wait(lambda: (lambda d: d if d.get("renewal_reason") == "ari" else None)(
            status(httpd, names[0])), 90, "no ARI-based schedule", httpd)
        assert dom["renewal"]["ari"]["explanation_url"] == "https://front.example/why", dom
        renew_at = dom["renewal"]["renew_at"]
        assert time.time() + 29 * 86400 < renew_at < time.time() + 32 * 86400, dom
        assert front.ari_asked
        # The CA now wants this certificate replaced: a window in the past renews at the next
        # check, and the new order names the certificate it replaces. Its successor gets a
        # window 60 days ahead, as a CA would give.
        first_id = front.ari_asked[0]
        past = (_rfc3339(time.time() - 7200), _rfc3339(time.time() - 3600))
        ahead = (_rfc3339(time.time() + 60 * 86400), _rfc3339(time.time() + 61 * 86400))
        front.window_for = lambda cert_id: past if cert_id == first_id else ahead
        second = serial_of(wait_for_pebble_cert(httpd, names, timeout=120, not_serial=first))
        assert second != first
        # The successor is scheduled by its own window: nothing renews once more.
        _wait(lambda: (lambda d: d if d.get("renewal_reason") == "ari"
                       and d["renewal"]["renew_at"] > time.time() + 59 * 86400
                       else None)(status(httpd, names[0])), 60, "no ARI schedule for the "
              "new certificate", httpd)
        time.sleep(3)
        replacing = front.orders_with("replaces")
        assert len(replacing) == 1, front.orders
        assert _replaced_serial(replacing[0]["replaces"]) == first.lstrip("0"), replacing
        assert httpd.running()
    finally:
        front.stop()


def test_refused_replaces_is_ordered_again_without_it(httpd, pebble):
    """The CA refuses the `replaces` link (alreadyReplaced): the order goes once more without it,
    and the renewal happens."""
    names = ["ari-refused.test"]
    front = CaProxy(pebble, ari=True)
    try:
        front.window = (_rfc3339(time.time() - 7200), _rfc3339(time.time() - 3600))
        front.reject_replaces = True
        httpd.write_config(_via(site_config(
            httpd, pebble, [names], global_first="ACMECheckInterval 1m\nACMEActivationInterval 0"),
            pebble, front.directory_url))
        httpd.start()
        first = serial_of(wait_for_pebble_cert(httpd, names))
        # The first certificate's window is already over: it is replaced at once.
        second = serial_of(wait_for_pebble_cert(httpd, names, timeout=90, not_serial=first))
        assert second != first
        assert front.rejected and _replaced_serial(front.rejected[0]["replaces"]) == \
            first.lstrip("0"), front.rejected
        accepted_after = [o for o in front.orders[1:] if "replaces" not in o]
        assert accepted_after, front.orders
        assert httpd.running()
    finally:
        front.stop()


def test_ari_failure_keeps_the_local_window(httpd, pebble):
    names = ["ari-down.test"]
    front = CaProxy(pebble, ari=True)
    try:
        front.ari_status = 500
        httpd.write_config(_via(site_config(httpd, pebble, [names],
                                            global_first="ACMECheckInterval 1m"),
                                pebble, front.directory_url))
        httpd.start()
        text = wait_for_pebble_cert(httpd, names)
        # The post-activation run asks renewalInfo, gets a 500, and keeps the local window.
        _wait(lambda: front.ari_asked, 30, "renewalInfo was never asked", httpd)
        dom = _wait(lambda: (lambda d: d if d.get("renewal_reason") == "window" else None)(
            status(httpd, names[0])), 30, "no local schedule", httpd)
        assert dom["renewal"]["renew_at"] > time.time() + 365 * 86400, dom
        assert dom["renewal"]["state"] == "idle" and dom["renewal"]["failures"] == 0, dom
        assert serial_of(text) and "renewalInfo (ARI) not available" in httpd.log_text()
    finally:
        front.stop()


def test_ari_earliest_window_over_both_key_types(httpd, pebble):
    """With two key types, the CA may want one certificate replaced sooner: that one decides."""
    names = ["ari-two.test"]
    front = CaProxy(pebble, ari=True)
    try:
        soon = (_rfc3339(time.time() + 20 * 86400), _rfc3339(time.time() + 21 * 86400))
        late = (_rfc3339(time.time() + 60 * 86400), _rfc3339(time.time() + 61 * 86400))
        # The first key type's certificate (secp256r1, asked first) gets the late window.
        front.window_for = lambda cert_id: late if cert_id == front.ari_asked[0] else soon
        httpd.write_config(_via(site_config(
            httpd, pebble, [names], global_first="ACMECheckInterval 1m\nACMEActivationInterval 0",
            extra="", vhost_extra="").replace(
                f"ACMEDomain {names[0]}",
                f"<ACMEDomain {names[0]}>\n  ACMEPrivateKeys secp256r1 rsa2048\n</ACMEDomain>"),
            pebble, front.directory_url))
        httpd.start()
        wait_for_pebble_cert(httpd, names)
        dom = _wait(lambda: (lambda d: d if d.get("renewal_reason") == "ari" else None)(
            status(httpd, names[0])), 90, "no ARI-based schedule", httpd)
        assert len(set(front.ari_asked)) >= 2, front.ari_asked     # both certificates asked
        renew_at = dom["renewal"]["renew_at"]
        assert time.time() + 19 * 86400 < renew_at < time.time() + 22 * 86400, dom
    finally:
        front.stop()
