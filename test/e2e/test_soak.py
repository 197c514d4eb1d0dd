"""Soak (issues 9 and 19): Pebble issues 60-second certificates to 20 domains for a few minutes,
under event and prefork. Every handshake of a probe loop must verify and nothing may crash; with
ACMEActivation hot (the default) every renewal is served without a restart: the parent's
generation never changes. ACME_SOAK_SECONDS sets the length (default 300); longer runs belong
in bench/."""
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert

SOAK_SECONDS = int(os.environ.get("ACME_SOAK_SECONDS", "300"))
N_DOMAINS = 20
SIXTY_SECONDS = {"config": {"certificateValidityPeriod": 60}}


@pytest.mark.parametrize("pebble", [SIXTY_SECONDS], indirect=True)
@pytest.mark.parametrize("mpm", ["event", "prefork"], indirect=True)
def test_soak_short_certificates(httpd, pebble, mpm):
    names = [[f"s{i}.soak.test"] for i in range(N_DOMAINS)]
    httpd.write_config(site_config(httpd, pebble, names))
    httpd.start()
    for n in names:
        wait_for_pebble_cert(httpd, n, timeout=60)
    root = Path(tempfile.mkstemp(suffix=".pem")[1])
    root.write_text(pebble.root_pem())
    failures, probes = [], [0]
    stop = threading.Event()

    def probe():
        i = 0
        while not stop.is_set():
            name = names[i % N_DOMAINS][0]
            text, out = harness.tls_peer_cert(httpd.https_port, name, cafile=root)
            probes[0] += 1
            if not text or "Verify return code: 0 (ok)" not in out:
                failures.append((time.strftime("%H:%M:%S"), name, out[-300:]))
            i += 1
            time.sleep(0.05)

    thread = threading.Thread(target=probe, daemon=True)
    parent = httpd.proc.pid
    start_restarts = httpd.log_text().count("Doing graceful restart")
    thread.start()
    try:
        deadline = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < deadline:
            assert httpd.running(), httpd.log_text()[-3000:]
            time.sleep(1)
    finally:
        stop.set()
        thread.join(timeout=30)
        root.unlink()
    log = httpd.log_text()
    restarts = log.count("Doing graceful restart") - start_restarts
    renewals = log.count("new certificate activated") - N_DOMAINS
    print(f"\nsoak {SOAK_SECONDS} s, {N_DOMAINS} domains, 60 s certificates: {probes[0]} "
          f"handshakes, {len(failures)} failed, {renewals} renewals activated by "
          f"{restarts} restarts")
    assert httpd.proc.pid == parent
    assert renewals >= N_DOMAINS * (SOAK_SECONDS // 60), (renewals, restarts)
    # Hot activation: no restart at all, one generation from start to end.
    assert restarts == 0, (renewals, restarts)
    assert log.count("resuming normal operations") == 1, log[-3000:]
    assert log.count("(hot activation, no restart)") >= 1
    assert not failures, failures[:5]
    for bad in ("scoreboard is full", "seg fault", "exit signal"):
        assert bad not in log, bad
