#!/usr/bin/python3
"""Scrape time of SetHandler acme-metrics with many managed domains (issue 18, "Cheap").

Builds a synthetic store with N managed domains (default 10,000): each has a certificate in
domains/<name>/ (one shared EC key, leaves signed by a throw-away CA, valid for 90 days) and a
job file in jobs/<name>.json (idle, renewal in 60 days) as the worker leaves them, plus counter
files. Then starts a real httpd with the freshly built module (a dead CA: nothing is ordered),
scrapes /acme-metrics with curl several times and prints the median and the other figures.
Never asserts a timing; exits non-zero only when something broke.

  ACME_BUILD_DIR=/tmp/b-metrics /usr/bin/python3 bench/metrics_scrape.py [--domains N] [--runs K]
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True      # leave no __pycache__ in test/e2e
sys.path.insert(0, str(REPO / "test" / "e2e"))

import harness      # noqa: E402  (processes started and stopped by PID)


def make_store(store, names, owner):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench metrics CA")])
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    for sub in ("domains", "jobs"):
        (store / sub).mkdir(parents=True, exist_ok=True)
    renew_at = int((now + datetime.timedelta(days=60)).timestamp())
    for i, name in enumerate(names):
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(leaf_key.public_key())
                .serial_number(1000 + i)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=89))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
                .sign(ca_key, hashes.SHA256()))
        d = store / "domains" / name
        d.mkdir(exist_ok=True)
        (d / "pubcert.secp256r1.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / "privkey.secp256r1.pem").write_bytes(key_pem)
        os.chmod(d / "privkey.secp256r1.pem", 0o600)
        job = {"name": name, "state": "idle", "next_run": renew_at, "renew_at": renew_at,
               "failures": 0, "last_error": None, "updated": int(now.timestamp()),
               "renew_reason": "window"}
        (store / "jobs" / f"{name}.json").write_text(json.dumps(job, sort_keys=True) + "\n")
    (store / "jobs" / "metrics.json").write_text(json.dumps(
        {"orders": {"success": len(names)}, "challenges": {"http-01": {"valid": len(names)}}}))
    if owner is not None:
        for path in [store / "jobs", *(store / "jobs").iterdir()]:
            os.chown(path, *owner)


def scrape(port):
    res = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                          "%{http_code} %{time_total} %{size_download}",
                          f"http://127.0.0.1:{port}/acme-metrics"],
                         capture_output=True, text=True, timeout=120)
    code, seconds, size = res.stdout.split()
    return int(code), float(seconds), int(float(size))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--worker-wait", type=int, default=900,
                    help="seconds to wait for the worker's start-up run before scraping")
    args = ap.parse_args()

    workdir = harness.make_workdir()
    httpd = harness.Httpd(workdir)
    store = httpd.root / "acme"
    names = [f"d{i:05d}.metrics.bench" for i in range(args.domains)]
    owner = None
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam("www-data")
        owner = (pw.pw_uid, pw.pw_gid)
    t0 = time.monotonic()
    make_store(store, names, owner)
    print(f"synthetic store: {args.domains} domains in {time.monotonic() - t0:.1f} s", flush=True)
    dead = harness.free_port()
    conf = [f"ACMEStoreDir {store}", f"ACMECertificateAuthority https://127.0.0.1:{dead}/dir",
            "ACMEAgreement accepted", "<Location /acme-metrics>", "  SetHandler acme-metrics",
            "</Location>"] + [f"ACMEDomain {n}" for n in names]
    # One SSL vhost serves them all (ServerAlias lines of 100 names): the figure is the
    # handler's, not that of 10,000 vhosts.
    conf += [f"<VirtualHost 127.0.0.1:{httpd.https_port}>", f"  ServerName {names[0]}"]
    conf += ["  ServerAlias " + " ".join(names[i:i + 100]) for i in range(0, len(names), 100)]
    conf += ["  SSLEngine on", "</VirtualHost>"]
    httpd.write_config("\n".join(conf) + "\n")
    # The default acme:debug writes a line per domain at every start: not what is measured.
    httpd.conf_path.write_text(httpd.conf_path.read_text().replace("acme:debug", "acme:info"))
    try:
        t0 = time.monotonic()
        httpd.start(timeout=300)
        harness.wait_for(lambda: scrape(httpd.http_port)[0] == 200, 300, "the first scrape")
        print(f"httpd up in {time.monotonic() - t0:.1f} s", flush=True)
        # The renewal worker's start-up run over every domain shares the 2 cores: measure
        # after it (it writes jobs/next-run when done).
        t0 = time.monotonic()
        try:
            harness.wait_for(lambda: (store / "jobs" / "next-run").exists(), args.worker_wait,
                             "the worker's first run")
            print(f"worker run done after {time.monotonic() - t0:.1f} s", flush=True)
        except Exception:       # noqa: BLE001  (a figure while it runs is still a figure)
            print(f"worker still running after {args.worker_wait} s: scraping while it runs "
                  "(it takes one of the cores)", flush=True)
        # Every job file the worker rewrote since the first scrape is parsed again here.
        first = scrape(httpd.http_port)
        print(f"first scrape after the wait: {first[1] * 1000:.1f} ms", flush=True)
        results = [scrape(httpd.http_port) for _ in range(args.runs)]
        codes = {c for c, _, _ in results}
        times = [s * 1000 for _, s, _ in results]
        print(f"scrapes: {args.runs}, HTTP {sorted(codes)}, {results[-1][2]} bytes each")
        print(f"scrape time with {args.domains} domains: median {statistics.median(times):.1f} ms"
              f" (min {min(times):.1f}, max {max(times):.1f})   target: < 100 ms")
        ok = codes == {200}
    finally:
        httpd.stop()
    if not os.environ.get("ACME_BENCH_KEEP"):
        subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
