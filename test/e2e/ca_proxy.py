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
import hashlib
import http.client
import json
import os
import re
import socket
import struct
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
        self.opened = None           # a threading.Event: until it is set, every request waits
                                     # (at most a minute): a CA that opens its doors later
        self.invalid_orders = set()  # order URLs Pebble showed as invalid (validation failed)
        self.profiles = None         # {name: description or object}: see _profiles_directory
        self.profile_log = []        # every newOrder's (names, profile or None): _profile_check
        self.profile_refused = []    # the newOrder payloads refused with invalidProfile
        self.refuse_profiles = set() # offered in the directory, yet refused at newOrder (as
                                     # a CA does for a profile an account may not use)
        self.persist = None          # a DnsPersistFront: plays dns-persist-01 (see below)
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

    # ------------------------------------------------------------------ profiles (issue 15)
    # Pebble 2.4.0 knows no profiles (draft-ietf-acme-profiles). With `profiles` set the front
    # plays a CA that offers them, as Let's Encrypt does: the directory gets meta.profiles, every
    # newOrder's `profile` is recorded, and a name the directory does not offer is refused with
    # invalidProfile before Pebble sees the order. A profile's value is its description (a
    # string, as the draft and Let's Encrypt give it) or an object {"description", "maxNames",
    # "identifierTypes"}: the form in which mod_acme reads a CA's limits.

    def _profile_check(self, handler, body):
        """Records the newOrder's profile; True when it was refused (answered here)."""
        try:
            payload = _b64url_json(json.loads(body)["payload"])
        except (ValueError, KeyError, TypeError):
            return False
        if not isinstance(payload, dict) or "identifiers" not in payload:
            return False
        profile = payload.get("profile")
        with self.lock:
            self.profile_log.append(([i.get("value") for i in payload["identifiers"]], profile))
        if profile is None or self.profiles is None or (profile in self.profiles and
                                                        profile not in self.refuse_profiles):
            return False
        with self.lock:
            self.profile_refused.append(payload)
        detail = f"profile {profile!r} is not one of {sorted(self.profiles)}"
        handler.send_body(400, json.dumps({"type": "urn:ietf:params:acme:error:invalidProfile",
                                           "detail": detail}).encode(),
                          "application/problem+json")
        return True

    def _profiles_directory(self, resp_body):
        directory = json.loads(resp_body)
        directory.setdefault("meta", {})["profiles"] = self.profiles
        return json.dumps(directory).encode()

    def profiles_of(self, name):
        """The profile (None: none) of each newOrder naming `name`, oldest first."""
        with self.lock:
            return [prof for names, prof in self.profile_log if name in names]

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
        if self.opened is not None:
            self.opened.wait(60)
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
        if self._account_life_refuse(handler, method):
            return
        if self.persist and self.persist.intercept(handler, method, body):
            return
        if method == "POST" and body and self._profile_check(handler, body):
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
        if self.profiles is not None and handler.path == "/dir" and status == 200:
            resp_body = self._profiles_directory(resp_body)
        resp_body = self._account_life_directory(handler.path, status, resp_body)
        if self.persist:
            resp_body = self.persist.rewrite(method, handler.path, body, status, resp_headers,
                                             resp_body)
        extra = [(k, v) for k, v in resp_headers
                 if k.lower() not in _HOP_HEADERS and k.lower() != "content-type"]
        ctype = dict((k.lower(), v) for k, v in resp_headers).get("content-type", "")
        handler.send_body(status, resp_body, ctype, extra, head=(method == "HEAD"))

    # ------------------------------------------------------------------ account life (issue 15)
    # A CA that changes its terms of service (tos_url replaces meta.termsOfService in the
    # directory) and one that wants them agreed to before it takes orders (user_action_terms:
    # newOrder answers 403 userActionRequired with Link rel="terms-of-service", RFC 8555 §7.3.3).
    tos_url = None
    user_action_terms = None
    user_action_refused = 0

    def _account_life_directory(self, path, status, body):
        if self.tos_url is None or path != "/dir" or status != 200:
            return body
        directory = json.loads(body)
        directory.setdefault("meta", {})["termsOfService"] = self.tos_url
        return json.dumps(directory).encode()

    def _account_life_refuse(self, handler, method):
        if not self.user_action_terms or method != "POST" or handler.path != "/order-plz":
            return False
        with self.lock:
            self.user_action_refused += 1
        handler.send_body(403, json.dumps({
            "type": "urn:ietf:params:acme:error:userActionRequired",
            "detail": "Terms of service have changed",
            "instance": self.url + "/agree-here"}).encode(), "application/problem+json",
            [("Link", f'<{self.user_action_terms}>;rel="terms-of-service"')])
        return True

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


# ---------------------------------------------------------------------- dns-persist-01

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk):
    """RFC 7638 SHA-256 thumbprint, base64url."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canon.encode()).digest())


def persist_account_uri(prefix, domain, thumbprint, account_url):
    """draft-ietf-acme-dns-persist-02 §4.1: prefix + "sha-256/" + b64url(SHA-256(len || domain
    || thumbprint || account URL))."""
    data = bytes([len(domain)]) + domain.encode() + thumbprint.encode() + account_url.encode()
    return prefix + "sha-256/" + _b64url(hashlib.sha256(data).digest())


def dns_txt(server_port, fqdn, timeout=2.0):
    """TXT values (strings of a record joined) of fqdn at 127.0.0.1:server_port over UDP."""
    qid = int.from_bytes(os.urandom(2), "big")
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in fqdn.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 16, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(q, ("127.0.0.1", server_port))
        m, _ = sock.recvfrom(4096)
    if int.from_bytes(m[0:2], "big") != qid:
        raise ValueError("DNS answer with another id")
    an = int.from_bytes(m[6:8], "big")
    off = len(q)
    out = []
    for _ in range(an):
        while m[off] != 0 and m[off] & 0xC0 != 0xC0:
            off += m[off] + 1
        off += 2 if m[off] & 0xC0 == 0xC0 else 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", m[off:off + 10])
        off += 10
        rdata, off = m[off:off + rdlen], off + rdlen
        if rtype == 16:
            parts, i = [], 0
            while i < len(rdata):
                parts.append(rdata[i + 1:i + 1 + rdata[i]].decode("latin-1"))
                i += 1 + rdata[i]
            out.append("".join(parts))
    return out


def parse_persist(text):
    """RFC 8659 issue-value: (issuer, {tag: value}); ValueError when malformed."""
    issuer, _, rest = text.partition(";")
    issuer = issuer.strip().lower().rstrip(".")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*",
                        issuer):
        raise ValueError("no issuer domain name")
    params = {}
    for part in rest.split(";"):
        if not part.strip():
            continue
        tag, eq, value = part.partition("=")
        tag, value = tag.strip(), value.strip()
        if not eq or not re.fullmatch(r"[A-Za-z0-9-]+", tag):
            raise ValueError(f"parameter {part.strip()!r} is not tag=value")
        if tag in params:
            raise ValueError(f"duplicate parameter {tag}")
        params[tag] = value
    if "accounturi" not in params:
        raise ValueError("missing accounturi")
    if "persistUntil" in params and not re.fullmatch(r"[0-9]+", params["persistUntil"]):
        raise ValueError("persistUntil is not a base-10 integer")
    return issuer, params


class DnsPersistFront:
    """Plays dns-persist-01 (draft-ietf-acme-dns-persist-02) in front of a Pebble started with
    PEBBLE_VA_ALWAYS_VALID=1 (any challenge POST it receives validates):

    - the directory's meta gets issuerDomainNames and accountHashPrefix;
    - every authorization's dns-01 challenge is shown as dns-persist-01 (same URL, no token,
      issuerDomainNames), so a client answering dns-persist-01 POSTs to Pebble's dns-01 URL;
    - such a POST reaches Pebble only when the front's own check of the _validation-persist TXT
      record (queried from pebble-challtestsrv's DNS) passes: issuer name, hashed account URI of
      the signing account (its key recorded from newAccount), persistUntil, policy=wildcard for a
      wildcard authorization. Otherwise the POST is answered 403 unauthorized with the reason and
      Pebble never hears of it. `checks` records every verdict."""

    def __init__(self, front, dns_port, issuers=("pebble-ca.test",)):
        self.front, self.dns_port, self.issuers = front, dns_port, list(issuers)
        self.prefix = front.url + "/account-hash/"
        self.accounts = {}           # account URL -> thumbprint (from newAccount)
        self.challenges = {}         # Pebble dns-01 challenge URL path -> (name, wildcard)
        self.checks = []             # (name, account URL, None or the reason it was refused)

    def check(self, name, wildcard, account_url, now=None):
        """None when the record validates name for account_url, else why not."""
        thumb = self.accounts.get(account_url)
        if thumb is None:
            return f"unknown account {account_url}"
        accepted = {persist_account_uri(self.prefix, name, thumb, account_url),
                    persist_account_uri(self.prefix, "*", thumb, account_url)}
        fqdn = "_validation-persist." + name
        reasons = []
        for txt in dns_txt(self.dns_port, fqdn):
            try:
                issuer, params = parse_persist(txt)
            except ValueError as e:
                reasons.append(f"malformed record {txt!r}: {e}")
                continue
            if issuer not in self.issuers:
                reasons.append(f"issuer {issuer} is not one of {self.issuers}")
            elif params["accounturi"] not in accepted:
                reasons.append(f"accounturi {params['accounturi']} is not the account's")
            elif "persistUntil" in params and int(params["persistUntil"]) <= (now or time.time()):
                reasons.append(f"persistUntil {params['persistUntil']} has passed")
            elif wildcard and params.get("policy", "").lower() != "wildcard":
                reasons.append("a wildcard needs policy=wildcard")
            else:
                return None
        return "; ".join(reasons) or f"no TXT record at {fqdn}"

    def intercept(self, handler, method, body):
        """Answers a refused dns-persist-01 POST itself; False to pass the request on."""
        chal = self.challenges.get(handler.path)
        if method != "POST" or not body or chal is None:
            return False
        try:
            protected = _b64url_json(json.loads(body)["protected"])
        except (ValueError, KeyError, TypeError):
            return False
        name, wildcard = chal
        reason = self.check(name, wildcard, protected.get("kid"))
        with self.front.lock:
            self.checks.append((name, protected.get("kid"), reason))
        if reason is None:
            return False
        problem = {"type": "urn:ietf:params:acme:error:unauthorized",
                   "detail": f"dns-persist-01 for {name}: {reason}"}
        handler.send_body(403, json.dumps(problem).encode(), "application/problem+json")
        return True

    def rewrite(self, method, path, body, status, headers, resp_body):
        if status not in (200, 201):
            return resp_body
        if path == "/dir":
            doc = json.loads(resp_body)
            doc.setdefault("meta", {}).update({"issuerDomainNames": self.issuers,
                                               "accountHashPrefix": self.prefix})
            return json.dumps(doc).encode()
        if path == "/sign-me-up" and body:
            jwk = _b64url_json(json.loads(body)["protected"]).get("jwk")
            location = dict((k.lower(), v) for k, v in headers).get("location")
            if jwk and location:
                self.accounts[location] = jwk_thumbprint(jwk)
            return resp_body
        if path.startswith("/authZ/"):
            return self._authz(resp_body)
        if path in self.challenges:
            return self._challenge(json.loads(resp_body))
        return resp_body

    def _challenge(self, chal):
        if chal.get("type") == "dns-01":
            chal["type"] = "dns-persist-01"
            chal.pop("token", None)
            chal["issuerDomainNames"] = self.issuers
        return json.dumps(chal).encode()

    def _authz(self, resp_body):
        doc = json.loads(resp_body)
        name = doc.get("identifier", {}).get("value", "")
        for chal in doc.get("challenges", []):
            if chal.get("type") == "dns-01":
                path = chal["url"][len(self.front.url):]
                self.challenges[path] = (name, bool(doc.get("wildcard")))
                self._challenge(chal)
        return json.dumps(doc).encode()
