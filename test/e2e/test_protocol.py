"""The protocol core (src/acme_client.c and friends) against a real Pebble, through test/acmedrv.

No httpd here: the driver publishes challenge answers through pebble-challtestsrv, whose own
http-01 / tls-alpn-01 responders sit on the ports Pebble validates. Requests are counted twice:
by the driver and independently in Pebble's log.
"""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness
from stub_ca import ARI_EXPLANATION, ARI_WINDOW, StubCA

DRIVER = harness.BUILD_DIR / "test" / "acmedrv"
ANSWERING = {"challtestsrv_answers": True}
EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
WRONG_HMAC = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH"
# The issue's bound: with an account URL on file, one single-name certificate costs at most 8
# requests besides the one directory GET and the one HEAD newNonce of the run.
BUDGET = 8


def variant(**kw):
    v = dict(ANSWERING)
    v.update(kw)
    return v


class Run:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        try:
            self.out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except json.JSONDecodeError:
            self.out = {}

    def __repr__(self):
        return f"rc={self.rc}\nstdout={self.stdout}\nstderr={self.stderr}"

    @property
    def error(self):
        return self.out.get("error") or {}

    @property
    def requests(self):
        return self.out.get("requests") or {}


def run_driver(*args, timeout=120):
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} is missing: build it (make) or set ACME_BUILD_DIR")
    t0 = time.monotonic()
    proc = subprocess.run([str(DRIVER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    return Run(proc, time.monotonic() - t0)


@pytest.fixture
def drv(pebble, workdir):
    """drv(cmd, *args, state=...) runs the driver against this test's Pebble."""
    def call(*args, state="state", extra=()):
        return run_driver("--dir", pebble.directory_url, "--ca-file", pebble.ca_file,
                          "--state", workdir / state, "--challtestsrv", pebble.challtestsrv_url,
                          *extra, *args)
    return call


def ok(run):
    assert run.rc == 0, run
    assert run.out.get("ok") is True, run
    return run.out


def since(pebble, mark):
    """Requests Pebble logged after `mark` (a previous len(pebble.requests()))."""
    return pebble.requests()[mark:]


def split(reqs):
    directory = [r for r in reqs if r == ("GET", "/dir")]
    nonce = [r for r in reqs if r[1].startswith("/nonce-plz")]
    rest = [r for r in reqs if r not in directory and r not in nonce]
    return directory, nonce, rest


def cert_text(path):
    return subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout


def verify_chain(pebble, workdir, cert_path, root_index=0):
    """openssl verify of the leaf, with the rest of the file as untrusted and Pebble's root."""
    root = workdir / f"root{root_index}.pem"
    root.write_text(pebble.root_pem(root_index))
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                      Path(cert_path).read_text(), re.S)
    leaf, chain = workdir / "leaf.pem", workdir / "untrusted.pem"
    leaf.write_text(pems[0] + "\n")
    chain.write_text("\n".join(pems[1:]) + "\n")
    res = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain),
                          str(leaf)], capture_output=True, text=True)
    return res.returncode == 0, res.stdout + res.stderr


def root_cn(pebble, index):
    pem = pebble.root_pem(index)
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                             input=pem, capture_output=True, text=True, check=True).stdout
    return re.search(r"CN=([^,\n]+)", subject).group(1).strip()


# ------------------------------------------------------------------ issuance

@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_fresh_account_issuance(pebble, drv, workdir):
    run = drv("issue", "fresh.example.test")
    out = ok(run)
    assert out["account"]["created"] is True and out["account"]["found"] is False
    assert out["certificate"]["sans"] == ["fresh.example.test"]
    assert "DNS:fresh.example.test" in cert_text(workdir / "state" / "cert.pem")
    good, why = verify_chain(pebble, workdir, workdir / "state" / "cert.pem")
    assert good, why
    directory, nonce, rest = split(pebble.requests())
    assert len(directory) == 1 and len(nonce) == 1
    assert rest.count(("POST", "/sign-me-up")) == 1
    # Driver and Pebble agree on what was sent.
    assert out["requests"]["total"] == len(pebble.requests())
    # The account and its key are on file for the next run; the order record is gone.
    assert (workdir / "state" / "account.json").exists()
    assert not (workdir / "state" / "order.json").exists()


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_request_budget_with_existing_account(pebble, drv, workdir, record_property):
    ok(drv("account"))
    mark = len(pebble.requests())
    run = drv("issue", "budget.example.test")
    out = ok(run)
    directory, nonce, rest = split(since(pebble, mark))
    assert len(directory) == 1, "one directory GET per run"
    assert len(nonce) == 1, "one HEAD newNonce per run"
    assert not [r for r in rest if r[1].startswith("/sign-me-up")], "no account request with a stored URL"
    assert len(rest) <= BUDGET, rest
    assert out["requests"]["protocol"] == len(rest)
    assert out["requests"]["total"] == len(rest) + 2
    record_property("requests_per_certificate", len(rest))
    record_property("issuance_seconds", round(run.elapsed, 3))
    print(f"\nsingle-name certificate, existing account: {len(rest)} requests "
          f"(+1 directory, +1 newNonce), {run.elapsed:.2f} s")


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_existing_account_found_again(pebble, drv, workdir):
    first = ok(drv("account"))
    url = first["account"]["url"]
    (workdir / "state" / "account.json").unlink()
    mark = len(pebble.requests())
    again = ok(drv("account"))
    assert again["account"] == {"url": url, "stored": False, "found": True, "created": False}
    _, _, rest = split(since(pebble, mark))
    assert rest == [("POST", "/sign-me-up")], "exactly one onlyReturnExisting lookup"
    # The rediscovered URL is stored again: the next run sends no account request at all.
    mark = len(pebble.requests())
    out = ok(drv("issue", "again.example.test"))
    assert out["account"]["stored"] is True and out["account"]["url"] == url
    assert ("POST", "/sign-me-up") not in since(pebble, mark)


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01", "dns-01"])
def test_challenge_types(pebble, drv, workdir, challenge):
    out = ok(drv("issue", "--challenge", challenge, f"{challenge}.example.test"))
    assert out["authorizations"] == {"fetched": 1, "responded": 1}
    assert out["certificate"]["sans"] == [f"{challenge}.example.test"]


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_wildcard_and_several_names(pebble, drv, workdir):
    out = ok(drv("issue", "--challenge", "dns-01", "--key-type", "rsa2048",
                 "*.multi.example.test", "multi.example.test"))
    assert sorted(out["certificate"]["sans"]) == ["*.multi.example.test", "multi.example.test"]
    assert "Public-Key: (2048 bit)" in cert_text(workdir / "state" / "cert.pem")


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_ip_identifier(pebble, drv, workdir):
    out = ok(drv("issue", "127.0.0.1"))
    assert out["certificate"]["sans"] == ["127.0.0.1"]
    assert "IP Address:127.0.0.1" in cert_text(workdir / "state" / "cert.pem")


# ------------------------------------------------------------------ CA quirks

@pytest.mark.parametrize("pebble", [variant(env={"PEBBLE_WFE_NONCEREJECT": "50"})], indirect=True)
def test_bad_nonce_rejection_recovers(pebble, drv, workdir):
    # Half of all nonces are refused. No count bounds the re-sends, only the request's time
    # budget: a run of refusals costs requests, never the issuance.
    out = ok(drv("issue", "nonce.example.test"))
    assert out["requests"]["bad_nonce_retries"] > 0
    directory, nonce, rest = split(pebble.requests())
    # Each retry used the nonce the badNonce error carried: never another HEAD.
    assert len(nonce) == 1 and len(directory) == 1
    assert out["requests"]["total"] == len(pebble.requests())


@pytest.mark.parametrize("pebble", [variant(env={"PEBBLE_WFE_NONCEREJECT": "100"})], indirect=True)
def test_bad_nonce_gives_up(pebble, drv, workdir):
    # When every nonce is refused the driver stops after the bound, with a class to act on.
    run = drv("account", extra=["--max-bad-nonce-retries", "3"])
    assert run.rc == 1, run
    assert run.error["class"] == "retry-soon"
    assert run.error["type"] == "urn:ietf:params:acme:error:badNonce"
    assert run.requests["bad_nonce_retries"] == 3
    assert [r for r in pebble.requests() if r[1] == "/sign-me-up"] == [("POST", "/sign-me-up")] * 4


@pytest.mark.parametrize("pebble", [variant(env={"PEBBLE_WFE_NONCEREJECT": "100"})], indirect=True)
def test_bad_nonce_retries_end_with_the_time_budget(pebble, drv, workdir):
    # Without a count cap the request's time budget ends the re-sends, not a number of them.
    start = time.monotonic()
    run = drv("account", extra=["--retry-budget", "2"])
    elapsed = time.monotonic() - start
    assert run.rc == 1, run
    assert run.error["class"] == "retry-soon"
    assert run.error["type"] == "urn:ietf:params:acme:error:badNonce"
    assert run.requests["bad_nonce_retries"] > 5, run
    assert 1.5 < elapsed < 15, elapsed
    signups = [r for r in pebble.requests() if r[1] == "/sign-me-up"]
    assert len(signups) == run.requests["bad_nonce_retries"] + 1


@pytest.mark.parametrize("pebble", [variant(env={"PEBBLE_AUTHZREUSE": "100"})], indirect=True)
def test_authz_reuse_order_already_ready(pebble, drv, workdir):
    first = ok(drv("issue", "reuse.example.test"))
    assert first["order"]["initial_status"] == "pending"
    mark = len(pebble.requests())
    second = ok(drv("issue", "reuse.example.test"))
    assert second["order"]["initial_status"] == "ready"
    assert "authorizations" not in second
    _, _, rest = split(since(pebble, mark))
    assert not [r for r in rest if r[1].startswith(("/authZ/", "/chalZ/"))]
    # newOrder, finalize, order poll, download
    assert len(rest) == 4, rest
    assert second["requests"]["protocol"] < first["requests"]["protocol"]


EAB_VARIANT = variant(config={"externalAccountBindingRequired": True,
                              "externalAccountMACKeys": {EAB_KID: EAB_HMAC}})


@pytest.mark.parametrize("pebble", [EAB_VARIANT], indirect=True)
def test_eab_required(pebble, drv, workdir):
    missing = drv("account", state="none")
    assert missing.rc == 1, missing
    assert missing.error["class"] == "admin-action"
    assert "external account binding" in missing.error["message"]
    assert ("POST", "/sign-me-up") not in pebble.requests(), "refused before asking the CA"

    wrong = drv("account", state="wrong", extra=["--eab-kid", EAB_KID, "--eab-hmac", WRONG_HMAC])
    assert wrong.rc == 1, wrong
    assert wrong.error["class"] == "admin-action"
    assert "external account binding" in wrong.error["message"]
    assert EAB_KID in wrong.error["message"]
    assert WRONG_HMAC not in wrong.stdout + wrong.stderr, "the HMAC key is a secret"

    right = ok(drv("issue", "eab.example.test", state="right",
                   extra=["--eab-kid", EAB_KID, "--eab-hmac", EAB_HMAC]))
    assert right["account"]["created"] is True
    assert EAB_HMAC not in json.dumps(right)


@pytest.mark.parametrize("pebble", [variant(config={"domainBlocklist": ["blocked.example"]})],
                         indirect=True)
def test_rejected_identifier_needs_an_admin(pebble, drv, workdir):
    run = drv("issue", "www.blocked.example")
    assert run.rc == 1, run
    assert run.error["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"
    assert run.error["class"] == "admin-action"
    assert "www.blocked.example" in run.error["message"]


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_invalid_order_is_explained(pebble, drv, workdir):
    run = drv("issue", "--skip-provision", "unanswered.example.test")
    assert run.rc == 1, run
    err = run.error
    assert err["class"] == "permanent"
    assert "unanswered.example.test" in err["message"] and "http-01" in err["message"]
    assert err["type"].startswith("urn:ietf:params:acme:error:")
    assert err["detail"]
    # Polling went to the order, never to the authorization; the authz was fetched once to find
    # the challenge and once to explain the failure.
    authz = [r for r in pebble.requests() if r[1].startswith("/authZ/")]
    assert len(authz) == 2, pebble.requests()


# ------------------------------------------------------------------ account life cycle

@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_key_rollover_then_issue(pebble, drv, workdir):
    first = ok(drv("account"))
    old_key = (workdir / "state" / "account.key.pem").read_text()
    out = ok(drv("rollover", "--key-type", "rsa2048"))
    assert out["new_key_type"] == "rsa2048"
    new_key = (workdir / "state" / "account.key.pem").read_text()
    assert new_key != old_key
    assert ("POST", "/rollover-account-key") in pebble.requests()
    issued = ok(drv("issue", "rolled.example.test"))
    assert issued["account"]["url"] == first["account"]["url"]
    # The old key lost the account: looking it up finds nothing, so a new account is made.
    old_state = workdir / "old"
    old_state.mkdir()
    (old_state / "account.key.pem").write_text(old_key)
    again = ok(drv("account", state="old"))
    assert again["account"]["found"] is False and again["account"]["created"] is True
    assert again["account"]["url"] != first["account"]["url"]


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_contact_update(pebble, drv, workdir):
    created = ok(drv("account", extra=["--contact", "mailto:first@example.test"]))
    mark = len(pebble.requests())
    out = ok(drv("contact", extra=["--contact", "mailto:second@example.test"]))
    assert out["contact"] == ["mailto:second@example.test"]
    assert out["status"] == "valid"
    _, _, rest = split(since(pebble, mark))
    assert len(rest) == 1 and rest[0][1].startswith("/my-account/"), rest
    assert out["account"]["url"] == created["account"]["url"]


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_deactivated_account_is_refused(pebble, drv, workdir):
    ok(drv("account"))
    ok(drv("deactivate"))
    run = drv("issue", "gone.example.test")
    assert run.rc == 1, run
    assert run.error["type"] == "urn:ietf:params:acme:error:unauthorized"
    assert run.error["class"] == "admin-action"


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_revocation(pebble, drv, workdir):
    out = ok(drv("issue", "revoke.example.test"))
    serial = out["certificate"]["serial"]
    assert pebble.cert_status(serial)["Status"] == "Valid"
    revoked = ok(drv("revoke", "--reason", "4"))
    assert revoked["revoked"]["serial"] == serial
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status["Reason"] == 4
    # Revoking again is not an error (alreadyRevoked).
    ok(drv("revoke", "--reason", "4"))

    # By the certificate's own key (jwk), without the account.
    out = ok(drv("issue", "revoke2.example.test"))
    serial = out["certificate"]["serial"]
    shutil.rmtree(workdir / "keyonly", ignore_errors=True)
    (workdir / "keyonly").mkdir()
    for name in ("cert.pem", "privkey.pem"):
        shutil.copy(workdir / "state" / name, workdir / "keyonly" / name)
    mark = len(pebble.requests())
    by_key = ok(drv("revoke", "--reason", "1", "--by-cert-key", state="keyonly"))
    assert by_key["revoked"]["by_cert_key"] is True
    assert ("POST", "/sign-me-up") not in since(pebble, mark)
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status["Reason"] == 1


@pytest.mark.parametrize("pebble", [variant()], indirect=True)
def test_bad_revocation_reason(pebble, drv, workdir):
    ok(drv("issue", "reason.example.test"))
    run = drv("revoke", "--reason", "7")
    assert run.rc == 1, run
    assert run.error["type"] == "urn:ietf:params:acme:error:badRevocationReason"
    assert run.error["class"] == "admin-action"


# ------------------------------------------------------------------ chains

@pytest.mark.parametrize("pebble", [variant(env={"PEBBLE_ALTERNATE_ROOTS": "2"})], indirect=True)
def test_alternate_chain_chosen_by_issuer(pebble, drv, workdir):
    wanted = root_cn(pebble, 2)
    out = ok(drv("issue", "--alt-issuer", wanted.lower(), "alt.example.test"))
    cert = out["certificate"]
    assert cert["alternates"] == 2
    assert cert["is_alternate"] is True
    assert cert["top_issuer_cn"] == wanted
    good, why = verify_chain(pebble, workdir, workdir / "state" / "cert.pem", root_index=2)
    assert good, why
    good, _ = verify_chain(pebble, workdir, workdir / "state" / "cert.pem", root_index=0)
    assert not good, "the alternate chain must not lead to the default root"

    default = ok(drv("issue", "--alt-issuer", "No Such Root", "alt2.example.test"))
    assert default["certificate"]["is_alternate"] is False
    assert default["certificate"]["top_issuer_cn"] == root_cn(pebble, 0)


# ------------------------------------------------------------------ crashes and resumption

@pytest.mark.parametrize("pebble", [variant()], indirect=True)
@pytest.mark.parametrize("step", ["newOrder", "challenge", "finalize"])
def test_crash_then_resume_same_order(pebble, drv, workdir, step):
    crashed = drv("issue", "--crash-after", step, "crash.example.test")
    assert crashed.rc == 3, crashed
    order_url = crashed.out["order"]["url"]
    assert (workdir / "state" / "order.json").exists()
    resumed = ok(drv("issue", "crash.example.test"))
    assert resumed["order"]["resumed"] is True
    assert resumed["order"]["url"] == order_url
    assert resumed["certificate"]["sans"] == ["crash.example.test"]
    assert pebble.requests().count(("POST", "/order-plz")) == 1, "no second newOrder"


# ------------------------------------------------------------------ a CA that misbehaves

@pytest.fixture
def stub(request):
    param = request.param if isinstance(request.param, dict) else {"mode": request.param}
    server = StubCA(**param).start()
    yield server
    server.stop()


def stub_driver(stub, workdir, *args):
    return run_driver("--dir", stub.directory_url, "--state", workdir / "stub", *args)


@pytest.mark.parametrize("stub", ["500"], indirect=True)
def test_ca_answering_500_is_retry_soon(stub, workdir):
    run = stub_driver(stub, workdir, "--timeout", "5", "issue", "x.example.test")
    assert run.rc == 1, run
    assert run.error["class"] == "retry-soon"
    assert run.error["http_status"] == 500
    assert run.error["type"] == "urn:ietf:params:acme:error:serverInternal"
    assert stub.directory_url in run.error["message"]
    assert len(stub.requests) == 1, "a broken directory stops the run at once"


@pytest.mark.parametrize("stub", ["503"], indirect=True)
def test_ca_overloaded_with_retry_after(stub, workdir):
    run = stub_driver(stub, workdir, "issue", "x.example.test")
    assert run.rc == 1, run
    assert run.error["class"] == "retry-after"
    assert run.error["retry_after"]


@pytest.mark.parametrize("stub", ["hang"], indirect=True)
def test_ca_that_hangs_times_out(stub, workdir):
    run = stub_driver(stub, workdir, "--timeout", "2", "--connect-timeout", "1", "issue",
                      "x.example.test")
    assert run.rc == 1, run
    assert run.error["class"] == "retry-soon"
    assert stub.directory_url in run.error["message"]
    assert "timed out" in run.error["message"].lower()
    # The message proves the driver's own timeout ended the run (the stub never answers);
    # the time it took is a figure, not a verdict.
    print(f"hanging CA: the run ended after {run.elapsed:.1f} s with a 2 s request timeout")


@pytest.mark.parametrize("stub", ["ari"], indirect=True)
def test_ari_renewal_info(stub, workdir):
    # A certificate with RFC 9773's example AKI and serial, so the CertID is the RFC's.
    d = workdir / "ari"
    d.mkdir()
    harness.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ARI test CA",
                    "-addext", "subjectKeyIdentifier=69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4",
                    "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
    harness.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=ari.example",
                    cwd=d)
    (d / "ext.cnf").write_text("authorityKeyIdentifier=keyid\nsubjectAltName=DNS:ari.example\n")
    harness.openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-set_serial", "0x87654321", "-extfile", "ext.cnf", "-out", "leaf.pem",
                    "-days", "2", cwd=d)
    out = ok(stub_driver(stub, workdir, "ari", "--cert", d / "leaf.pem"))
    assert out["cert_id"] == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert ("GET", "/ari/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE") in [r[:2] for r in stub.requests]
    info = out["renewal_info"]
    assert info["start"] == ARI_WINDOW["start"] and info["end"] == ARI_WINDOW["end"]
    assert info["explanation_url"] == ARI_EXPLANATION
    assert info["retry_after"]
    # Unauthenticated: no nonce, no account, just the directory and the GET.
    assert [r[0] for r in stub.requests] == ["GET", "GET"]
    assert all(r[2].startswith("mod_acme/") and " libcurl/" in r[2] for r in stub.requests)


@pytest.mark.parametrize("stub", [{"mode": "order", "order_retry_after": 2,
                                   "polls_before_invalid": 2, "name": "slow.example.test"}],
                         indirect=True)
def test_order_polling_honours_retry_after(stub, workdir):
    t0 = time.monotonic()
    run = stub_driver(stub, workdir, "issue", "--skip-provision", "slow.example.test")
    assert run.rc == 1, run
    # Two pending polls, then invalid: each poll waited the 2 s the CA asked for.
    assert len(stub.order_polls) == 3, stub.requests
    gaps = [b - a for a, b in zip([t0] + stub.order_polls, stub.order_polls)]
    assert all(g >= 1.9 for g in gaps[1:]), gaps
    # The authorization was fetched once for its challenge and once to explain the failure;
    # the polls went to the order only.
    assert [r[1] for r in stub.requests].count("/authz/1") == 2
    assert run.error["class"] == "permanent"
    assert "slow.example.test" in run.error["message"]
    assert run.error["detail"] == "stub: the token was not found"


@pytest.mark.parametrize("stub", [{"mode": "order", "order_retry_after": 60,
                                   "polls_before_invalid": 99, "name": "later.example.test"}],
                         indirect=True)
def test_long_retry_after_is_handed_back(stub, workdir):
    run = stub_driver(stub, workdir, "issue", "--skip-provision", "later.example.test")
    assert run.rc == 1, run
    assert run.elapsed < 10
    assert stub.order_polls == [], "never poll before the CA said"
    assert run.error["class"] == "retry-after"
    assert run.error["retry_after"]
    # The order is on file, so the next run resumes it instead of ordering again.
    stored = json.loads((workdir / "stub" / "order.json").read_text())
    assert stored["url"] == stub.url + "/order/1" and stored["status"] == "pending"
