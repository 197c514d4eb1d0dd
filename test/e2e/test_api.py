"""The certificate API (issue 17) end to end: a real httpd with mod_acme, real Pebble validating
http-01 on this httpd, real clients (curl, and docs/examples/acme-api-client.py) sending CSRs
made with `openssl req`."""
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import harness
from acme_site import site_config, wait_for_pebble_cert, new_orders
from test_dns01 import install_hook, calls

CLIENT = harness.REPO / "docs" / "examples" / "acme-api-client.py"
HMAC_KEY = "k" * 16 + "0123456789abcdef0123456789abcdef"


def api_config(httpd, pebble, keyfile):
    users = Path(keyfile).parent / "api-users"
    subprocess.run(["htpasswd", "-cbB", str(users), "alice", "alice-pw"], check=True,
                   capture_output=True)
    subprocess.run(["htpasswd", "-bB", str(users), "bob", "bob-pw"], check=True,
                   capture_output=True)
    users.chmod(0o644)
    mods = "".join(f"LoadModule {m}_module {harness.HTTPD_MODULES}/mod_{m}.so\n"
                   for m in ("auth_basic", "authn_core", "authn_file", "authz_user"))
    extra = mods + f"""<Location /userapi>
  SetHandler acme-api
  AuthType Basic
  AuthName "certificate API"
  AuthUserFile {users}
  Require valid-user
</Location>
<ACMEApiClient userpanel>
  ACMEApiAuth user alice
  ACMEApiAllow site.test
</ACMEApiClient>
<Location /api>
  SetHandler acme-api
</Location>
ACMEApiWait 60s
<ACMEApiClient panel>
  ACMEApiAuth hmac {keyfile}
  ACMEApiAllow *.hmac.test
</ACMEApiClient>
<ACMEApiClient mailhost>
  ACMEApiAuth ip 127.0.0.2
  ACMEApiAllow mail.api.test **.hosted.test site.test
</ACMEApiClient>
<ACMEApiClient limited>
  ACMEApiAuth ip 127.0.0.3
  ACMEApiAllow limited.test
  ACMEApiRate 1/1h
</ACMEApiClient>
"""
    hook, record = install_hook(Path(keyfile).parent)
    extra += (f"ACMEDns01Command {hook} {pebble.challtestsrv.url} {record} ok\n"
              "ACMEDns01Propagation none\n")
    return site_config(httpd, pebble, [["site.test"]], extra=extra)


def make_csr(workdir, tag, names, cn=None, der=False):
    """A key and a CSR from `openssl req`; returns (key path, CSR path)."""
    key, csr = Path(workdir) / f"{tag}.key", Path(workdir) / f"{tag}.csr"
    harness.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={cn or names[0]}",
                    "-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names),
                    *(["-outform", "DER"] if der else []))
    return key, csr


def curl(httpd, method, path, body_file=None, source="127.0.0.2", headers=()):
    """(status, headers text, body bytes) of one request to the plain-HTTP port."""
    argv = ["curl", "-s", "-X", method, "--interface", source, "-D", "-", "-o", "-",
            "--max-time", "90", f"http://127.0.0.1:{httpd.http_port}{path}"]
    if body_file:
        argv += ["--data-binary", f"@{body_file}", "-H", "Content-Type: application/pkcs10"]
    for h in headers:
        argv += ["-H", h]
    out = subprocess.run(argv, capture_output=True, timeout=100).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/\S+ (\d+)", head)
    return (int(m.group(1)) if m else 0), head.decode(errors="replace"), body


def check_chain(workdir, pebble, chain_pem, key):
    """The chain verifies against Pebble's root and its leaf is for the CSR's key."""
    workdir = Path(workdir)
    certs = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
                       chain_pem, re.S)
    assert len(certs) >= 2, chain_pem
    (workdir / "leaf.pem").write_bytes(certs[0])
    (workdir / "inter.pem").write_bytes(b"".join(certs[1:]))
    (workdir / "root.pem").write_text(pebble.root_pem())
    res = subprocess.run(["openssl", "verify", "-CAfile", str(workdir / "root.pem"),
                          "-untrusted", str(workdir / "inter.pem"), str(workdir / "leaf.pem")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    leaf_pub = ossl("x509", "-in", str(workdir / "leaf.pem"), "-noout", "-pubkey")
    key_pub = ossl("pkey", "-in", str(key), "-pubout")
    assert leaf_pub == key_pub
    return ossl("x509", "-in", str(workdir / "leaf.pem"), "-noout", "-serial")


def ossl(*args):
    return subprocess.run(["openssl", *args], check=True, capture_output=True).stdout


def python_client(httpd, csr, *extra, key_file=None):
    argv = [sys.executable, str(CLIENT), f"http://127.0.0.1:{httpd.http_port}/api", str(csr),
            *extra] + (["--key-file", str(key_file)] if key_file else [])
    return subprocess.run(argv, capture_output=True, timeout=120)


def queued(httpd):
    q = httpd.root / "acme" / "api-queue"
    return sorted(p.name for p in q.iterdir() if not p.name.startswith(".")) if q.exists() else []


def test_api_issues_to_ip_and_hmac_clients_and_refuses_the_rest(httpd, pebble, workdir):
    keyfile = Path(workdir) / "hmac-secret.key"
    keyfile.write_text(HMAC_KEY + "\n")
    keyfile.chmod(0o600)
    httpd.write_config(api_config(httpd, pebble, keyfile))
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    wait_for_pebble_cert(httpd, ["site.test"])

    # IP client, PEM CSR, waits for the chain: 201 with the chain, which verifies.
    key, csr = make_csr(workdir, "mail", ["mail.api.test", "smtp.hosted.test"])
    code, head, chain = curl(httpd, "POST", "/api/certificates", csr)
    assert code == 201, (head, chain, httpd.log_text()[-3000:])
    assert "application/pem-certificate-chain" in head
    assert re.search(r"Location: http://.*/api/certificates/[0-9a-f]{32}", head), head
    serial = check_chain(workdir, pebble, chain, key)
    orders = len(new_orders(pebble))

    # The same CSR again, not yet due for renewal: the same certificate, no new order.
    code, head, again = curl(httpd, "POST", "/api/certificates", csr)
    assert code == 201 and again == chain, head
    assert len(new_orders(pebble)) == orders

    # Validation went through this httpd (http-01 answered by its children).
    assert re.search(r"api~[0-9a-f]{32}: answering http-01 for mail.api.test", httpd.log_text())

    # A wildcard name: dns-01 through the server's ACMEDns01Command.
    wkey, wcsr = make_csr(workdir, "wild", ["*.wild.hosted.test"])
    code, _, wchain = curl(httpd, "POST", "/api/certificates", wcsr)
    assert code == 201, (wchain, httpd.log_text()[-3000:])
    check_chain(workdir, pebble, wchain, wkey)
    assert any(c["argv"][:2] == ["setup", "_acme-challenge.wild.hosted.test"]
               for c in calls(Path(workdir) / "dns01-calls.jsonl"))
    orders = len(new_orders(pebble))

    # GET of the Location returns the chain as well.
    loc = re.search(r"Location: http://[^/]+(/\S+)", head).group(1)
    code, _, got = curl(httpd, "GET", loc)
    assert code == 200 and got == chain

    # A name outside the client's patterns: 403, nothing queued or ordered.
    _, other = make_csr(workdir, "other", ["mail.api.test", "www.other.test"])
    code, _, body = curl(httpd, "POST", "/api/certificates", other)
    assert code == 403 and b"www.other.test" in body, body
    # Malformed and oversized CSRs.
    bad = Path(workdir) / "bad.csr"
    bad.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\nnonsense\n")
    code, _, body = curl(httpd, "POST", "/api/certificates", bad)
    assert code == 400 and b"not a CSR" in body, body
    big = Path(workdir) / "big.csr"
    big.write_bytes(b"A" * (70 * 1024))
    code, _, _ = curl(httpd, "POST", "/api/certificates", big)
    assert code == 413
    # The panel's key does not sign for the IP client's names; no block for 127.0.0.1 unsigned.
    code, _, body = curl(httpd, "POST", "/api/certificates", csr, source="127.0.0.1")
    assert code == 403, body
    assert queued(httpd) == [] and len(new_orders(pebble)) == orders

    # Rate: the limited client gets one request per hour.
    assert curl(httpd, "POST", "/api/certificates", bad, source="127.0.0.3")[0] == 400
    code, head, _ = curl(httpd, "POST", "/api/certificates", bad, source="127.0.0.3")
    assert code == 429 and "Retry-After:" in head, head

    # HMAC client with the Python client, DER CSR, no wait: 202 + Location, polled to the chain.
    hkey, hcsr = make_csr(workdir, "panel", ["a.hmac.test"], der=True)
    out = Path(workdir) / "panel-chain.pem"
    res = python_client(httpd, hcsr, "--wait", "0", "--poll", "1", "--out", str(out),
                        key_file=keyfile)
    assert res.returncode == 0, res.stderr.decode() + httpd.log_text()[-3000:]
    assert check_chain(workdir, pebble, out.read_bytes(), hkey) != serial
    log = httpd.log_text()
    assert re.search(r"ACME11001: api: client panel: CSR [0-9a-f]{32} for a.hmac.test queued",
                     log), log[-3000:]

    # The 20-line shell client (curl + openssl) signs as well; the server waits: 201.
    skey, scsr = make_csr(workdir, "shell", ["b.hmac.test"])
    res = subprocess.run(["sh", str(CLIENT.parent / "acme-api-client.sh"),
                          f"http://127.0.0.1:{httpd.http_port}/api", str(scsr), str(keyfile)],
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode() + httpd.log_text()[-3000:]
    check_chain(workdir, pebble, res.stdout, skey)

    # Bad key, replayed and stale signatures.
    body = hcsr.read_bytes()
    sys.path.insert(0, str(CLIENT.parent))
    import importlib
    client = importlib.import_module("acme-api-client")
    good = client.sign(HMAC_KEY.encode(), "POST", "/api/certificates", body)
    wrong = client.sign(b"x" * 48, "POST", "/api/certificates", body)
    for hdrs, want in ((wrong, b"does not match"), (good, None), (good, b"used before")):
        code, _, text = curl(httpd, "POST", "/api/certificates", hcsr, source="127.0.0.1",
                             headers=[f"{k}: {v}" for k, v in hdrs.items()])
        if want is None:
            assert code == 201, text     # issued before: the same certificate
        else:
            assert code == 403 and want in text, text
    stale_ts = str(int(time.time()) - 600)
    import hashlib
    import hmac as hmac_mod
    sig = hmac_mod.new(HMAC_KEY.encode(), f"POST\n/api/certificates\n{stale_ts}\n".encode() + body,
                       hashlib.sha256).hexdigest()
    code, _, text = curl(httpd, "POST", "/api/certificates", hcsr, source="127.0.0.1",
                         headers=[f"X-ACME-Timestamp: {stale_ts}", f"X-ACME-Signature: {sig}"])
    assert code == 403 and b"5 minutes" in text, text

    # Panels: the managed domains the client may see, and a forced renewal of one.
    code, _, body = curl(httpd, "GET", "/api/domains")
    assert code == 200 and [d["name"] for d in json.loads(body)["domains"]] == ["site.test"]
    code, _, body = curl(httpd, "GET", "/api/domains/site.test")
    assert code == 200 and json.loads(body)["name"] == "site.test", body
    code, _, body = curl(httpd, "GET", "/api/domains", source="127.0.0.3")
    assert code == 200 and json.loads(body)["domains"] == [], body
    assert curl(httpd, "GET", "/api/domains/site.test", source="127.0.0.3")[0] == 404
    assert curl(httpd, "POST", "/api/domains/site.test/renew", source="127.0.0.3")[0] == 429
    code, _, body = curl(httpd, "POST", "/api/domains/site.test/renew")
    assert code == 202, body
    # The parent turns it into root's requests/site.test.force, as a2acme renew writes it.
    harness.wait_for(lambda: "ACME11015: site.test: renewal requested through the certificate "
                     "API" in httpd.log_text(), 15, "the renewal request to reach the parent")
    assert (httpd.root / "acme" / "requests" / "site.test.force").exists()
    # api-queue/ is the httpd User's: a renew entry any process of the User leaves there (as a
    # compromised application could) is honoured only once a day per domain.
    (httpd.root / "acme" / "requests" / "site.test.force").unlink(missing_ok=True)
    (httpd.root / "acme" / "api-queue" / "site.test.renew").write_text("")
    harness.wait_for(lambda: "ACME11017: site.test: renewal through the certificate API "
                     "refused" in httpd.log_text(), 15, "the second renewal to be refused")
    assert not (httpd.root / "acme" / "requests" / "site.test.force").exists()

    # ACMEApiAuth user: httpd's Basic authentication decides who it is, the block what it sees.
    code, _, body = curl(httpd, "GET", "/userapi/domains/site.test", source="127.0.0.1",
                         headers=["Authorization: Basic YWxpY2U6YWxpY2UtcHc="])
    assert code == 200 and json.loads(body)["name"] == "site.test", body
    code, _, body = curl(httpd, "GET", "/userapi/domains", source="127.0.0.1",
                         headers=["Authorization: Basic Ym9iOmJvYi1wdw=="])
    assert code == 403, body
    assert curl(httpd, "GET", "/userapi/domains", source="127.0.0.1")[0] == 401

    # The CA does not answer: the order is 'pending' with the reason, the POST answers 503.
    harness.stop_process(pebble.proc)
    _, dcsr = make_csr(workdir, "down", ["down.hosted.test"])
    code, head, body = curl(httpd, "POST", "/api/certificates", dcsr)
    assert code == 503 and "Retry-After: 60" in head, (head, body)
    state = json.loads(body)
    assert state["state"] == "pending" and state["error"], state

    # Logs name clients, never the key, a CSR or a chain.
    log = httpd.log_text()
    assert HMAC_KEY not in log
    assert "BEGIN CERTIFICATE" not in log and "BEGIN CERTIFICATE REQUEST" not in log
    assert "ACME11004: api: client limited" in log
    assert "ACME11002" in log and "ACME11003: api: client panel" in log


def test_api_hmac_key_file_must_be_private_and_long(httpd_alone, workdir):
    keyfile = Path(workdir) / "open.key"
    keyfile.write_text(HMAC_KEY + "\n")
    keyfile.chmod(0o644)
    conf = (f"ACMEDomain k.test\n<ACMEApiClient p>\nACMEApiAuth hmac {keyfile}\n"
            "ACMEApiAllow k.test\n</ACMEApiClient>\n")
    httpd_alone.write_config(conf)
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "can be read by others than root" in out and "chmod 600" in out, out
    keyfile.chmod(0o600)
    keyfile.write_text("short-key\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "at least 32" in out, out
    assert "short-key" not in out
