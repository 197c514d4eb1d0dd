"""Activation that can never take the server down (issue 9): configtest before every self-restart,
staged sets checked as strictly as mod_ssl loads them, fast activation, every MPM."""
import hashlib
import hmac
import json
import os
import pwd
import re
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

import harness
from acme_site import (site_config, served_cert, is_pebble_cert, wait_for_pebble_cert, status,
                       new_orders, serial_of)

SLOW_VALIDATION = {"env": {"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "4"}}


class Prober(threading.Thread):
    """Handshakes with the server in a loop; counts the ones that got no certificate."""

    def __init__(self, httpd, name):
        super().__init__(daemon=True)
        self.httpd, self.name = httpd, name
        self.ok = self.failed = 0
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            text, _ = harness.tls_peer_cert(self.httpd.https_port, self.name)
            if text:
                self.ok += 1
            else:
                self.failed += 1
            time.sleep(0.1)

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=30)


@pytest.mark.parametrize("pebble", [SLOW_VALIDATION], indirect=True)
def test_broken_config_keeps_server_up_and_activates_once_fixed(httpd, pebble):
    names = ["careful.test"]
    extra = Path(httpd.root) / "conf" / "extra.conf"
    extra.write_text("# managed by a hosting panel\n")
    httpd.write_config(site_config(httpd, pebble, [names], extra=f"Include {extra}\n",
                                   global_first="ACMEActivation restart"))
    httpd.start()
    parent = httpd.proc.pid
    prober = Prober(httpd, names[0])
    prober.start()
    try:
        harness.wait_for(lambda: new_orders(pebble), 20, "the worker to order")
        # The panel is half-way through an edit when the certificate lands.
        extra.write_text("# managed by a hosting panel\nServerAdmin\n")
        harness.wait_for(lambda: "activation waiting" in httpd.log_text(), 60,
                         "mod_acme to notice the broken configuration")
        log = httpd.log_text()
        assert re.search(rf"line 2 of {re.escape(str(extra))}", log), log[-3000:]
        assert log.count("activation waiting") == 1
        activation = status(httpd)["activation"]
        assert activation["waiting"] == "configuration does not parse", activation
        assert "line 2" in activation["detail"]
        assert not is_pebble_cert(served_cert(httpd, names[0]), names)
        assert httpd.proc.pid == parent and httpd.running()
        extra.write_text("# managed by a hosting panel\nServerAdmin webmaster@careful.test\n")
        wait_for_pebble_cert(httpd, names, timeout=60)
    finally:
        prober.stop()
    assert httpd.running() and httpd.proc.pid == parent
    assert prober.failed == 0 and prober.ok > 10, (prober.ok, prober.failed)
    assert status(httpd)["activation"]["waiting"] is None


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _expired_cert(d, name):
    """A self-signed certificate for name that expired in 2020."""
    (d / "index.txt").write_text("")
    (d / "serial").write_text("01\n")
    (d / "ca.cnf").write_text("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\n"
                              "new_certs_dir = .\ndefault_md = sha256\npolicy = p\n"
                              "copy_extensions = copy\nunique_subject = no\n"
                              "[p]\ncommonName = supplied\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "key.pem", "-out", "req.csr", "-subj", f"/CN={name}",
             "-addext", f"subjectAltName=DNS:{name}", cwd=d)
    _openssl("ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in",
             "req.csr", "-out", "cert.pem", "-startdate", "20200101000000Z",
             "-enddate", "20200201000000Z", "-notext", cwd=d)


def _proof(store, name, parts):
    """The worker's proof of origin (src/acme_activate.c): HMAC-SHA256 with seal/proof.key over
    the context and every file, each prefixed with its length (8 bytes, big-endian)."""
    context = f"mod_acme staged set 1\n{name}\ndns:{name}\n".encode()
    data = b"".join(len(x).to_bytes(8, "big") + x for x in [context, *parts])
    return hmac.new((store / "seal" / "proof.key").read_bytes(), data, hashlib.sha256).hexdigest()


def _stage(store, name, cert_pem, key_path):
    """A staged set exactly as the worker leaves it: chain, key sealed to the store, staged.json
    with the worker's proof, all owned by the httpd User. Only root (this test) can make one."""
    staged = store / "staging" / name
    staged.mkdir(parents=True)
    (staged / "pubcert.secp256r1.pem").write_text(cert_pem)
    subprocess.run(["openssl", "cms", "-encrypt", "-binary", "-aes256", "-in", str(key_path),
                    "-outform", "PEM", "-out", str(staged / "privkey.secp256r1.sealed"),
                    str(store / "seal" / "seal.pem")], check=True, capture_output=True)
    proof = _proof(store, name, [(staged / "pubcert.secp256r1.pem").read_bytes(),
                                 (staged / "privkey.secp256r1.sealed").read_bytes()])
    (staged / "staged.json").write_text(json.dumps({"name": name, "landed": int(time.time()),
                                                    "proof": proof}))
    user = pwd.getpwnam("www-data")
    for path in [staged, *staged.iterdir()]:
        os.chown(path, user.pw_uid, user.pw_gid)


def test_bad_staged_sets_are_never_activated(httpd, pebble):
    good, bad = ["good.test"], ["corrupt.test", "mismatch.test", "expired.test"]
    httpd.write_config(site_config(httpd, pebble, [good]))
    httpd.start()
    wait_for_pebble_cert(httpd, good)
    httpd.stop()
    store = Path(httpd.root) / "acme"
    work = Path(httpd.root) / "bad"
    work.mkdir()
    for name in bad:
        harness.make_self_signed(work, name, [f"DNS:{name}"])
    other_cert, other_key = harness.make_self_signed(work, "other", ["DNS:other.test"])
    text = (work / "corrupt.test.pem").read_text()
    _stage(store, "corrupt.test", text[:120] + "@@@@" + text[124:], work / "corrupt.test.key")
    _stage(store, "mismatch.test", (work / "mismatch.test.pem").read_text(), other_key)
    exp = work / "exp"
    exp.mkdir()
    _expired_cert(exp, "expired.test")
    _stage(store, "expired.test", (exp / "cert.pem").read_text(), exp / "key.pem")

    httpd.write_config(site_config(httpd, pebble, [good] + [[n] for n in bad]))
    httpd.start()
    for name in bad:
        wait_for_pebble_cert(httpd, [name])
    log = httpd.log_text()
    for name, reason in [("corrupt.test", ""), ("mismatch.test", "public key"),
                         ("expired.test", "")]:
        assert re.search(rf"{name}: staged secp256r1 certificate of {name} refused[^\n]*{reason}",
                         log), (name, log[-4000:])
    assert "seg fault" not in log
    assert is_pebble_cert(served_cert(httpd, good[0]), good)
    # Refused for good: kept out of the User's reach in rejected/, never deleted.
    kept = sorted(p.name.split(".test.")[0] for p in (store / "rejected").iterdir())
    assert kept == ["corrupt", "expired", "mismatch"], kept


def _log_time(line):
    m = re.match(r"\[(\w{3} \w{3} \d+ [\d:.]+ \d{4})\]", line)
    return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()


def test_first_issuance_latency_from_staging_to_served(httpd, pebble):
    names = ["quick.test"]
    # the restart path; hot activation is measured by bench/hot_activation.py
    httpd.write_config(site_config(httpd, pebble, [names], global_first="ACMEActivation restart"))
    httpd.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if is_pebble_cert(served_cert(httpd, names[0]), names):
            served_at = time.time()
            break
        time.sleep(0.05)
    else:
        pytest.fail("never served:\n" + httpd.log_text()[-3000:])
    staged = [l for l in httpd.log_text().splitlines() if "new certificate staged" in l]
    latency = served_at - _log_time(staged[0])
    print(f"\nlanded in staging -> served: {latency:.2f} s")
    assert latency < 2.5, latency
    # The worker started after the restart confirms, by a handshake, what is served.
    harness.wait_for(lambda: "quick.test: self-check: the new certificate is served"
                     in httpd.log_text(), 15, "the post-restart self-check")


@pytest.mark.parametrize("pebble", ["short-validity"], indirect=True)
@pytest.mark.parametrize("mpm", harness.MPMS, indirect=True)
def test_issuance_renewal_and_activation_under_each_mpm(httpd, pebble, mpm):
    names = [f"{mpm}.mpm.test"]
    httpd.write_config(site_config(httpd, pebble, [names], global_first="ACMECheckInterval 1m"))
    httpd.start()
    first = serial_of(wait_for_pebble_cert(httpd, names))
    code, body, _ = httpd.get("/acme-status")
    assert code == 200 and json.loads(body)["domains"][0]["state"] == "valid"
    # An admin graceful restart in between changes nothing.
    httpd.graceful()
    time.sleep(1)
    assert httpd.running()
    # 60 s certificates: renewed with half the lifetime left, then activated by itself.
    second = serial_of(wait_for_pebble_cert(httpd, names, timeout=75, not_serial=first))
    assert second != first
    log = httpd.log_text()
    assert "seg fault" not in log and "scoreboard is full" not in log
