"""Issue 15, ACMEPreferredChain: among the default chain and the alternates a CA links
(Link: rel="alternate"; Pebble with PEBBLE_ALTERNATE_ROOTS=2), the one whose topmost issuer has
the preferred name is served; a name no chain has falls back to the default chain, logged."""
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert

NAMES = ["chain.test"]
ALTERNATES = {"env": {"PEBBLE_ALTERNATE_ROOTS": "2"}}


def _root_cn(pebble, index):
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                             input=pebble.root_pem(index), capture_output=True, text=True,
                             check=True).stdout
    return re.search(r"CN=([^,\n]+)", subject).group(1).strip()


def _verifies_with_root(httpd, pebble, index):
    """A real handshake verifying the served chain against root `index` only."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pebble.root_pem(index))
    try:
        text, out = harness.tls_peer_cert(httpd.https_port, NAMES[0], cafile=f.name)
    finally:
        Path(f.name).unlink()
    return text is not None and "Verify return code: 0 (ok)" in out


def _start(httpd, pebble, preferred):
    httpd.write_config(site_config(httpd, pebble, [NAMES],
                                   global_first=f'ACMEPreferredChain "{preferred}"'))
    httpd.start()
    wait_for_pebble_cert(httpd, NAMES)


@pytest.mark.parametrize("pebble", [ALTERNATES], indirect=True)
def test_preferred_issuer_is_served(httpd, pebble):
    wanted = _root_cn(pebble, 2)
    assert wanted != _root_cn(pebble, 0)
    _start(httpd, pebble, wanted.lower())        # matched without regard to case
    assert _verifies_with_root(httpd, pebble, 2), httpd.log_text()[-4000:]
    assert not _verifies_with_root(httpd, pebble, 0), "the default chain was served"
    assert "no chain with the preferred issuer" not in httpd.log_text()


@pytest.mark.parametrize("pebble", [ALTERNATES], indirect=True)
def test_unknown_preference_falls_back_to_the_default_chain(httpd, pebble):
    _start(httpd, pebble, "No Such Root")
    assert _verifies_with_root(httpd, pebble, 0), httpd.log_text()[-4000:]
    harness.wait_for(lambda: "no chain with the preferred issuer" in httpd.log_text(), 10,
                     "the fallback to be logged")
    line = next(l for l in httpd.log_text().splitlines() if "preferred issuer" in l)
    assert "No Such Root" in line and "among the 3 the CA offered" in line, line
