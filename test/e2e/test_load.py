"""Activation under load (issue 9): 50 domains issued and activated while a second process keeps
the server busy, compared with the same load across as many admin graceful restarts of a server
with static certificates. Figures are printed; the assertions are about errors, not timings."""
import re
import shutil
import subprocess
import threading
import time

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert

N_DOMAINS = 50

pytestmark = pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")


class Load:
    """wrk with keep-alive against the plain HTTP port, for a fixed time, in the background."""

    def __init__(self, port, seconds):
        self.argv = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency",
                     f"http://127.0.0.1:{port}/index.html"]
        self.output = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        res = subprocess.run(self.argv, capture_output=True, text=True, timeout=600)
        self.output = res.stdout + res.stderr

    def start(self):
        self.thread.start()
        time.sleep(0.5)

    def result(self):
        self.thread.join(timeout=600)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                           self.output)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", self.output)
        requests = re.search(r"(\d+) requests in", self.output)
        return {
            "breakdown": errors.group(0) if errors else "none",
            "requests": int(requests.group(1)) if requests else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        }


def _restarts(httpd):
    return httpd.log_text().count("SIGUSR1 received.  Doing graceful restart")


def test_activation_under_load_is_no_worse_than_admin_restarts(workdir, pebble):
    names = [[f"d{i}.load.test"] for i in range(N_DOMAINS)]
    acme = harness.Httpd(workdir / "acme", http_port=pebble.http_port,
                         https_port=pebble.tls_port)
    static = None
    try:
        acme.write_config(site_config(acme, pebble, names))
        acme.start()
        load = Load(acme.http_port, 25)
        load.start()
        for n in names:
            wait_for_pebble_cert(acme, n, timeout=60)
        acme_result = load.result()
        restarts = _restarts(acme)
        log = acme.log_text()
        acme.stop()

        static = harness.Httpd(workdir / "static")
        cert, key = harness.make_self_signed(workdir / "static", "static.test",
                                             ["DNS:static.test"])
        vhosts = "".join(f"<VirtualHost 127.0.0.1:{static.https_port}>\n  ServerName {n[0]}\n"
                         f"  SSLEngine on\n  SSLCertificateFile {cert}\n"
                         f"  SSLCertificateKeyFile {key}\n</VirtualHost>\n" for n in names)
        static.write_config(vhosts)
        static.start()
        load = Load(static.http_port, 25)
        load.start()
        for _ in range(max(restarts, 1)):
            time.sleep(2)
            static.graceful()
        baseline = load.result()
    finally:
        acme.stop()
        if static:
            static.stop()
    print(f"\n{N_DOMAINS} domains issued under load: {restarts} self-restarts, {acme_result}")
    print(f"static server, {max(restarts, 1)} admin graceful restarts: {baseline}")
    assert acme_result["requests"] > 1000
    assert acme_result["non_2xx"] == 0, acme_result
    assert "connect 0," in acme_result["breakdown"] and "timeout 0" in acme_result["breakdown"]
    # wrk counts a few read errors per thousand requests against httpd even without any restart
    # (keep-alive closes), so compare rates, with room for that noise: on this 2-core machine
    # the same build measured 0.37-0.76 % against baselines of 0.21-0.30 % (and the build before
    # the trust work 0.47-0.51 % against 0.23-0.26 %), so the bound is 3x the baseline + 0.3 %.
    # A restart loop or a dropped listener shows as many times that.
    acme_rate = acme_result["socket_errors"] / acme_result["requests"]
    base_rate = baseline["socket_errors"] / max(baseline["requests"], 1)
    print(f"error rate: mod_acme {acme_rate:.4%}, static baseline {base_rate:.4%}")
    assert acme_rate <= 3 * base_rate + 0.003, (acme_result, baseline)
    assert "scoreboard is full" not in log and "seg fault" not in log
