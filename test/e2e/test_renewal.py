"""Issue 7, renewal that never lets a certificate expire: CA failover, expiry warnings and
notifications, end to end with real httpd + Pebble. The ARI and failover arithmetic is
unit-tested in test/unit/test_renewal.c (the module only talks https, the ARI stub plain HTTP)."""
import json
import os
import time
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, status, serial_of


def _notify_script(workdir):
    """An ACMENotifyCommand that appends '<event> <domain> <json>' lines to a file."""
    out_dir = Path(workdir) / "notify"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    script = out_dir / "notify.sh"
    script.write_text("#!/bin/sh\n"
                      f'echo "$1 $2 $ACME_NOTIFY_JSON" >> {out_dir}/events\n')
    script.chmod(0o755)
    return script, out_dir / "events"


def _events(path):
    return path.read_text().splitlines() if path.exists() else []


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
    script, _ = _notify_script(workdir)
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
    conf = site_config(httpd, pebble, [names]).replace(
        f"ACMECertificateAuthority {pebble.directory_url}",
        f"ACMECertificateAuthority {dead} {pebble.directory_url}")
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


@pytest.mark.parametrize("pebble", ["short-validity"], indirect=True)
def test_warning_and_notifications_when_the_ca_goes_away(httpd, pebble, workdir):
    names = ["warn.test"]
    script, events = _notify_script(workdir)
    httpd.write_config(site_config(
        httpd, pebble, [names],
        global_first=f"ACMECheckInterval 1m\nACMEWarnWindow 90%\nACMENotifyCommand {script}"))
    httpd.start()
    first = wait_for_pebble_cert(httpd, names)
    # The new certificate was staged (renewed) and then seen served (installed).
    _wait(lambda: any(e.startswith("renewed warn.test") for e in _events(events)), 20,
          "no 'renewed' notification", httpd)
    _wait(lambda: any(e.startswith("installed warn.test") for e in _events(events)), 30,
          "no 'installed' notification", httpd)
    pebble.stop()
    # 60 s certificates renew with 30 s left; the CA is gone, so that attempt fails inside the
    # 90 % warn window: one CRIT line with the domain and the expiry, and the status shows it.
    line = _wait(lambda: next((l for l in httpd.log_text().splitlines()
                               if ":crit]" in l and "warn.test" in l
                               and "renewal keeps failing" in l), None),
                 80, "no CRITICAL warning", httpd)
    assert "GMT" in line and "last error" in line, line
    dom = _wait(lambda: (lambda d: d if "renewal keeps failing" in d.get("warning", "") else None)(
        status(httpd, names[0])), 10, "no warning in the status", httpd)
    assert dom["renewal"]["failures"] >= 1 and dom["next_attempt"], dom
    assert dom["state"] == "valid, renewal failing", dom
    evs = _wait(lambda: (lambda e: e if any(x.startswith("expiring warn.test") for x in e)
                         else None)(_events(events)), 10, "no 'expiring' notification", httpd)
    errored = [e for e in evs if e.startswith("errored warn.test")]
    assert errored and any(e.startswith("expiring warn.test") for e in evs), evs
    doc = json.loads(errored[0].split(" ", 2)[2])
    assert doc["event"] == "errored" and doc["names"] == names and doc["error"], doc
    # The certificate served before stays served.
    assert serial_of(wait_for_pebble_cert(httpd, names, timeout=5)) == serial_of(first)
    assert httpd.running()


class AriFront:
    """An https front for Pebble 2.4.0 (which has no ARI): GET /dir answers Pebble's directory
    plus renewalInfo pointing here; GET /ari/<certID> answers `window` (or `status`). Every other
    resource is Pebble's own, so issuance is real."""

    def __init__(self, pebble):
        import ssl
        import threading
        import urllib.request
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        front = self
        self.window = None
        self.status = 200
        self.asked = []
        pdir = Path(pebble.workdir) / "pebble"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _send(self, status, body, ctype="application/json", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/dir":
                    with urllib.request.urlopen(pebble.directory_url,
                                                context=pebble._ssl_context(), timeout=10) as r:
                        directory = json.loads(r.read())
                    directory["renewalInfo"] = front.url + "/ari/"
                    self._send(200, json.dumps(directory).encode())
                elif self.path.startswith("/ari/"):
                    front.asked.append(self.path[5:])
                    if front.status != 200:
                        self._send(front.status, b'{"type":"urn:ietf:params:acme:error:'
                                   b'serverInternal","detail":"ari down"}',
                                   "application/problem+json")
                        return
                    start, end = front.window
                    body = {"suggestedWindow": {"start": start, "end": end},
                            "explanationURL": "https://front.example/why"}
                    self._send(200, json.dumps(body).encode(), headers=[("Retry-After", "1")])
                else:
                    self._send(404, b'{"type":"about:blank"}', "application/problem+json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pdir / "server.pem"), str(pdir / "server.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.directory_url = self.url + "/dir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_ari_window_brings_renewal_forward(httpd, pebble):
    names = ["ari.test"]
    front = AriFront(pebble)
    try:
        front.window = (_rfc3339(time.time() + 30 * 86400), _rfc3339(time.time() + 31 * 86400))
        conf = site_config(httpd, pebble, [names],
                           global_first="ACMECheckInterval 1m\nACMEActivationInterval 0").replace(
            f"ACMECertificateAuthority {pebble.directory_url}",
            f"ACMECertificateAuthority {front.directory_url}")
        httpd.write_config(conf)
        httpd.start()
        first = serial_of(wait_for_pebble_cert(httpd, names))
        # Pebble's 5-year certificate: the local window is years away, ARI says in 30 days.
        dom = _wait(lambda: (lambda d: d if d.get("renewal_reason") == "ari" else None)(
            status(httpd, names[0])), 90, "no ARI-based schedule", httpd)
        assert dom["renewal"]["ari"]["explanation_url"] == "https://front.example/why", dom
        renew_at = dom["renewal"]["renew_at"]
        assert time.time() + 29 * 86400 < renew_at < time.time() + 32 * 86400, dom
        assert front.asked
        # The CA now wants the certificate replaced: a window in the past renews at the next check.
        front.window = (_rfc3339(time.time() - 7200), _rfc3339(time.time() - 3600))
        second = serial_of(wait_for_pebble_cert(httpd, names, timeout=120, not_serial=first))
        assert second != first
        assert httpd.running()
    finally:
        front.stop()


def test_ari_failure_keeps_the_local_window(httpd, pebble):
    names = ["ari-down.test"]
    front = AriFront(pebble)
    try:
        front.status = 500
        conf = site_config(httpd, pebble, [names], global_first="ACMECheckInterval 1m").replace(
            f"ACMECertificateAuthority {pebble.directory_url}",
            f"ACMECertificateAuthority {front.directory_url}")
        httpd.write_config(conf)
        httpd.start()
        text = wait_for_pebble_cert(httpd, names)
        # The post-activation run asks renewalInfo, gets a 500, and keeps the local window.
        _wait(lambda: front.asked, 30, "renewalInfo was never asked", httpd)
        dom = _wait(lambda: (lambda d: d if d.get("renewal_reason") == "window" else None)(
            status(httpd, names[0])), 30, "no local schedule", httpd)
        assert dom["renewal"]["renew_at"] > time.time() + 365 * 86400, dom
        assert dom["renewal"]["state"] == "idle" and dom["renewal"]["failures"] == 0, dom
        assert serial_of(text) and "renewalInfo (ARI) not available" in httpd.log_text()
    finally:
        front.stop()
