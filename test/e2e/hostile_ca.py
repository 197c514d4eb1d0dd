"""A fake ACME CA on 127.0.0.1 (plain HTTP) that issues for real, or misbehaves in one chosen way.

For test_hostile_ca.py: the driver (test/acmedrv) runs a whole issuance against it. Signatures
are not checked and no challenge is validated (the driver runs with --skip-provision): answering
the challenge is enough to make the order ready. Finalize takes the CSR out of the JWS and issues
a real certificate for it with `openssl x509 -req`, signed by a throw-away CA made at start.

`behaviour` names the one thing that goes wrong (None: nothing, a normal issuance). Every
behaviour is a (path, kind) pair in BEHAVIOURS: when the request for `path` arrives, the answer
is replaced by `kind`. Requests that reach the "other host" (a second server on another port,
standing for a host that is not the CA's) are kept in `foreign.requests`: there must be none.

Runs in threads of the test process, so nothing can outlive the test; stop() ends them.
"""
import base64
import itertools
import json
import subprocess
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from stub_http import QuietHandler

MIB = 1024 * 1024

# behaviour -> (the path it replaces the answer of, what is sent instead)
BEHAVIOURS = {
    "trickle-headers":      ("/dir", "trickle-headers"),
    "trickle-body":         ("/dir", "trickle-body"),
    "huge-body":            ("/dir", "huge-length"),
    "huge-chunked":         ("/order", "huge-chunked"),
    "html-directory":       ("/dir", "html"),
    "text-order":           ("/order", "text"),
    "truncated-directory":  ("/dir", "truncated"),
    "truncated-order":      ("/order/1", "truncated"),
    "octet-stream-order":   ("/order/1", "octet-stream"),
    "array-directory":      ("/dir", "array"),
    "directory-wrong-types": ("/dir", "directory-wrong-types"),
    "order-wrong-types":    ("/order", "order-wrong-types"),
    "order-finalize-number": ("/order", "order-finalize-number"),
    "authz-wrong-types":    ("/authz/1", "authz-wrong-types"),
    "redirect-directory":   ("/dir", "redirect"),
    "redirect-order":       ("/order/1", "redirect"),
    "problem-200-directory": ("/dir", "problem-200"),
    "problem-200-order":    ("/order/1", "problem-200"),
    "foreign-order":        ("/order", "foreign-location"),
    "foreign-authz":        ("/order", "foreign-authz"),
    "foreign-challenge":    ("/authz/1", "foreign-challenge"),
    "foreign-finalize":     ("/order/1", "foreign-finalize"),
    "foreign-certificate":  ("/finalize/1", "foreign-certificate"),
    "leaf-other-key":       ("/finalize/1", "leaf-other-key"),
    "leaf-other-names":     ("/finalize/1", "leaf-other-names"),
    "cert-as-json":         ("/cert/1", "cert-as-json"),
}


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _openssl(*args, cwd):
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True,
                   timeout=30)


class _Issuer:
    """A throw-away CA that signs whatever the fake CA hands it."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.serial = itertools.count(1)
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=hostile test CA", cwd=self.dir)
        self.ca_pem = (self.dir / "ca.pem").read_text()

    def issue(self, csr_der, names):
        """A leaf for the CSR's key with these DNS names, followed by the CA certificate."""
        n = next(self.serial)
        csr = self.dir / f"req{n}.pem"
        b64 = base64.b64encode(csr_der).decode()
        lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
        csr.write_text("-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines)
                       + "\n-----END CERTIFICATE REQUEST-----\n")
        ext = self.dir / f"ext{n}.cnf"
        ext.write_text("[v3]\nbasicConstraints=critical,CA:FALSE\n"
                       "subjectAltName=" + ",".join("DNS:" + x for x in names) + "\n")
        _openssl("x509", "-req", "-in", csr.name, "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", 1000 + n, "-days", "1", "-extfile", ext.name,
                 "-extensions", "v3", "-out", f"leaf{n}.pem", cwd=self.dir)
        return (self.dir / f"leaf{n}.pem").read_text() + self.ca_pem

    def other_key_csr(self, names):
        """A CSR for these names, but with a key that is not the client's."""
        n = next(self.serial)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"other{n}.key", "-subj", "/CN=" + names[0],
                 "-outform", "DER", "-out", f"other{n}.der", cwd=self.dir)
        return (self.dir / f"other{n}.der").read_bytes()


class _Handler(QuietHandler):
    def _acme(self, status, body, headers=(), ctype=None):
        nonce = ("Replay-Nonce", f"hostile-nonce-{next(self.server.ca.nonces)}")
        if ctype is None:
            ctype = "application/problem+json" if status >= 400 else "application/json"
        data = body if isinstance(body, bytes) else (json.dumps(body).encode()
                                                     if body is not None else b"")
        self._send(status, data, ctype, [nonce, *headers])

    def _handle(self):
        ca = self.server.ca
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with ca.lock:
            ca.requests.append((self.command, self.path))
        if ca is not None and ca.foreign_of is not None:
            self._acme(404, {"type": "urn:ietf:params:acme:error:malformed",
                             "detail": "this is not the CA"})
            return
        payload = None
        if raw:
            try:
                payload = json.loads(_b64url_decode(json.loads(raw)["payload"]) or b"null")
            except (ValueError, KeyError, TypeError):
                payload = None
        if self.path == "/order" and isinstance(payload, dict):
            ca.names = [i.get("value") for i in payload.get("identifiers", [])]
        target, kind = BEHAVIOURS.get(ca.behaviour, (None, None))
        if self.path == target and not (self.path == "/dir" and self.command == "HEAD"):
            if _Hostile(self, payload).send(kind):
                return
        self._normal(payload)

    def _normal(self, payload):
        ca, path = self.server.ca, self.path
        if path == "/dir":
            self._acme(200, ca.directory())
        elif path == "/nonce":
            self._acme(200, None)
        elif path == "/acct":
            self._acme(201, {"status": "valid"}, [("Location", ca.url + "/acct/1")])
        elif path == "/order":
            self._acme(201, ca.order(), [("Location", ca.url + "/order/1")])
        elif path == "/order/1":
            self._acme(200, ca.order())
        elif path == "/authz/1":
            self._acme(200, ca.authz())
        elif path == "/chal/1":
            ca.validated = True
            self._acme(200, ca.challenge(), [("Link", f'<{ca.url}/authz/1>;rel="up"')])
        elif path == "/finalize/1":
            csr = _b64url_decode((payload or {}).get("csr", ""))
            ca.chain = ca.issuer.issue(csr, ca.names)
            self._acme(200, ca.order())
        elif path == "/cert/1" and ca.chain:
            self._acme(200, ca.chain.encode(), ctype="application/pem-certificate-chain")
        else:
            self._acme(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "no"})

    do_GET = do_HEAD = do_POST = _handle


class _Hostile:
    """The misbehaviours; send() returns False to let the normal answer go out instead."""

    def __init__(self, handler, payload):
        self.h = handler
        self.ca = handler.server.ca
        self.payload = payload

    def send(self, kind):
        method = getattr(self, "_" + kind.replace("-", "_"))
        return method() is not False

    def _trickle(self, head, body_len):
        h = self.h
        h.close_connection = True
        try:
            if not head:
                h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              + f"Content-Length: {body_len}\r\n\r\n".encode())
            junk = b"X-Slow: " + b"a" * 4096 if head else b" " * body_len
            for byte in junk:
                h.wfile.write(bytes([byte]))
                if self.ca.release.wait(1):
                    return
        except OSError:
            return

    def _trickle_headers(self):
        self.h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self._trickle(True, 0)

    def _trickle_body(self):
        self._trickle(False, 100000)

    def _huge_length(self):
        body = b'{"newNonce": "' + b"a" * (2 * MIB) + b'"}'
        try:
            self.h._acme(200, body)
        except OSError:
            pass

    def _huge_chunked(self):
        h = self.h
        h.close_connection = True
        h.send_response(201)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Replay-Nonce", "hostile-nonce-chunked")
        h.end_headers()
        chunk = b"a" * 65536
        try:
            for _ in range(2 * MIB // len(chunk) + 1):
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    def _html(self):
        self.h._acme(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>",
                     ctype="text/html")

    def _text(self):
        self.h._acme(201, b"order created, thank you", [("Location", self.ca.url + "/order/1")],
                     ctype="text/plain")

    def _truncated(self):
        body = self.ca.directory() if self.h.path == "/dir" else self.ca.order()
        text = json.dumps(body).encode()
        self.h._acme(200, text[:len(text) // 2])

    def _octet_stream(self):
        self.h._acme(200, bytes(range(256)) * 4, ctype="application/octet-stream")

    def _array(self):
        self.h._acme(200, [self.ca.directory()])

    def _directory_wrong_types(self):
        self.h._acme(200, {"newNonce": 1, "newAccount": ["x"], "newOrder": {"a": 1}})

    def _order_wrong_types(self):
        self.h._acme(201, {"status": 7, "authorizations": self.ca.url + "/authz/1",
                           "finalize": self.ca.url + "/finalize/1"},
                     [("Location", self.ca.url + "/order/1")])

    def _order_finalize_number(self):
        order = self.ca.order()
        order["finalize"] = 42
        self.h._acme(201, order, [("Location", self.ca.url + "/order/1")])

    def _authz_wrong_types(self):
        self.h._acme(200, {"status": "pending", "identifier": {"type": "dns", "value": 12},
                           "challenges": "http-01"})

    def _redirect(self):
        self.h._acme(301 if self.h.path == "/dir" else 307, b"",
                     [("Location", self.ca.url + "/moved" + self.h.path)], ctype="text/html")

    def _problem_200(self):
        self.h._acme(200, {"type": "urn:ietf:params:acme:error:serverInternal",
                           "detail": "hostile: a problem with a success status", "status": 500},
                     ctype="application/problem+json")

    def _foreign_location(self):
        self.h._acme(201, self.ca.order(), [("Location", self.ca.foreign.url + "/order/1")])

    def _foreign_authz(self):
        order = self.ca.order()
        order["authorizations"] = [self.ca.foreign.url + "/authz/1"]
        self.h._acme(201, order, [("Location", self.ca.url + "/order/1")])

    def _foreign_challenge(self):
        authz = self.ca.authz()
        authz["challenges"][0]["url"] = self.ca.foreign.url + "/chal/1"
        self.h._acme(200, authz)

    def _foreign_finalize(self):
        order = self.ca.order()
        order["finalize"] = self.ca.foreign.url + "/finalize/1"
        self.h._acme(200, order)

    def _foreign_certificate(self):
        csr = _b64url_decode((self.payload or {}).get("csr", ""))
        self.ca.chain = self.ca.issuer.issue(csr, self.ca.names)
        order = self.ca.order()
        order["certificate"] = self.ca.foreign.url + "/cert/1"
        self.h._acme(200, order)

    def _leaf_other_key(self):
        csr = self.ca.issuer.other_key_csr(self.ca.names)
        self.ca.chain = self.ca.issuer.issue(csr, self.ca.names)
        self.h._acme(200, self.ca.order())

    def _leaf_other_names(self):
        csr = _b64url_decode((self.payload or {}).get("csr", ""))
        self.ca.chain = self.ca.issuer.issue(csr, ["not-the-ordered-name.example"])
        self.h._acme(200, self.ca.order())

    def _cert_as_json(self):
        self.h._acme(200, {"certificate": self.ca.chain})


class HostileCA:
    def __init__(self, workdir, behaviour=None, foreign_of=None):
        if behaviour is not None and behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour}")
        self.behaviour = behaviour
        self.foreign_of = foreign_of
        self.nonces = itertools.count(1)
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.names = []
        self.validated = False
        self.chain = None
        self.issuer = _Issuer(Path(workdir) / "hostile-ca") if foreign_of is None else None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.server.ca = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.directory_url = self.url + "/dir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        # The "other host": a second server whose URLs the hostile behaviours hand out.
        self.foreign = HostileCA(workdir, foreign_of=self) if foreign_of is None else None

    def directory(self):
        return {"newNonce": self.url + "/nonce", "newAccount": self.url + "/acct",
                "newOrder": self.url + "/order"}

    def order(self):
        status = "pending"
        if self.chain:
            status = "valid"
        elif self.validated:
            status = "ready"
        order = {"status": status, "identifiers": [{"type": "dns", "value": n}
                                                   for n in self.names],
                 "authorizations": [self.url + "/authz/1"], "finalize": self.url + "/finalize/1"}
        if self.chain:
            order["certificate"] = self.url + "/cert/1"
        return order

    def challenge(self):
        return {"type": "http-01", "url": self.url + "/chal/1", "token": "hostile-token",
                "status": "valid" if self.validated else "pending"}

    def authz(self):
        return {"status": "valid" if self.validated else "pending",
                "identifier": {"type": "dns", "value": self.names[0] if self.names else "?"},
                "challenges": [self.challenge()]}

    def start(self):
        self.thread.start()
        if self.foreign:
            self.foreign.start()
        return self

    def stop(self):
        self.release.set()
        if self.foreign:
            self.foreign.stop()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
