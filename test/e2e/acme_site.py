"""Helpers that turn a private httpd into a mod_acme site served by Pebble."""
import base64
import binascii
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import harness


def site_config(httpd, pebble, domains, extra="", vhost_extra="", global_first=""):
    """mod_acme directives for `domains` (lists of names) plus one SSL vhost per domain."""
    lines = [global_first,
             f"ACMECertificateAuthority {pebble.directory_url}",
             f"ACMECACertificate {pebble.ca_file}",
             "ACMEAgreement accepted",
             "ACMEContactEmail admin@example.test",
             "<Location /acme-status>", "  SetHandler acme-status", "</Location>"]
    for names in domains:
        lines.append("ACMEDomain " + " ".join(names))
    for names in domains:
        lines += [f"<VirtualHost {httpd.host}:{httpd.https_port}>",
                  f"  ServerName {names[0]}"]
        if len(names) > 1:
            lines.append("  ServerAlias " + " ".join(names[1:]))
        lines += ["  SSLEngine on", vhost_extra, "</VirtualHost>"]
    lines.append(extra)
    return "\n".join(lines) + "\n"


def served_cert(httpd, name, extra=()):
    """Text of the leaf certificate a TLS client with SNI `name` receives, or None."""
    text, _ = harness.tls_peer_cert(httpd.https_port, name, extra=extra, host=httpd.host)
    return text


def is_pebble_cert(text, names):
    if not text or "Pebble Intermediate" not in text:
        return False
    return all(f"DNS:{n}" in text for n in names)


def serial_of(text):
    """The serial in lower-case hex (openssl prints small ones in decimal with hex after)."""
    m = re.search(r"Serial Number: \d+ \(0x([0-9a-f]+)\)", text, re.I)
    if m:
        return m.group(1).lower()
    m = re.search(r"Serial Number:\s*\n?\s*([0-9a-f:]+)", text, re.I)
    return m.group(1).replace(":", "").lower() if m else None


def wait_for_pebble_cert(httpd, names, timeout=60, not_serial=None):
    """Polls TLS handshakes until the vhost of names[0] serves a Pebble certificate for names."""
    deadline = time.monotonic() + timeout
    text = None
    while time.monotonic() < deadline:
        if not httpd.running():
            raise AssertionError("httpd exited:\n" + httpd.log_text()[-4000:])
        text = served_cert(httpd, names[0])
        if is_pebble_cert(text, names) and (not_serial is None or serial_of(text) != not_serial):
            return text
        time.sleep(0.25)
    raise AssertionError(f"no Pebble certificate for {names} within {timeout}s; last served:\n"
                         f"{text}\n--- error log ---\n{httpd.log_text()[-6000:]}\n"
                         f"--- processes ---\n{httpd.processes()}")


def verify_chain(httpd, pebble, name):
    """A real handshake that verifies the served chain against Pebble's root."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(pebble.root_pem())
        root = f.name
    text, out = harness.tls_peer_cert(httpd.https_port, name, cafile=root, host=httpd.host)
    Path(root).unlink()
    return text is not None and "Verify return code: 0 (ok)" in out, out


def status(httpd, name=None):
    code, body, _ = httpd.get("/acme-status" + (f"/{name}" if name else ""))
    assert code == 200, body
    return json.loads(body)


def https_get(httpd, name, path="/"):
    res = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                          "--resolve", f"{name}:{httpd.https_port}:{httpd.host}",
                          f"https://{name}:{httpd.https_port}{path}"],
                         capture_output=True, text=True, timeout=20)
    return int(res.stdout or 0)


def new_orders(pebble):
    return [r for r in pebble.requests() if r == ("POST", "/order-plz")]


def notify_script(workdir):
    """An ACMENotifyCommand that appends '<event> <domain> <stdin document>' lines to a file;
    returns (script, events file). The directory is writable by the httpd User."""
    out_dir = Path(workdir) / "notify"
    out_dir.mkdir(exist_ok=True)
    out_dir.chmod(0o777)
    script = out_dir / "notify.sh"
    script.write_text("#!/bin/sh\n"
                      "IFS= read -r doc\n"
                      f'echo "$1 $2 $doc" >> {out_dir}/events\n')
    script.chmod(0o755)
    return script, out_dir / "events"


def notify_events(path):
    """[(event, domain, document)] in the order they were notified."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, domain, doc = line.split(" ", 2)
        out.append((event, domain, json.loads(doc)))
    return out


def store_damage(store):
    """(files checked, [corrupt files], [temp leftovers]) of a store: every *.json must parse as
    JSON and every file holding PEM must hold only PEM blocks that parse as their kind."""
    store = Path(store)
    checked, corrupt, temps = 0, [], []
    for path in sorted(store.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if ".tmp-" in path.name:
            temps.append(str(path.relative_to(store)))
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            checked += 1
            try:
                json.loads(data)
            except ValueError:
                corrupt.append(str(path.relative_to(store)))
        elif path.suffix == ".pem" or b"-----BEGIN " in data:
            checked += 1
            if not _pem_ok(data):
                corrupt.append(str(path.relative_to(store)))
    return checked, corrupt, temps


def _pem_ok(data):
    """Every PEM block parses: certificates as X.509, keys as private keys, others as base64."""
    text = data.decode(errors="replace")
    blocks = re.findall(r"(-----BEGIN ([A-Z0-9 ]+)-----\n(.*?)-----END \2-----)", text, re.S)
    if not blocks or text.count("-----BEGIN") != len(blocks):
        return False
    try:
        for whole, kind, body in blocks:
            if kind == "CERTIFICATE":
                x509.load_pem_x509_certificate(whole.encode())
            elif kind in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"):
                serialization.load_pem_private_key(whole.encode(), password=None)
            else:
                base64.b64decode("".join(body.split()), validate=True)
    except (ValueError, TypeError, binascii.Error):
        return False
    return True
