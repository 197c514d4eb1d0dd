"""An https front for Pebble that the tests steer: it passes every ACME request through (so the
issuance is Pebble's own), or plays a CA that is down, answers 500s, 503 or 429 with a
Retry-After, or hangs (accepts and never answers), in one mode or in a schedule of modes over
time, and it can add an ARI (RFC 9773) renewalInfo resource that Pebble 2.4.0 lacks.

Pebble builds every URL it hands out from the request's Host header, so with the Host header
passed through unchanged the whole conversation (nonces, orders, JWS "url" checks) stays with
the front. The front records the payload of every newOrder, so a test can see `replaces`, and
the time and answer of every request it receives (`received`), so a test can check that a
Retry-After was honoured (`announced`: when each 503/429 said to come back)."""
import base64
import http.client
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PASS, DOWN, FAIL = "pass", "down", "fail"
UNAVAILABLE, LIMITED, HANG = "unavailable", "limited", "hang"
_REFUSALS = {
    FAIL: (500, b'{"type":"urn:ietf:params:acme:error:serverInternal",'
                b'"detail":"the CA is having a bad day"}'),
    UNAVAILABLE: (503, b'{"type":"urn:ietf:params:acme:error:serverInternal",'
                       b'"detail":"down for maintenance"}'),
    LIMITED: (429, b'{"type":"urn:ietf:params:acme:error:rateLimited",'
                   b'"detail":"too many requests"}'),
}
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class _Server(ThreadingHTTPServer):
    only_from = None        # a peer address; connections from any other are closed unanswered
    turned_away = 0         # connections closed that way (see CaProxy.accept_only_from)

    def verify_request(self, request, client_address):
        if self.only_from and client_address[0] != self.only_from:
            self.turned_away += 1
            return False
        return True

    def handle_error(self, request, client_address):
        # A client that went away mid-answer (a worker killed by a test) is not the front's
        # error; anything else still prints its traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def _b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) or b"null")


class CaProxy:
    def __init__(self, pebble, ari=False):
        self.pebble = pebble
        self.mode = PASS             # PASS, DOWN (connection closed unanswered), FAIL (500),
                                     # UNAVAILABLE (503), LIMITED (429) or HANG (no answer)
        self.retry_after = 5         # seconds announced by UNAVAILABLE and LIMITED
        self.schedule = None         # [(monotonic start, mode)]: see run_schedule
        self.received = []           # (time.time(), method, path, mode) of every request
        self.announced = []          # (time.time() received, instant it said to come back)
        self.issued = 0              # certificates downloaded through the front
        self.on_issued = None        # called with the count after each download, mode unchanged
        self.released = threading.Event()   # set by stop(): hanging requests end
        self.ari = ari
        self.window = None           # (start, end) RFC 3339 strings for renewalInfo
        self.window_for = None       # or a function of the certificate id giving one
        self.ari_status = 200
        self.ari_asked = []
        self.orders = []             # newOrder payloads Pebble accepted, oldest first
        self.reject_replaces = False # answer a newOrder with `replaces` 409 alreadyReplaced
        self.rejected = []           # the newOrder payloads refused that way
        self.refused = 0             # requests answered with DOWN or FAIL
        self.lock = threading.Lock()
        self.order_log = []          # every newOrder sent: see _note_order_sent
        self.delay = 0.0             # seconds each passed-through request waits: a slow CA
        self.invalid_orders = set()  # order URLs Pebble showed as invalid (validation failed)
        pdir = Path(pebble.workdir) / "pebble"
        handler = self._handler_class()
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pdir / "server.pem"), str(pdir / "server.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.directory_url = self.url + "/dir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def accept_only_from(self, address):
        """Closes, unanswered, every connection whose peer is not `address` (e.g. the outgoing
        address of a proxy): the direct route to the CA is blocked. `turned_away` counts them."""
        self.server.only_from = address

    @property
    def turned_away(self):
        return self.server.turned_away

    def orders_with(self, field):
        with self.lock:
            return [o for o in self.orders if field in o]

    def orders_per_name(self):
        """{name: number of newOrders Pebble accepted with that name among its identifiers}"""
        counts = {}
        with self.lock:
            for o in self.orders:
                for ident in o.get("identifiers", []):
                    counts[ident.get("value")] = counts.get(ident.get("value"), 0) + 1
        return counts

    def order_times(self):
        """Copies of the order_log entries: {"names", "sent", "answered", "status", "url"};
        "sent" and "answered" are time.time() values, "answered" None while Pebble works."""
        with self.lock:
            return [dict(e) for e in self.order_log]

    def _note_order_sent(self, method, body):
        """The entry of a newOrder request as it arrives (before Pebble sees it), else None."""
        if method != "POST" or not body:
            return None
        try:
            payload = _b64url_json(json.loads(body)["payload"])
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(payload, dict) or "identifiers" not in payload:
            return None
        entry = {"names": [i.get("value") for i in payload["identifiers"]], "sent": time.time(),
                 "answered": None, "status": None, "url": None}
        with self.lock:
            self.order_log.append(entry)
        return entry

    def _note_invalid_order(self, handler, body):
        try:
            invalid = json.loads(body).get("status") == "invalid"
        except (ValueError, AttributeError):
            return
        if invalid:
            with self.lock:
                self.invalid_orders.add(self.url + handler.path)

    def _note_order_answered(self, entry, status, headers):
        if entry is None:
            return
        with self.lock:
            entry["status"] = status
            entry["url"] = dict((k.lower(), v) for k, v in headers).get("location")
            entry["answered"] = time.time()

    def run_schedule(self, steps, then=PASS):
        """Switches modes over time: steps is [(seconds, mode), ...] from now on; after the last
        step the front stays in `then`."""
        now, at, plan = time.monotonic(), 0.0, []
        for seconds, mode in steps:
            plan.append((now + at, mode))
            at += seconds
        plan.append((now + at, then))
        with self.lock:
            self.schedule = plan

    def current_mode(self):
        with self.lock:
            plan = self.schedule
        if not plan:
            return self.mode
        now = time.monotonic()
        return [mode for start, mode in plan if start <= now][-1] if plan[0][0] <= now \
            else self.mode

    # ------------------------------------------------------------------ the handler

    def _forward(self, method, path, headers, body):
        conn = http.client.HTTPSConnection("127.0.0.1", self.pebble.port, timeout=30,
                                           context=self.pebble._ssl_context())
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _record_order(self, body):
        try:
            jws = json.loads(body)
            payload = _b64url_json(jws["payload"])
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(payload, dict) and "identifiers" in payload:
            with self.lock:
                self.orders.append(payload)

    def _ari_answer(self, handler):
        cert_id = handler.path[len("/ari/"):]
        self.ari_asked.append(cert_id)
        if self.ari_status != 200:
            handler.send_body(self.ari_status, b'{"type":"urn:ietf:params:acme:error:'
                              b'serverInternal","detail":"renewalInfo is down"}',
                              "application/problem+json")
            return
        start, end = self.window_for(cert_id) if self.window_for else self.window
        body = {"suggestedWindow": {"start": start, "end": end},
                "explanationURL": "https://front.example/why"}
        handler.send_body(200, json.dumps(body).encode(), extra=[("Retry-After", "1")])

    def _refuse_replaces(self, handler, body):
        """A CA that refuses the `replaces` link (RFC 9773 §5: alreadyReplaced)."""
        try:
            payload = _b64url_json(json.loads(body)["payload"])
        except (ValueError, KeyError, TypeError):
            return False
        if not isinstance(payload, dict) or "replaces" not in payload:
            return False
        with self.lock:
            self.rejected.append(payload)
        handler.send_body(409, b'{"type":"urn:ietf:params:acme:error:alreadyReplaced",'
                          b'"detail":"that certificate was replaced already"}',
                          "application/problem+json")
        return True

    def _refuse(self, handler, mode, received):
        """DOWN, HANG or an error answer; False when mode passes the request on."""
        if mode == PASS:
            return False
        with self.lock:
            self.refused += 1
        if mode == HANG:
            self.released.wait(600)
            handler.close_connection = True
            return True
        if mode == DOWN:
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        status, body = _REFUSALS[mode]
        extra = []
        if mode in (UNAVAILABLE, LIMITED):
            extra = [("Retry-After", str(self.retry_after))]
            with self.lock:
                self.announced.append((received, received + self.retry_after))
        handler.send_body(status, body, "application/problem+json", extra)
        return True

    def _handle(self, handler, method):
        received = time.time()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        mode = self.current_mode()
        with self.lock:
            self.received.append((received, method, handler.path, mode))
        if self._refuse(handler, mode, received):
            return
        if self.ari and handler.path.startswith("/ari/"):
            self._ari_answer(handler)
            return
        if self.reject_replaces and method == "POST" and body and self._refuse_replaces(handler,
                                                                                       body):
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
        sent = self._note_order_sent(method, body)
        if self.delay:
            time.sleep(self.delay)
        status, resp_headers, resp_body = self._forward(method, handler.path, headers, body)
        self._note_order_answered(sent, status, resp_headers)
        if method == "POST" and status == 200 and handler.path.startswith("/my-order/"):
            self._note_invalid_order(handler, resp_body)
        if method == "POST" and body and status == 201 and "order" in handler.path:
            self._record_order(body)
        if method == "POST" and status == 200 and handler.path.startswith("/certZ/"):
            with self.lock:
                self.issued += 1
                issued = self.issued
            if self.on_issued:
                self.on_issued(issued)
        if self.ari and handler.path == "/dir" and status == 200:
            directory = json.loads(resp_body)
            directory["renewalInfo"] = self.url + "/ari/"
            resp_body = json.dumps(directory).encode()
        extra = [(k, v) for k, v in resp_headers
                 if k.lower() not in _HOP_HEADERS and k.lower() != "content-type"]
        ctype = dict((k.lower(), v) for k, v in resp_headers).get("content-type", "")
        handler.send_body(status, resp_body, ctype, extra, head=(method == "HEAD"))

    def _handler_class(self):
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def send_body(self, status, body, ctype="application/json", extra=(), head=False):
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_GET(self):
                front._handle(self, "GET")

            def do_HEAD(self):
                front._handle(self, "HEAD")

            def do_POST(self):
                front._handle(self, "POST")

        return Handler
