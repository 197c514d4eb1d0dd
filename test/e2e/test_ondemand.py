"""On-demand certificates (issue 19), the worker's side: names a catch-all SSL vhost saw in SNI
reach the worker through the queue, the ask endpoint (a real HTTP server on loopback) approves
or refuses each, approved names are ordered from real Pebble (http-01 answered by this httpd),
activated, and served after a restart without asking again; a flood of random names costs no
more questions than ACMEOnDemandRate allows.

The handshake that puts a name in the queue comes with hot activation's certificate callback;
here the test queues names the way a child does (an empty "<name>.ondemand" in api-queue/)."""
import http.server
import subprocess
import threading
import time
import uuid
from pathlib import Path

import harness
from acme_site import (site_config, wait_for_pebble_cert, new_orders, status, served_cert,
                       is_pebble_cert, serial_of)

A2ACME = harness.BUILD_DIR / "src" / "a2acme"


class AskServer:
    """GET /allow?domain=NAME: 200 for names starting with "yes", 403 otherwise; logs each."""

    def __init__(self):
        self.asked = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                name = self.path.partition("domain=")[2]
                outer.asked.append(name)
                self.send_response(200 if name.startswith("yes") else 403)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/allow"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def self_signed(workdir):
    key, cert = Path(workdir) / "catchall.key", Path(workdir) / "catchall.pem"
    harness.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=catchall.od.test")
    return cert, key


def ondemand_config(httpd, pebble, workdir, ask_url, ondemand="ACMEOnDemand on",
                    ssl="SSLEngine on", rate="5/1h"):
    cert, key = self_signed(workdir)
    ask = f"ACMEOnDemandAsk {ask_url}" if ask_url else ""
    extra = f"""ACMEOnDemandRate {rate}
<VirtualHost 127.0.0.1:{httpd.https_port}>
  ServerName catchall.od.test
  ServerAlias *.od.test
  {ssl}
  SSLCertificateFile {cert}
  SSLCertificateKeyFile {key}
  {ondemand}
  {ask}
</VirtualHost>
<VirtualHost 127.0.0.1:{httpd.https_port}>
  ServerName alpn.test
  ServerAlias *.alpn.test
  {ssl}
  Protocols http/1.1 acme-tls/1
  SSLCertificateFile {cert}
  SSLCertificateKeyFile {key}
  {ondemand}
  {ask}
  ACMEChallenges tls-alpn-01
</VirtualHost>
"""
    return site_config(httpd, pebble, [["site.test"]], extra=extra)


def queue(httpd, *names):
    q = httpd.root / "acme" / "api-queue"
    for n in names:
        (q / f"{n}.ondemand").touch()


def queued(httpd):
    q = httpd.root / "acme" / "api-queue"
    return [p.name for p in q.iterdir() if p.name.endswith(".ondemand")]


def wait(cond, timeout, what, httpd):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout}s\n{httpd.log_text()[-5000:]}")


def activated(httpd, name):
    d = httpd.root / "acme" / "domains" / name
    return d.is_dir() and any(d.glob("pubcert*.pem"))


def test_ondemand_asks_orders_approved_names_and_bounds_a_flood(httpd, pebble, workdir):
    ask = AskServer()
    try:
        httpd.write_config(ondemand_config(httpd, pebble, workdir, ask.url))
        rc, out = httpd.configtest()
        assert rc == 0, out
        httpd.start()
        wait_for_pebble_cert(httpd, ["site.test"])
        orders = len(new_orders(pebble))

        queue(httpd, "yes1.od.test", "no1.od.test", "yes2.alpn.test")
        wait(lambda: activated(httpd, "yes1.od.test") and activated(httpd, "yes2.alpn.test"), 90,
             "yes1.od.test and yes2.alpn.test not activated", httpd)
        assert sorted(ask.asked) == ["no1.od.test", "yes1.od.test", "yes2.alpn.test"]
        assert len(new_orders(pebble)) == orders + 2
        log = httpd.log_text()
        # Each name got its site's policy: http-01 for *.od.test, tls-alpn-01 for *.alpn.test.
        assert "yes1.od.test: answering http-01 for yes1.od.test" in log, log[-3000:]
        assert "yes2.alpn.test: answering tls-alpn-01 for yes2.alpn.test" in log, log[-3000:]
        assert not (httpd.root / "acme" / "domains" / "no1.od.test").exists()
        log = httpd.log_text()
        assert "ACME09504: on-demand: yes1.od.test: the ask endpoint approves it" in log
        assert "ACME09504: on-demand: no1.od.test: the ask endpoint refuses it" in log
        # Served at once from the shared memory (ACMEActivation hot): no restart.
        wait(lambda: is_pebble_cert(served_cert(httpd, "yes1.od.test"), ["yes1.od.test"]), 30,
             "yes1.od.test not served", httpd)
        assert "SIGUSR1 received" not in httpd.log_text()

        # The real trigger: a handshake names a new name; it waits (ACMEOnDemandWait, 10 s)
        # while the worker asks and orders, and gets the new certificate in that handshake.
        text = served_cert(httpd, "yes3.od.test")
        assert is_pebble_cert(text, ["yes3.od.test"]), (text, httpd.log_text()[-3000:])
        assert "yes3.od.test" in ask.asked and "SIGUSR1 received" not in httpd.log_text()
        assert len(new_orders(pebble)) == orders + 3
        # Shown at once, before any restart: the status (whole and per name) and the metrics.
        serial = serial_of(text).lstrip("0")       # openssl pads to whole bytes, BN_bn2hex not
        shown = [d for d in status(httpd)["domains"] if d.get("name") == "yes3.od.test"]
        assert len(shown) == 1 and shown[0].get("ondemand"), shown
        assert [c for c in shown[0]["certificates"]
                if c.get("serial", "").lower().lstrip("0") == serial], (shown, serial)
        one = status(httpd, "yes3.od.test")
        assert one.get("name") == "yes3.od.test" and one.get("ondemand"), one
        orders += 3

        # A flood of random names: at most the rate's remaining question (5/1h, 4 asked), no
        # order.
        flood = [f"f{uuid.uuid4().hex[:12]}.od.test" for _ in range(1000)]
        queue(httpd, *flood, "no1.od.test")
        wait(lambda: not queued(httpd), 90, "the queue was not emptied", httpd)
        time.sleep(1)
        asked_flood = [n for n in ask.asked if n in set(flood)]
        assert len(asked_flood) <= 1, asked_flood
        assert len(set(asked_flood)) == len(asked_flood)
        assert ask.asked.count("no1.od.test") == 1      # a refusal is cached
        assert len(new_orders(pebble)) == orders

        # The worker now waits for on-demand names between its runs; an admin's renewal
        # (what `a2acme renew` writes) still starts at once.
        old_serial = serial_of(served_cert(httpd, "site.test"))
        (httpd.root / "acme" / "requests" / "site.test.force").write_text(f"{int(time.time())}\n")
        wait_for_pebble_cert(httpd, ["site.test"], timeout=60, not_serial=old_serial)
        orders += 1

        # After a restart the approved names are managed domains: in the status as on-demand
        # ones, served, no question, no order.
        before = len(ask.asked)
        httpd.stop()
        httpd.start()
        wait(lambda: any(d.get("name") == "yes1.od.test" and d.get("certificates")
                         and d.get("ondemand") for d in status(httpd)["domains"]), 30,
             "yes1.od.test not in the status after the restart", httpd)
        assert not [d for d in status(httpd)["domains"] if d["name"] == "site.test"
                    and d.get("ondemand")]
        assert is_pebble_cert(served_cert(httpd, "yes3.od.test"), ["yes3.od.test"])
        time.sleep(2)
        assert len(ask.asked) == before
        assert len(new_orders(pebble)) == orders

        # a2acme forget: after the next restart the name is no longer a managed domain.
        store = httpd.root / "acme"
        res = subprocess.run([str(A2ACME), "--store", str(store), "forget", "yes1.od.test"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0 and "forgotten" in res.stdout, res.stdout + res.stderr
        res = subprocess.run([str(A2ACME), "--store", str(store), "forget", "yes1.od.test"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 1 and "is not an on-demand domain" in res.stderr, res.stderr
        httpd.stop()
        httpd.start()
        wait(lambda: status(httpd)["domains"], 30, "no status", httpd)
        assert not any(d.get("name") == "yes1.od.test" for d in status(httpd)["domains"])
    finally:
        ask.stop()


def test_ondemand_configtest_names_what_is_missing(httpd_alone, workdir):
    httpd = httpd_alone

    class FakePebble:
        directory_url = "https://127.0.0.1:14000/dir"
        ca_file = Path(workdir) / "none.pem"

    FakePebble.ca_file.write_text("")
    httpd.write_config(ondemand_config(httpd, FakePebble, workdir, None))
    rc, out = httpd.configtest()
    assert rc != 0 and "ACME09511" in out and "ACMEOnDemandAsk is missing" in out, out
    httpd.write_config(ondemand_config(httpd, FakePebble, workdir, "http://127.0.0.1:1/a",
                                       ssl="SSLEngine off"))
    rc, out = httpd.configtest()
    assert rc != 0 and "ACME09510" in out, out
    httpd.write_config(ondemand_config(httpd, FakePebble, workdir, "ftp://x/"))
    rc, out = httpd.configtest()
    assert rc != 0 and "is not an http:// or https:// URL" in out, out
    httpd.write_config(ondemand_config(httpd, FakePebble, workdir, "http://127.0.0.1:1/a",
                                       rate="lots"))
    rc, out = httpd.configtest()
    assert rc != 0 and "ACMEOnDemandRate" in out, out
