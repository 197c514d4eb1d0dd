#!/usr/bin/python3
"""Hot activation (issue 19, "Bench"): prints, never asserts,

1. landed -> served: for renewals of 60-second certificates from Pebble under ACMEActivation hot,
   the time from the worker's "staged" log line (ACME00429) to the first TLS handshake that
   presents the new serial (probes every 20 ms per name); target <= 0.5 s, no restart;
2. first handshake of an on-demand name -> a certificate that verifies against Pebble's root,
   in that same handshake (ACMEOnDemand on a catch-all vhost, an ask endpoint saying yes);
   target <= 3 s;
3. handshake rate, hot vs static: `openssl s_time -new` (2 clients, 10 s each run) against two
   servers with the same one-domain configuration, up at once and measured in turn: one under
   ACMEActivation restart (mod_ssl's certificate, no callback), one under hot after a forced
   renewal was published (the callback serves the shared set); the ratio per pair, target
   hot >= 0.98 x static.

Usage: bench/hot_activation.py [--renewals N] [--seconds S] [--runs N] [--parts landed,ondemand,rate]
Every process is started and stopped by PID through the e2e harness.
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "test" / "e2e"))

import harness          # noqa: E402
from acme_site import site_config, wait_for_pebble_cert, serial_of, served_cert  # noqa: E402

NAMES = [f"b{i}.hot.bench" for i in range(3)]


def log_times(text, pattern):
    """(wall time, match) of every error-log line matching pattern."""
    out = []
    for m in re.finditer(r"^\[(\w{3} \w{3} \d\d \d\d:\d\d:\d\d\.\d+ \d{4})\][^\n]*?" + pattern,
                         text, re.M):
        t = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()
        out.append((t, m))
    return out


def probe(httpd, name, seen, stop):
    last = None
    while not stop.is_set():
        s = serial_of(served_cert(httpd, name) or "")
        if s and s != last:
            seen.append((time.time(), name, s))
            last = s
        time.sleep(0.02)


def landed_to_served(build, renewals):
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir, "short-validity")
    httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
    seen, stop, threads = [], threading.Event(), []
    try:
        pebble.start()
        httpd.write_config(site_config(httpd, pebble, [[n] for n in NAMES],
                                       global_first="ACMECheckInterval 1m"))
        httpd.start()
        for n in NAMES:
            wait_for_pebble_cert(httpd, [n])
        for n in NAMES:
            threads.append(threading.Thread(target=probe, args=(httpd, n, seen, stop),
                                            daemon=True))
            threads[-1].start()
        deadline = time.time() + 60 + 40 * renewals
        while time.time() < deadline and len(seen) < len(NAMES) * (renewals + 1):
            time.sleep(0.5)
        stop.set()
        log = httpd.log_text()
    finally:
        stop.set()
        httpd.stop()
        pebble.stop()
    delays = []
    staged = log_times(log, r"ACME00429: (\S+): new certificate staged")
    for t_seen, name, _ in seen:
        before = [t for t, m in staged if m.group(2) == name and t <= t_seen]
        if before and t_seen - before[-1] < 30:
            delays.append(t_seen - before[-1])
    restarts = log.count("SIGUSR1 received")
    return delays, restarts


def ondemand_first_handshakes(count):
    """Seconds from the start of the first handshake for each new name to its verified end."""
    import http.server
    import socket
    import ssl
    import tempfile

    class Yes(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ask = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Yes)
    threading.Thread(target=ask.serve_forever, daemon=True).start()
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
    times = []
    try:
        pebble.start()
        key, cert = workdir / "fb.key", workdir / "fb.pem"
        harness.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", "/CN=fallback.od.bench")
        extra = (f"<VirtualHost 127.0.0.1:{httpd.https_port}>\n ServerName od.bench\n"
                 f" ServerAlias *.od.bench\n SSLEngine on\n SSLCertificateFile {cert}\n"
                 f" SSLCertificateKeyFile {key}\n ACMEOnDemand on\n"
                 f" ACMEOnDemandAsk http://127.0.0.1:{ask.server_address[1]}/ok\n"
                 "</VirtualHost>\nACMEOnDemandRate 100/1m\n")
        httpd.write_config(site_config(httpd, pebble, [["site.od.bench"]], extra=extra))
        httpd.start()
        wait_for_pebble_cert(httpd, ["site.od.bench"])
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
            f.write(pebble.root_pem())
        ctx = ssl.create_default_context(cafile=f.name)
        for i in range(count):
            name = f"n{i}.od.bench"
            t0 = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", httpd.https_port), timeout=20) as s:
                    with ctx.wrap_socket(s, server_hostname=name):
                        times.append(time.monotonic() - t0)
            except (OSError, ssl.SSLError) as e:
                print(f"  {name}: no verified certificate in the first handshake ({e})")
            time.sleep(1)
        if os.environ.get("ACME_BENCH_VERBOSE"):
            print("\n".join(l[:200] for l in httpd.log_text().splitlines()
                            if re.search(r"ACME(0952|0950|0900|0030[2-9]|0032|0042[89])", l)))
    finally:
        httpd.stop()
        pebble.stop()
        ask.shutdown()
    return times


def s_time(port, seconds):
    procs = [subprocess.Popen(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new",
                               "-time", str(seconds)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        m = re.search(r"([\d.]+) connections/user sec", out)
        n = re.search(r"(\d+) connections in ([\d.]+)s", out)
        total += int(n.group(1)) / seconds if n else (float(m.group(1)) if m else 0)
    return total


def rate_server(mode):
    """A server of its own (and its own Pebble) serving rate.hot.bench: `restart` from the files
    mod_ssl loaded; `hot` from a set published after a forced renewal (no other activity)."""
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
    pebble.start()
    httpd.write_config(site_config(httpd, pebble, [["rate.hot.bench"]],
                                   global_first=f"ACMEActivation {mode}\n"))
    httpd.start()
    first = serial_of(wait_for_pebble_cert(httpd, ["rate.hot.bench"]))
    if mode == "hot":
        (Path(httpd.root) / "acme" / "requests" / "rate.hot.bench.force").write_text(
            f"{int(time.time())}\n")
        wait_for_pebble_cert(httpd, ["rate.hot.bench"], timeout=90, not_serial=first)
        assert "(hot activation, no restart)" in httpd.log_text()
    time.sleep(3)       # the worker's self-check and exit: nothing but handshakes from now on
    return httpd, pebble


def handshake_rates(seconds, runs):
    """Both servers up at once, measured in turn (hot, static, hot, ...): the ratio of each pair
    holds when the machine's speed drifts."""
    servers = []
    try:
        servers = [rate_server("hot"), rate_server("restart")]
        pairs = []
        for _ in range(runs):
            pairs.append((s_time(servers[0][0].https_port, seconds),
                          s_time(servers[1][0].https_port, seconds)))
        return pairs
    finally:
        for httpd, pebble in servers:
            httpd.stop()
            pebble.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--renewals", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ondemand", type=int, default=5)
    ap.add_argument("--parts", default="landed,ondemand,rate",
                    help="which figures, comma-separated: landed, ondemand, rate")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    print(f"== hot activation bench (module {harness.MODULE_SO})")
    if "landed" in parts:
        landed_part(args)
    if "ondemand" in parts:
        od = ondemand_first_handshakes(args.ondemand)
        if od:
            print(f"on-demand first handshake -> verified: n={len(od)} min {min(od):.2f} s, "
                  f"median {statistics.median(od):.2f} s, max {max(od):.2f} s  (target <= 3 s)")
    if "rate" in parts:
        rate_part(args)


def landed_part(args):
    delays, restarts = landed_to_served(None, args.renewals)
    if delays:
        print(f"landed -> served (hot): n={len(delays)} min {min(delays):.3f} s, median "
              f"{statistics.median(delays):.3f} s, max {max(delays):.3f} s  (target <= 0.5 s)")
    else:
        print("landed -> served (hot): no renewal observed")
    print(f"graceful restarts during those renewals: {restarts}  (target 0)")


def rate_part(args):
    pairs = handshake_rates(args.seconds, args.runs)
    ratios = [h / st for h, st in pairs if st]
    print("handshakes/s hot (published set) vs static, in turn: "
          + ", ".join(f"{h:.0f}/{st:.0f}" for h, st in pairs))
    print(f"ratio hot/static per pair: {', '.join(f'{r:.3f}' for r in ratios)}; median "
          f"{statistics.median(ratios):.3f}  (target >= 0.98)" if ratios else "no figure")


if __name__ == "__main__":
    main()
