"""A tiny misbehaving "CA" on 127.0.0.1 (plain HTTP) for the failure-path tests of the driver.

Runs in a thread of the test process, so nothing can outlive the test. Modes:
  "500"          every request: 500 with a serverInternal problem document
  "503"          every request: 503 + Retry-After: 120, no problem document
  "hang"         accepts, reads the request, never answers (until stop())
  "ari"          a directory with renewalInfo; GET renewalInfo/<certID> answers a window
  "order"        just enough ACME (signatures are not checked) for an order that stays pending
                 with Retry-After: order_retry_after on every poll, and turns invalid (failed
                 http-01) after polls_before_invalid polls; poll times are kept in order_polls
"""
import itertools
import json
import threading
import time
from http.server import ThreadingHTTPServer

from stub_http import QuietHandler

ARI_WINDOW = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z"}
ARI_EXPLANATION = "https://stub.example/incident/42"


class _Handler(QuietHandler):
    def _handle(self):
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        stub.requests.append((self.command, self.path, self.headers.get("User-Agent", "")))
        if stub.mode == "hang":
            stub.release.wait(60)
            self.close_connection = True
            return
        if stub.mode == "500":
            body = json.dumps({"type": "urn:ietf:params:acme:error:serverInternal",
                               "detail": "the stub is broken on purpose", "status": 500}).encode()
            self._send(500, body, "application/problem+json")
            return
        if stub.mode == "503":
            self._send(503, b"<h1>busy</h1>", "text/html", [("Retry-After", "120")])
            return
        if stub.mode == "order":
            self._order()
            return
        self._ari()

    def _acme(self, status, body, headers=()):
        nonce = ("Replay-Nonce", f"stub-nonce-{next(self.server.stub.nonces)}")
        ctype = "application/problem+json" if status >= 400 else "application/json"
        self._send(status, json.dumps(body).encode() if body is not None else b"", ctype,
                   [nonce, *headers])

    def _order(self):
        stub, base, path = self.server.stub, self.server.stub.url, self.path
        failed = len(stub.order_polls) >= stub.polls_before_invalid
        challenge = {"type": "http-01", "url": base + "/chal/1", "token": "stub-token",
                     "status": "invalid" if failed else "pending"}
        if failed:
            challenge["error"] = {"type": "urn:ietf:params:acme:error:unauthorized",
                                  "detail": "stub: the token was not found", "status": 403}
        order = {"status": "invalid" if failed else "pending",
                 "authorizations": [base + "/authz/1"], "finalize": base + "/finalize/1"}
        retry = [("Retry-After", str(stub.order_retry_after))]
        if path == "/dir":
            self._acme(200, {"newNonce": base + "/nonce", "newAccount": base + "/acct",
                             "newOrder": base + "/order"})
        elif path == "/nonce":
            self._acme(200, None)
        elif path == "/acct":
            self._acme(201, {"status": "valid"}, [("Location", base + "/acct/1")])
        elif path == "/order":
            self._acme(201, order, [("Location", base + "/order/1"), *retry])
        elif path == "/order/1":
            stub.order_polls.append(time.monotonic())
            self._acme(200, order, retry)
        elif path == "/authz/1":
            self._acme(200, {"status": "invalid" if failed else "pending",
                             "identifier": {"type": "dns", "value": stub.name},
                             "challenges": [challenge]})
        elif path == "/chal/1":
            self._acme(200, challenge, [("Link", f'<{base}/authz/1>;rel="up"')])
        else:
            self._acme(404, {"type": "urn:ietf:params:acme:error:malformed", "detail": "no"})

    def _ari(self):
        base = self.server.stub.url
        if self.path == "/dir":
            body = {"newNonce": base + "/nonce", "newAccount": base + "/acct",
                    "newOrder": base + "/order", "renewalInfo": base + "/ari/"}
            self._send(200, json.dumps(body).encode())
        elif self.path.startswith("/ari/") and self.command == "GET":
            body = {"suggestedWindow": ARI_WINDOW, "explanationURL": ARI_EXPLANATION}
            self._send(200, json.dumps(body).encode(), headers=[("Retry-After", "21600")])
        else:
            self._send(404, b'{"type":"about:blank"}', "application/problem+json")

    do_GET = do_HEAD = do_POST = _handle


class StubCA:
    def __init__(self, mode, order_retry_after=2, polls_before_invalid=2, name="stub.example"):
        self.mode = mode
        self.order_retry_after = order_retry_after
        self.polls_before_invalid = polls_before_invalid
        self.name = name
        self.order_polls = []
        self.nonces = itertools.count(1)
        self.requests = []
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.server.stub = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.directory_url = self.url + "/dir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
