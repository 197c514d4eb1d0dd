"""Hot activation (issue 19): renewed certificates served with no graceful restart. Real httpd
under event and prefork, real Pebble issuing 60-second certificates, real TLS handshakes
(Python's ssl, verifying against Pebble's root) running the whole time; and the fallback to a
graceful restart when a set does not fit the shared memory's slots."""
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, serial_of, served_cert

NAMES = [f"h{i}.hot.test" for i in range(4)]


class HandshakeLoad:
    """Handshakes with each name in turn until stopped; counts failures and serials seen."""

    def __init__(self, port, names, root_pem):
        self.port, self.names = port, names
        self.failures, self.count, self.errors = 0, 0, []
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
            f.write(root_pem)
        self.ctx = ssl.create_default_context(cafile=f.name)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def one(self, name):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            with self.ctx.wrap_socket(sock, server_hostname=name) as tls:
                return tls.getpeercert()

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            name = self.names[i % len(self.names)]
            i += 1
            try:
                self.one(name)
                self.count += 1
            except (OSError, ssl.SSLError) as e:
                self.failures += 1
                self.errors.append(f"{name}: {e}")
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)


def serials(httpd):
    return {n: serial_of(served_cert(httpd, n)) for n in NAMES}


@pytest.mark.parametrize("pebble", ["short-validity"], indirect=True)
@pytest.mark.parametrize("mpm", harness.MPMS, indirect=True)
def test_renewals_are_served_without_a_restart(httpd, pebble, mpm):
    httpd.write_config(site_config(httpd, pebble, [[n] for n in NAMES],
                                   global_first="ACMECheckInterval 1m"))
    httpd.start()
    for n in NAMES:
        wait_for_pebble_cert(httpd, [n])
    first = serials(httpd)
    with HandshakeLoad(httpd.https_port, NAMES, pebble.root_pem()) as load:
        # 60 s certificates are renewed with half their life left: within about 45 s.
        for n in NAMES:
            wait_for_pebble_cert(httpd, [n], timeout=90, not_serial=first[n])
        time.sleep(1)
    log = httpd.log_text()
    # First issuance and renewal alike: published to the children, never a restart.
    assert "ACME09005: mod_acme: new certificates for" in log, log[-3000:]
    assert log.count("resuming normal operations") == 1, log[-3000:]
    assert "SIGUSR1 received" not in log and "Graceful restart requested" not in log
    assert load.count > 50 and load.failures == 0, load.errors[:5]
    assert "ACME00431" in log or "self-check: the new certificate is served" in log


@pytest.mark.parametrize("pebble", ["short-validity"], indirect=True)
def test_a_set_too_large_for_its_slot_is_activated_by_a_restart(httpd, pebble):
    httpd.env["MOD_ACME_HOT_SLOT_SIZE"] = "1000"
    httpd.write_config(site_config(httpd, pebble, [["big.hot.test"]]))
    httpd.start()
    wait_for_pebble_cert(httpd, ["big.hot.test"])
    log = httpd.log_text()
    assert "ACME09004: mod_acme: big.hot.test cannot be served without a restart" in log, \
        log[-3000:]
    assert "is larger than a slot (1000 bytes)" in log
    assert "restarting gracefully" in log and "SIGUSR1 received" in log


def test_a_failed_self_check_restarts_once_and_not_in_a_loop(httpd, pebble, workdir):
    """An earlier static virtual host on the same address also answers sc.hot.test (a wildcard
    alias, which mod_acme does not take for the domain's), so SNI never reaches the managed one: neither hot activation nor a restart can serve the new certificate.
    The self-check after the hot activation meets the shadow's certificate and the parent falls
    back to one graceful restart; the self-check after that restart fails too and is reported,
    but restarts nothing more."""
    cert, key = harness.make_self_signed(Path(workdir) / "shadow", "shadow.hot.test",
                                         ["DNS:shadow.hot.test", "DNS:sc.hot.test"])
    shadow = "\n".join([f"<VirtualHost 127.0.0.1:{httpd.https_port}>",
                        "  ServerName shadow.hot.test", "  ServerAlias *.hot.test",
                        "  SSLEngine on", f"  SSLCertificateFile {cert}",
                        f"  SSLCertificateKeyFile {key}", "</VirtualHost>"])
    httpd.write_config(site_config(httpd, pebble, [["sc.hot.test"]], global_first=shadow))
    httpd.start()
    harness.wait_for(lambda: "ACME09007" in httpd.log_text(), 90, "the self-check's fallback")
    # After the restart the next worker checks again, fails again and reports it (ACME00432).
    harness.wait_for(lambda: httpd.log_text().count("ACME00432") >= 2, 60,
                     "the self-check after the restart")
    time.sleep(12)      # a monitor tick and more: time for a loop to show
    log = httpd.log_text()
    assert log.count("ACME09007") == 1, log[-4000:]
    assert log.count("SIGUSR1 received") == 1, log[-4000:]
    assert "still serves serial" in log and "for sc.hot.test, not the new certificate" in log
    # Nothing was lost: the shadow still answers its name, httpd is up.
    assert httpd.running()
    shown = served_cert(httpd, "sc.hot.test") or ""
    assert "shadow.hot.test" in shown and "Pebble" not in shown, shown
