"""Managed domains end to end: real httpd + mod_acme, real Pebble validating http-01 on the
httpd's port, the result checked through real TLS handshakes."""
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import harness
from acme_site import (site_config, served_cert, is_pebble_cert, serial_of, wait_for_pebble_cert,
                       verify_chain, status, https_get, new_orders)


def test_first_issuance_is_served_after_automatic_restart(httpd, pebble):
    domains = [["www.one.test", "one.test"], ["shop.two.test"]]
    httpd.write_config(site_config(httpd, pebble, domains))
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    for names in domains:
        text = wait_for_pebble_cert(httpd, names)
        assert f"DNS:{names[0]}" in text
        ok, out = verify_chain(httpd, pebble, names[0])
        assert ok, out
    log = httpd.log_text()
    # ACMEActivation hot (the default): served from the shared memory, no restart
    assert "are served (hot activation, no restart)" in log
    # A worker line names the worker's file and line, not the log trampoline in httpd/.
    answering = [ln for ln in log.splitlines() if ": answering http-01 for " in ln]
    assert answering, log[-3000:]
    assert all(re.search(r"acme_worker_challenge\.c\(\d+\)", ln) for ln in answering), answering[:3]
    assert "acme_supervise.c" not in "".join(answering), answering[:3]
    st = status(httpd)
    by_name = {d["name"]: d for d in st["domains"]}
    assert by_name["www.one.test"]["state"] == "valid"
    assert by_name["www.one.test"]["certificates"][0]["serial"]
    assert set(by_name["www.one.test"]["names"]) == {"www.one.test", "one.test"}
    assert "Pebble" in by_name["shop.two.test"]["certificates"][0]["issuer"]
    # One order per certificate, nothing repeated.
    assert len(new_orders(pebble)) == 2


def test_fallback_certificate_and_503_before_issuance(httpd, pebble):
    # A CA nobody answers at: the domain can never be issued during this test.
    dead = harness.free_port()
    conf = site_config(httpd, pebble, [["never.test"]]).replace(
        pebble.directory_url, f"https://127.0.0.1:{dead}/dir")
    httpd.write_config(conf)
    httpd.start()
    text = served_cert(httpd, "never.test")
    assert text and "DNS:never.test" in text and "Pebble" not in text
    assert https_get(httpd, "never.test") == 503
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dom = status(httpd, "never.test")
        if dom.get("renewal") and dom["renewal"].get("last_error"):
            break
        time.sleep(0.5)
    assert dom["renewal"]["last_error"]["class"] == "retry-soon", dom
    assert str(dead) in dom["renewal"]["last_error"]["message"]
    assert httpd.running()


def test_many_waiting_domains_share_group_fallbacks(httpd, pebble):
    """More than 128 domains waiting for their first certificate: a few group fallback files,
    each naming its domains, none made again at a restart, and no mod_ssl name warning."""
    dead = harness.free_port()
    names = [[f"w{i:03d}.test"] for i in range(140)]
    httpd.write_config(site_config(httpd, pebble, names).replace(
        pebble.directory_url, f"https://127.0.0.1:{dead}/dir"))
    httpd.start()
    for (name,) in (names[0], names[77], names[-1]):
        text = served_cert(httpd, name)
        assert text and f"DNS:{name}" in text and "Pebble" not in text, text
        assert https_get(httpd, name) == 503
    groups = sorted((httpd.root / "acme" / "domains" / "_fallback").glob("group-*.pem"))
    assert 16 <= len(groups) <= 64, groups
    stamps = {g: g.stat().st_mtime_ns for g in groups}
    httpd.graceful()
    time.sleep(2)
    assert served_cert(httpd, names[5][0]) and httpd.running()
    assert {g: g.stat().st_mtime_ns for g in groups} == stamps
    assert "AH01909" not in httpd.log_text()


def test_account_is_reused_and_no_ca_request_at_restart_when_valid(httpd, pebble):
    names = ["reuse.test"]
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    wait_for_pebble_cert(httpd, names)
    harness.wait_for(lambda: "reuse.test: self-check: the new certificate is served"
                     in httpd.log_text(), 20, "the post-activation worker run")
    time.sleep(1.5)        # the post-activation worker run ends
    before = len(pebble.requests())
    httpd.graceful()
    time.sleep(3)
    wait_for_pebble_cert(httpd, names)
    assert len(pebble.requests()) == before, pebble.requests()[before:]
    # A new domain after a restart: the stored account is used, no second newAccount.
    httpd.write_config(site_config(httpd, pebble, [names, ["second.test"]]))
    httpd.graceful()
    wait_for_pebble_cert(httpd, ["second.test"])
    assert [r for r in pebble.requests() if r == ("POST", "/sign-me-up")].__len__() == 1


def test_http01_path_safety(httpd, pebble):
    dead = harness.free_port()
    conf = site_config(httpd, pebble, [["safe.test"]]).replace(
        pebble.directory_url, f"https://127.0.0.1:{dead}/dir")
    httpd.write_config(conf)
    httpd.start()
    store = Path(httpd.root) / "acme" / "challenges" / "http-01" / "safe.test"
    store.mkdir(parents=True, exist_ok=True)
    (store / "goodtoken_-1").write_text("goodtoken_-1.thumb")
    os.chmod(store, 0o755)
    os.chmod(store / "goodtoken_-1", 0o644)
    base = "/.well-known/acme-challenge/"
    code, body, _ = httpd.get(base + "goodtoken_-1", host="safe.test")
    assert (code, body) == (200, "goodtoken_-1.thumb")
    for bad in ["unknown", "..%2f..%2fetc%2fpasswd", "good%00token", "a.b", "*", "x" * 8000,
                "goodtoken_-1/", "%2e%2e"]:
        code, body, _ = httpd.get(base + bad, host="safe.test")
        assert code in (400, 404, 414), (bad, code)
        assert "thumb" not in body
    # A host that is not managed is left alone (DECLINED: the normal 404 of the docroot).
    code, body, _ = httpd.get(base + "goodtoken_-1", host="other.test")
    assert code == 404 and "thumb" not in body


def test_store_permissions_keep_keys_from_the_user(httpd, pebble):
    if os.geteuid() != 0:
        pytest.skip("needs root to start httpd with a separate User")
    names = ["perm.test"]
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    wait_for_pebble_cert(httpd, names)
    store = Path(httpd.root) / "acme"
    readable_secrets = []
    checked = 0
    for path in store.rglob("*"):
        if not path.is_file():
            continue
        checked += 1
        res = subprocess.run(["runuser", "-u", "www-data", "--", "cat", str(path)],
                             capture_output=True, text=True)
        if res.returncode == 0 and "PRIVATE KEY" in res.stdout:
            readable_secrets.append(str(path))
        if path.name.endswith(".key") or path.name.startswith("privkey"):
            assert res.returncode != 0 or "PRIVATE KEY" not in res.stdout, path
    assert checked > 5
    assert not readable_secrets, readable_secrets
    # And the key files exist, root-only.
    keys = list((store / "domains" / "perm.test").glob("privkey.*.pem"))
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


def test_two_key_types_serve_both_certificates(httpd, pebble):
    names = ["dual.test"]
    httpd.write_config(site_config(httpd, pebble, [names],
                                   global_first="ACMEPrivateKeys secp256r1 rsa2048"))
    httpd.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rsa = served_cert(httpd, names[0], extra=["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256",
                                                  "-tls1_2"])
        ec = served_cert(httpd, names[0], extra=["-sigalgs", "ECDSA+SHA256", "-tls1_2"])
        if is_pebble_cert(rsa, names) and is_pebble_cert(ec, names):
            break
        time.sleep(0.5)
    assert is_pebble_cert(rsa, names) and "rsaEncryption" in rsa, rsa
    assert is_pebble_cert(ec, names) and "id-ecPublicKey" in ec, ec


@pytest.mark.parametrize("pebble", ["short-validity"], indirect=True)
def test_short_lived_certificate_is_renewed_and_reactivated(httpd, pebble):
    names = ["short.test"]
    httpd.write_config(site_config(httpd, pebble, [names], global_first="ACMECheckInterval 1m"))
    httpd.start()
    serials = [serial_of(wait_for_pebble_cert(httpd, names))]
    # 60 s lifetime, "auto" renews with half of it left: a new serial every ~30 s, three times
    # in a row, each served (and verified against Pebble's root) before the previous expired.
    for _ in range(3):
        serials.append(serial_of(wait_for_pebble_cert(httpd, names, timeout=75,
                                                      not_serial=serials[-1])))
        ok, out = verify_chain(httpd, pebble, names[0])
        assert ok, out
    assert len(set(serials)) == 4, serials
    assert httpd.running()


SLOW_VALIDATION = {"env": {"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "5"}}


def _wait_for_new_order(pebble, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if new_orders(pebble):
            return True
        time.sleep(0.02)
    return False


def _finalized(pebble):
    return any(path.startswith("/finalize-order/") for _, path in pebble.requests())


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone: it has stopped running.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def _worker_pid(httpd):
    """The pid the supervisor logged for the renewal worker it started last."""
    pids = re.findall(r"renewal worker started \(pid (\d+)\)", httpd.log_text())
    return int(pids[-1]) if pids else None


def _job(httpd, name):
    path = Path(httpd.root) / "acme" / "jobs" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@pytest.mark.parametrize("pebble", [SLOW_VALIDATION], indirect=True)
def test_worker_killed_mid_order_resumes_without_second_order(httpd, pebble):
    names = ["resume.test"]
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    # Mid-order: the order is stored and the CA is validating (Pebble sleeps before it does).
    harness.wait_for(lambda: _job(httpd, names[0]).get("order") and
                     any(p.startswith("/chalZ/") for _, p in pebble.requests()), 20,
                     "the worker to answer the challenge")
    if _finalized(pebble):
        pytest.skip("Pebble validated before the kill (its random delay was ~0)")
    worker = _worker_pid(httpd)
    assert worker, httpd.log_text()
    os.kill(worker, signal.SIGKILL)
    text = wait_for_pebble_cert(httpd, names, timeout=120)
    assert is_pebble_cert(text, names)
    assert "ended abnormally" in httpd.log_text()
    assert len(new_orders(pebble)) == 1, pebble.requests()


def test_httpd_stopped_mid_order_resumes_without_second_order(httpd, pebble):
    names = ["stopped.test"]
    # The worker cannot publish its answer yet (the directory is root's): the order stays open.
    blocked = Path(httpd.root) / "acme" / "challenges" / "http-01"
    blocked.mkdir(parents=True)
    blocked.chmod(0o755)
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    harness.wait_for(lambda: (_job(httpd, names[0]).get("last_error") or {}).get("message"), 20,
                     "the first attempt to fail")
    job = _job(httpd, names[0])
    assert job.get("order") and len(new_orders(pebble)) == 1, job
    worker = _worker_pid(httpd)
    os.kill(httpd.proc.pid, signal.SIGTERM)
    httpd.proc.wait(timeout=15)
    deadline = time.monotonic() + 5
    while worker and time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not worker or not _alive(worker), "the renewal worker outlived its httpd by 5 s"
    httpd.stop()
    # Fixed by the admin; and the retry time has come (the job file says when).
    blocked.rmdir()
    job_path = Path(httpd.root) / "acme" / "jobs" / f"{names[0]}.json"
    job["next_run"] = int(time.time()) - 1
    job_path.write_text(json.dumps(job))
    httpd.start()
    text = wait_for_pebble_cert(httpd, names, timeout=60)
    assert is_pebble_cert(text, names)
    assert len(new_orders(pebble)) == 1, pebble.requests()


def test_forced_renewal_marker_is_picked_up_without_restart_by_anyone(httpd, pebble):
    names = ["forced.test"]
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    first = serial_of(wait_for_pebble_cert(httpd, names))
    parent = httpd.proc.pid
    # requests/ is root's (a2acme renew writes there); the test runs as root like a2acme.
    marker = Path(httpd.root) / "acme" / "requests" / "forced.test.force"
    marker.write_text(f"{int(time.time())}\n")
    # Picked up at the next monitor tick (about 10 s), renewed and activated despite the budget.
    second = serial_of(wait_for_pebble_cert(httpd, names, timeout=60, not_serial=first))
    assert second != first
    assert httpd.proc.pid == parent
    assert not marker.exists()
    assert "renewal forced by an admin" in httpd.log_text()


def test_missing_agreement_names_the_directive_and_issues_once_added(httpd, pebble):
    """Pebble has terms of service: without ACMEAgreement no account is created, the status and
    the log name the directive to add; once it is added (graceful), the certificate comes."""
    names = ["tos.test"]
    conf = site_config(httpd, pebble, [names])
    httpd.write_config(conf.replace("ACMEAgreement accepted\n", ""))
    httpd.start()
    deadline, err = time.monotonic() + 60, {}
    while time.monotonic() < deadline and not err.get("message"):
        err = (status(httpd, "tos.test").get("renewal") or {}).get("last_error") or {}
        time.sleep(0.5)
    assert "add ACMEAgreement accepted" in err.get("message", ""), (err, httpd.log_text()[-3000:])
    assert "ACMEAgreement accepted" in httpd.log_text()
    assert httpd.running()
    httpd.write_config(conf)
    httpd.graceful()
    wait_for_pebble_cert(httpd, names, timeout=90)
    # Not after the day an admin-action error otherwise waits: the changed configuration is
    # noticed and tried at once.
    assert "tos.test: the configuration changed since the last attempt failed" in \
        httpd.log_text(), httpd.log_text()[-3000:]
