"""TLS challenges end to end: tls-alpn-01 (RFC 8737) validated by a real Pebble on the httpd's
TLS port while nothing answers on the HTTP port Pebble would use, IP identifiers, what clients
see during a validation, and the legacy tls-sni-01 answered for its *.acme.invalid SNI name."""
import base64
import datetime
import hashlib
import json
import os
import pwd
import socket
import ssl
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ObjectIdentifier, NameOID

import harness
from acme_site import site_config, wait_for_pebble_cert, verify_chain, status

ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
PROTOCOLS = "Protocols http/1.1 acme-tls/1"
SLOW_VALIDATION = {"env": {"PEBBLE_VA_NOSLEEP": "0", "PEBBLE_VA_SLEEPTIME": "8"}}


@pytest.fixture
def tls_httpd(workdir, pebble):
    """httpd on Pebble's TLS port; its plain-HTTP port is NOT the one Pebble validates http-01 on."""
    server = harness.Httpd(workdir, http_port=harness.free_port(), https_port=pebble.tls_port)
    try:
        yield server
    finally:
        server.stop()


class PortWatch:
    """Listens on a port and counts connections: proves the CA never tried it."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


def handshake(port, sni, alpn=None, request=None):
    """(certificate, negotiated ALPN, bytes answered to `request`) of one TLS handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            answer = None
            if request is not None:
                tls.sendall(request)
                answer = b""
                try:
                    while True:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
                except (ssl.SSLError, OSError):
                    pass
            return cert, tls.selected_alpn_protocol(), answer


def sans(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(v.value) if isinstance(v, x509.IPAddress) else v.value for v in ext.value]


def acme_identifier(cert):
    """(critical, extnValue bytes) of the id-pe-acmeIdentifier extension, or None."""
    for ext in cert.extensions:
        if ext.oid == ACME_IDENTIFIER:
            return ext.critical, ext.value.value
    return None


def is_pebble_cert(cert):
    return "Pebble" in cert.issuer.rfc4514_string()


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run_as_user(path):
    """Files the test places in the store must be readable by the children's User."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("www-data")
        for p in [path, *path.parents]:
            if p.name in ("challenges",):
                break
            os.chown(p, pw.pw_uid, pw.pw_gid)


class AccountView:
    """Reads what the module's account sees at Pebble (POST-as-GET signed with its key)."""

    def __init__(self, httpd, pebble):
        store = Path(httpd.root) / "acme"
        key_path = next(store.glob("accounts/*/account.key"))
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        url_file = next(store.glob("jobs/account.*.json"))
        self.account_url = json.loads(url_file.read_text())["url"]
        self.ctx = ssl.create_default_context(cafile=str(pebble.ca_file))
        with urllib.request.urlopen(pebble.directory_url, context=self.ctx, timeout=10) as r:
            self.directory = json.load(r)

    def thumbprint(self):
        nums = self.key.public_key().public_numbers()
        jwk = json.dumps({"crv": "P-256", "kty": "EC", "x": b64u(nums.x.to_bytes(32, "big")),
                          "y": b64u(nums.y.to_bytes(32, "big"))}, separators=(",", ":"),
                         sort_keys=True)
        return b64u(hashlib.sha256(jwk.encode()).digest())

    def _nonce(self):
        req = urllib.request.Request(self.directory["newNonce"], method="HEAD")
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            return r.headers["Replay-Nonce"]

    def get(self, url):
        protected = b64u(json.dumps({"alg": "ES256", "kid": self.account_url,
                                     "nonce": self._nonce(), "url": url}).encode())
        r, s = decode_dss_signature(self.key.sign(f"{protected}.".encode(),
                                                  ec.ECDSA(hashes.SHA256())))
        body = json.dumps({"protected": protected, "payload": "",
                           "signature": b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))})
        req = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/jose+json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as resp:
            return json.load(resp)


def job(httpd, name):
    path = Path(httpd.root) / "acme" / "jobs" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def make_answer(path, san, acme_digest=None):
    """An answer file as the worker writes it: self-signed certificate, then its P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test challenge")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False))
    if acme_digest is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + acme_digest), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                     + key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    os.chmod(path, 0o600)
    os.chmod(path.parent, 0o755)
    run_as_user(path)


# ------------------------------------------------------------------ tls-alpn-01 with Pebble

def test_tls_alpn01_issuance_with_nothing_on_the_http_port(tls_httpd, pebble):
    httpd, names = tls_httpd, ["alpn.test", "www.alpn.test"]
    watch = PortWatch(pebble.http_port)
    try:
        httpd.write_config(site_config(httpd, pebble, [names], vhost_extra="  " + PROTOCOLS,
                                       global_first="ACMEChallenges tls-alpn-01"))
        rc, out = httpd.configtest()
        assert rc == 0, out
        httpd.start()
        text = wait_for_pebble_cert(httpd, names)
        assert "DNS:alpn.test" in text and "DNS:www.alpn.test" in text
        ok, out = verify_chain(httpd, pebble, names[0])
        assert ok, out
    finally:
        watch.close()
    log = httpd.log_text()
    for name in names:
        assert f"answering tls-alpn-01 for {name}" in log
        assert f"answering the tls-alpn-01 challenge for {name}" in log
    assert "are served (hot activation, no restart)" in log      # ACMEActivation hot
    assert watch.connections == 0, "the CA tried the HTTP port"
    # The answers are withdrawn once the CA has validated.
    left = Path(httpd.root) / "acme" / "challenges" / "tls-alpn-01"
    assert not left.exists() or not any(left.iterdir()), list(left.iterdir())
    # The job turns from "staged" to "valid" once the worker run after the restart has looked.
    harness.wait_for(lambda: status(httpd, names[0])["state"] == "valid", 15, "state valid")


def test_automatic_choice_takes_tls_alpn01_where_protocols_allow_it(tls_httpd, pebble):
    """No ACMEChallenges: a vhost that allows acme-tls/1 gets tls-alpn-01 first."""
    httpd, names = tls_httpd, ["auto.test"]
    watch = PortWatch(pebble.http_port)
    try:
        httpd.write_config(site_config(httpd, pebble, [names], vhost_extra="  " + PROTOCOLS))
        httpd.start()
        wait_for_pebble_cert(httpd, names)
    finally:
        watch.close()
    assert "auto.test: challenges tls-alpn-01 http-01 (automatic)" in httpd.log_text()
    assert "answering tls-alpn-01 for auto.test" in httpd.log_text()
    assert watch.connections == 0


def test_ip_identifier_through_tls_alpn01(tls_httpd, pebble):
    """127.0.0.1: the CA's SNI is 1.0.0.127.in-addr.arpa, which the default SSL vhost answers."""
    httpd = tls_httpd
    httpd.write_config(site_config(httpd, pebble, [["127.0.0.1"]], vhost_extra="  " + PROTOCOLS,
                                   global_first="ACMEChallenges tls-alpn-01"))
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    deadline = time.monotonic() + 60
    cert = None
    while time.monotonic() < deadline:
        assert httpd.running(), httpd.log_text()[-4000:]
        cert, _, _ = handshake(httpd.https_port, None)     # IP clients send no SNI
        if is_pebble_cert(cert):
            break
        time.sleep(0.25)
    assert is_pebble_cert(cert), httpd.log_text()[-6000:]
    assert sans(cert) == ["127.0.0.1"]
    assert "answering the tls-alpn-01 challenge for 1.0.0.127.in-addr.arpa" in httpd.log_text()
    harness.wait_for(lambda: status(httpd, "127.0.0.1")["state"] == "valid", 15, "state valid")
    assert "Pebble" in status(httpd, "127.0.0.1")["certificates"][0]["issuer"]


@pytest.mark.parametrize("pebble", [SLOW_VALIDATION], indirect=True)
def test_clients_during_a_validation(tls_httpd, pebble):
    """While the CA validates: only acme-tls/1 gets the challenge certificate (with the digest of
    the real key authorization), everybody else the normal one, and acme-tls/1 serves nothing."""
    httpd, name = tls_httpd, "during.test"
    httpd.write_config(site_config(httpd, pebble, [[name]], vhost_extra="  " + PROTOCOLS,
                                   global_first="ACMEChallenges tls-alpn-01"))
    httpd.start()
    answer = Path(httpd.root) / "acme" / "challenges" / "tls-alpn-01" / name / "answer.pem"
    harness.wait_for(answer.exists, 20, "the worker to publish its tls-alpn-01 answer")
    challenge, alpn, reply = handshake(httpd.https_port, name, ["acme-tls/1"],
                                       request=f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
    normal, normal_alpn, _ = handshake(httpd.https_port, name)
    browser, browser_alpn, page = handshake(httpd.https_port, name, ["h2", "http/1.1"],
                                            request=f"GET / HTTP/1.1\r\nHost: {name}\r\n"
                                                    "Connection: close\r\n\r\n".encode())
    if not answer.exists() or is_pebble_cert(normal):
        pytest.skip("Pebble validated before the handshakes (its random delay was ~0)")
    # The challenge certificate: exactly one SAN, the critical acmeIdentifier extension.
    assert alpn == "acme-tls/1"
    assert sans(challenge) == [name]
    view = AccountView(httpd, pebble)
    order = json.loads(job(httpd, name)["order"])
    authz = view.get(order["authorizations"][0])
    chal = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
    key_authz = f"{chal['token']}.{view.thumbprint()}"
    assert acme_identifier(challenge) == (True, b"\x04\x20" + hashlib.sha256(
        key_authz.encode()).digest())
    assert challenge.issuer == challenge.subject
    # A request over acme-tls/1 gets no response at all.
    assert reply == b"", reply
    # Normal clients with the same SNI: the normal (fallback) certificate, no extension.
    for cert in (normal, browser):
        assert acme_identifier(cert) is None
        assert not is_pebble_cert(cert)
        assert cert.fingerprint(hashes.SHA256()) != challenge.fingerprint(hashes.SHA256())
    assert normal_alpn is None and browser_alpn == "http/1.1"
    assert page.startswith(b"HTTP/1.1 503"), page[:200]
    # And the validation still succeeds.
    wait_for_pebble_cert(httpd, [name])


# ------------------------------------------------------------------ served from answer files

def dead_ca_config(httpd, pebble, names, challenges, vhost_extra="  " + PROTOCOLS):
    """A site whose CA never answers: only the answer files the test places take part."""
    dead = harness.free_port()
    return site_config(httpd, pebble, [names], vhost_extra=vhost_extra,
                       global_first=f"ACMEChallenges {challenges}").replace(
        pebble.directory_url, f"https://127.0.0.1:{dead}/dir")


def test_tls_alpn01_answer_only_for_acme_tls_and_managed_names(httpd_alone, pebble):
    httpd, name = httpd_alone, "placed.test"
    cert_file, key_file = harness.make_self_signed(Path(httpd.root) / "conf", "free.test",
                                                   ["DNS:free.test"])
    httpd.write_config(dead_ca_config(httpd, pebble, [name, "other.placed.test"], "tls-alpn-01")
                       + f"<VirtualHost 127.0.0.1:{httpd.https_port}>\n  ServerName free.test\n"
                         f"  SSLEngine on\n  SSLCertificateFile {cert_file}\n"
                         f"  SSLCertificateKeyFile {key_file}\n  {PROTOCOLS}\n</VirtualHost>\n")
    httpd.start()
    digest = hashlib.sha256(b"placed-token.thumbprint").digest()
    store = Path(httpd.root) / "acme" / "challenges" / "tls-alpn-01"
    make_answer(store / name / "answer.pem", name, digest)
    # A file for a name the module does not manage is never read.
    make_answer(store / "free.test" / "answer.pem", "free.test", digest)
    cert, alpn, reply = handshake(httpd.https_port, name, ["acme-tls/1"],
                                  request=b"GET / HTTP/1.1\r\nHost: placed.test\r\n\r\n")
    assert alpn == "acme-tls/1"
    assert sans(cert) == [name]
    assert acme_identifier(cert) == (True, b"\x04\x20" + digest)
    assert reply == b""
    # The same SNI without acme-tls/1 (or offering it among others, as no browser does).
    for offer in (None, ["http/1.1"], ["h2", "http/1.1"]):
        cert, _, _ = handshake(httpd.https_port, name, offer)
        assert acme_identifier(cert) is None, offer
    # A managed name without an answer: the normal certificate, and still no response.
    cert, alpn, reply = handshake(httpd.https_port, "other.placed.test", ["acme-tls/1"],
                                  request=b"GET / HTTP/1.1\r\nHost: other.placed.test\r\n\r\n")
    assert alpn == "acme-tls/1" and acme_identifier(cert) is None and reply == b""
    cert, _, _ = handshake(httpd.https_port, "free.test", ["acme-tls/1"])
    assert acme_identifier(cert) is None
    assert httpd.running()


# ------------------------------------------------------------------ tls-sni-01 (legacy)

def tls_sni01_name(key_authz):
    z = hashlib.sha256(key_authz.encode()).hexdigest()
    return f"{z[:32]}.{z[32:]}.acme.invalid"


def test_tls_sni01_served_for_its_acme_invalid_name(tls_httpd, pebble):
    """Pebble offers no tls-sni-01: the module says so; the test then plays the validator
    against an answer placed in the store as the worker writes it."""
    httpd, name = tls_httpd, "sni.test"
    httpd.write_config(site_config(httpd, pebble, [[name]],
                                   global_first="ACMEChallenges tls-sni-01"))
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    harness.wait_for(lambda: (status(httpd, name).get("renewal") or {}).get("last_error"), 30,
                     "the order to fail")
    err = status(httpd, name)["renewal"]["last_error"]
    assert err["class"] == "admin-action", err
    assert "the CA offers no challenge for sni.test that this server answers" in err["message"]
    assert "this server answers: tls-sni-01" in err["message"]
    assert "Protocols h2 http/1.1 acme-tls/1" in err["message"]
    assert "the CA offers no challenge for sni.test" in httpd.log_text()

    key_authz = "sni-token.thumbprint"
    sni = tls_sni01_name(key_authz)
    make_answer(Path(httpd.root) / "acme" / "challenges" / "tls-sni-01" / sni / "answer.pem",
                sni)
    cert, _, reply = handshake(httpd.https_port, sni,
                               request=f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
    assert sans(cert) == [sni]
    assert [s for s in sans(cert) if s.endswith(".acme.invalid")] == [sni]
    assert reply == b""
    # Upper case SNI is the same name.
    cert, _, _ = handshake(httpd.https_port, sni.upper())
    assert sans(cert) == [sni]
    # A name of the right shape without an answer, and the domain itself: no acme.invalid name.
    wrong = tls_sni01_name("another-token.thumbprint")
    for other in (wrong, name):
        cert, _, _ = handshake(httpd.https_port, other)
        assert not [s for s in sans(cert) if s.endswith(".acme.invalid")], other


def test_tls_sni01_is_never_chosen_automatically(httpd_alone, pebble):
    httpd, name = httpd_alone, "auto-sni.test"
    httpd.write_config(dead_ca_config(httpd, pebble, [name], "http-01"))
    httpd.start()
    sni = tls_sni01_name("x.y")
    make_answer(Path(httpd.root) / "acme" / "challenges" / "tls-sni-01" / sni / "answer.pem",
                sni)
    cert, _, _ = handshake(httpd.https_port, sni)
    assert sni not in sans(cert)


# ------------------------------------------------------------------ configuration

def test_configtest_explicit_tls_alpn01_needs_acme_tls_protocol(httpd_alone, pebble):
    httpd = httpd_alone
    httpd.write_config(site_config(httpd, pebble, [["noproto.test"]],
                                   global_first="ACMEChallenges tls-alpn-01"))
    rc, out = httpd.configtest()
    assert rc != 0
    assert "ACMEChallenges lists tls-alpn-01" in out and "noproto.test" in out
    assert "Protocols h2 http/1.1 acme-tls/1" in out


def test_configtest_warns_when_no_challenge_can_be_answered(httpd_alone, pebble):
    httpd = httpd_alone
    conf = site_config(httpd, pebble, [["nothing.test"]])
    # No plain-HTTP listener (the HTTP port is taken by an SSL vhost) and no acme-tls/1.
    conf += (f"<VirtualHost 127.0.0.1:{httpd.http_port}>\n  ServerName plain-ssl.test\n"
             "  SSLEngine on\n</VirtualHost>\n")
    httpd.write_config(conf)
    rc, out = httpd.configtest()
    assert rc == 0, out
    assert "nothing.test: this configuration can answer no challenge" in out
    assert "Listen 80" in out and "acme-tls/1" in out


def test_challenge_certificate_is_the_only_one_of_the_handshake(tls_httpd, pebble):
    """A vhost that already has an RSA certificate: the validator (Go, which prefers RSA-PSS)
    must still get the EC challenge certificate, not the RSA one next to it."""
    httpd, name = tls_httpd, "mixed.test"
    conf_dir = Path(httpd.root) / "conf"
    harness.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(conf_dir / "rsa.key"), "-out", str(conf_dir / "rsa.pem"), "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}")
    extra = (f"  SSLCertificateFile {conf_dir / 'rsa.pem'}\n"
             f"  SSLCertificateKeyFile {conf_dir / 'rsa.key'}\n  {PROTOCOLS}")
    httpd.write_config(site_config(httpd, pebble, [[name]], vhost_extra=extra,
                                   global_first="ACMEChallenges tls-alpn-01"))
    httpd.start()
    harness.wait_for(lambda: status(httpd, name)["state"] in ("staged", "valid")
                     or (status(httpd, name).get("renewal") or {}).get("last_error"), 60,
                     "the order to end")
    dom = status(httpd, name)
    assert not (dom.get("renewal") or {}).get("last_error"), dom
    assert "answering the tls-alpn-01 challenge for mixed.test" in httpd.log_text()
