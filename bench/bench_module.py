#!/usr/bin/python3
"""Benchmarks of mod_acme against a local Pebble (issue 4, "Targets").

Prints plain table lines, each with its target next to it; never asserts a timing. Exits 0 unless
something broke (a process would not start, a measurement could not be taken at all).

  1. cold start, N = 50 and 200 single-name domains, empty store: launch -> every name served
     with a Pebble certificate (TLS handshakes with SNI), CPU of the httpd process tree, CA
     requests per certificate
  2. graceful restart with every certificate valid: CA requests in the next 5 s
  3. 1,000 ACMEDomains against a dead CA vs. the same 1,000 vhosts with static certificate files:
     launch -> first HTTP answer
  4. (optional, --mod-md) Debian's mod_md for N = 10, same measure as 1

Processes are started through test/e2e/harness.py and stopped by PID in finally blocks.
"""
import argparse
import collections
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True      # leave no __pycache__ in test/e2e
sys.path.insert(0, str(REPO / "test" / "e2e"))

import harness      # noqa: E402  (reused, not copied)
import acme_site    # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROBE_THREADS = 8
KEEP = os.environ.get("ACME_BENCH_KEEP")      # keep work directories (logs) when set
MODULE = harness.MODULE_SO                    # replaced by a private copy in main()


# ---------------------------------------------------------------- output

def line(label, value, target="", note=""):
    print(f"{label:<46} {value:<30} {('target: ' + target) if target else '':<34} {note}".rstrip(),
          flush=True)


def info(text):
    print("  " + text, flush=True)


def section(title):
    print(f"\n== {title}", flush=True)


# ---------------------------------------------------------------- DER, minimal

def _tlv(buf, i):
    """(tag, content start, content end) of the DER element at i."""
    tag = buf[i]
    length = buf[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[i:i + n], "big")
        i += n
    return tag, i, i + length


_OID_CN = b"\x06\x03\x55\x04\x03"


def issuer_cn(der):
    """The issuer's commonName of a DER certificate ("" if none or unparsable)."""
    try:
        _, s, _ = _tlv(der, 0)                 # Certificate
        _, s, e = _tlv(der, s)                 # tbsCertificate
        i = s
        tag, _, end = _tlv(der, i)
        if tag == 0xA0:                        # [0] version
            i = end
        for _ in range(2):                     # serialNumber, signature
            _, _, i = _tlv(der, i)
        _, s, e = _tlv(der, i)                 # issuer Name
        i = s
        cns = []
        while i < e:
            _, rs, re_ = _tlv(der, i)          # RelativeDistinguishedName (SET)
            j = rs
            while j < re_:
                _, as_, ae = _tlv(der, j)      # AttributeTypeAndValue
                if der[as_:as_ + 5] == _OID_CN:
                    _, vs, ve = _tlv(der, as_ + 5)
                    cns.append(der[vs:ve].decode("utf-8", "replace"))
                j = ae
            i = re_
        return ", ".join(cns)
    except (IndexError, ValueError):
        return ""


# ---------------------------------------------------------------- TLS probes

_CTX = ssl.create_default_context()
_CTX.check_hostname = False
_CTX.verify_mode = ssl.CERT_NONE


def served_der(port, name, timeout=2.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            with _CTX.wrap_socket(sock, server_hostname=name) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None


def serves_pebble(port, name):
    der = served_der(port, name)
    return bool(der) and "Pebble" in issuer_cn(der) and name.encode() in der


def wait_all_served(port, names, timeout, alive, idle_sleep=0.2):
    """Polls until every name serves a Pebble certificate; {name: monotonic time first seen}.

    PROBE_THREADS threads take pending names round robin; each success is timed by its own probe
    and followed at once by the next probe, a failure by idle_sleep, so that before activation
    the probing costs at most PROBE_THREADS / idle_sleep handshakes a second of the 2 cores."""
    pending = collections.deque(names)
    seen = {}
    lock = threading.Lock()
    deadline = time.monotonic() + timeout
    stop = threading.Event()

    def prober():
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if not pending:
                    return
                name = pending.popleft()
            ok = serves_pebble(port, name)
            now = time.monotonic()
            with lock:
                if ok:
                    seen[name] = now
                else:
                    pending.append(name)
            if not ok:
                stop.wait(idle_sleep)

    threads = [threading.Thread(target=prober, daemon=True) for _ in range(PROBE_THREADS)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            if not alive():
                raise RuntimeError("httpd exited while waiting for certificates")
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return seen


def openssl_issuer(port, name):
    """Cross-check of the DER parser with openssl (used for a few names only)."""
    der = served_der(port, name)
    if not der:
        return None
    pem = ssl.DER_cert_to_PEM_cert(der)
    res = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-ext", "subjectAltName"],
                         input=pem, capture_output=True, text=True)
    return " ".join(res.stdout.split())


# ---------------------------------------------------------------- processes

def tree_cpu_seconds(leader_pid):
    """utime+stime+cutime+cstime of every process in the session httpd leads (it was started with
    start_new_session): live processes plus everything they reaped."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); session is field 6, utime..cstime fields 14..17
        if int(fields[3]) != leader_pid:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def wait_requests_settle(pebble, quiet=1.5, timeout=20):
    last, since = len(pebble.requests()), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        n = len(pebble.requests())
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


_LOG_TS = re.compile(r"^\[(\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2}\.\d+ \d{4})\]")


def log_events(path, t0_wall, patterns):
    """[(seconds since launch, label, line)] for error-log lines matching patterns {label: regex}."""
    out = []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return out
    for ln in text.splitlines():
        m = _LOG_TS.match(ln)
        if not m:
            continue
        for label, rx in patterns.items():
            if re.search(rx, ln):
                ts = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()
                out.append((ts - t0_wall, label, ln))
                break
    return out


ACME_TIMELINE = {
    "worker started": r"renewal worker started",
    "order created": r"creating the order",
    "staged": r"new certificate staged",
    "config test before activation": r"testing the configuration",
    "activation restart": r"restarting gracefully",
    "SIGUSR1/graceful": r"AH00493|Graceful restart requested",
    "resuming": r"AH00489|resuming normal operations",
    "activated": r"activated",
    "order failed": r"certificate order failed",
}


def summarize_timeline(events):
    """First/last/count per label, printed in order of first occurrence."""
    by = {}
    for t, label, _ in events:
        first, last, n = by.get(label, (t, t, 0))
        by[label] = (min(first, t), max(last, t), n + 1)
    for label, (first, last, n) in sorted(by.items(), key=lambda kv: kv[1][0]):
        if n == 1:
            info(f"t={first:6.2f}s  {label}")
        else:
            info(f"t={first:6.2f}s .. {last:6.2f}s  {label} (x{n})")


def _norm_path(path):
    return re.sub(r"^(/[^/]+/).+", r"\1", path)


def request_breakdown(reqs, n):
    counts = collections.Counter(f"{m} {_norm_path(p)}" for m, p in reqs)
    return ", ".join(f"{k} {v / n:.2f}" for k, v in counts.most_common())


_ORDER_LINE = re.compile(r"^\[([^\]]+)\].*?\] (\S+): (requesting a certificate|new certificate staged)")


def order_stats(path, t0_wall):
    """Per-domain order durations from the error log (requesting -> staged) and concurrency."""
    start, staged = {}, {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return
    for ln in text.splitlines():
        m = _ORDER_LINE.match(ln)
        if m:
            ts = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp() - t0_wall
            (start if m.group(3).startswith("req") else staged).setdefault(m.group(2), ts)
    durations = sorted(staged[d] - start[d] for d in staged if d in start)
    if not durations:
        return
    events = sorted([(t, 1) for t in start.values()] + [(t, -1) for t in staged.values()])
    cur = peak = 0
    for _, delta in events:
        cur += delta
        peak = max(peak, cur)
    info(f"orders (error log, 'requesting' -> 'staged'): {len(durations)}, each "
         f"{durations[0]:.2f}/{durations[len(durations) // 2]:.2f}/{durations[-1]:.2f} s "
         f"(min/median/max), at most {peak} at once; first started t={min(start.values()):.2f}s, "
         f"last staged t={max(staged.values()):.2f}s")


def cleanup(workdir):
    if KEEP:
        info(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- 1 + 2: cold start, restart

def bench_cold_start(n, timeout, targets, do_restart):
    section(f"cold start, {n} single-name domains, empty store")
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    httpd = None
    try:
        pebble.start()
        httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port,
                              module=MODULE)
        names = [f"d{i:04d}.bench.test" for i in range(n)]
        httpd.write_config(acme_site.site_config(httpd, pebble, [[x] for x in names]))
        rc, out = httpd.configtest()
        if rc != 0:
            raise RuntimeError("configtest failed:\n" + out)
        reqs_before = len(pebble.requests())
        t0_wall, t0 = time.time(), time.monotonic()
        httpd.start(timeout=60)
        t_listen = time.monotonic() - t0
        seen = wait_all_served(httpd.https_port, names, timeout, httpd.running)
        t_done = time.monotonic()
        cpu = tree_cpu_seconds(httpd.proc.pid)
        reqs = pebble.requests()[reqs_before:]
        orders = sum(1 for r in reqs if r == ("POST", "/order-plz"))
        ok = len(seen)
        if ok == n:
            elapsed = max(seen.values()) - t0
            line(f"cold start N={n}: all served", f"{elapsed:.2f} s",
                 f"<= {targets[0]} s", f"(mod_md 2.6.10: ~{targets[1]} s)")
        else:
            elapsed = None
            line(f"cold start N={n}: all served", f"NOT within {timeout} s ({ok}/{n})",
                 f"<= {targets[0]} s", f"(mod_md 2.6.10: ~{targets[1]} s)")
        if seen:
            ts = sorted(v - t0 for v in seen.values())
            info(f"listening after {t_listen:.2f} s; first name served {ts[0]:.2f} s, "
                 f"median {ts[len(ts) // 2]:.2f} s, last {ts[-1]:.2f} s")
        line(f"cold start N={n}: httpd tree CPU", f"{cpu:.2f} CPU-s",
             "", f"(at {t_done - t0:.2f} s)")
        line(f"cold start N={n}: CA requests/certificate", f"{len(reqs) / n:.2f} "
             f"({len(reqs)} req, {orders} orders)", "<= 8", "(mod_md: 12.5)")
        info("CA requests per certificate by kind: " + request_breakdown(reqs, n))
        settled = wait_requests_settle(pebble) - reqs_before
        if settled != len(reqs):
            info(f"after settling: {settled} requests = {settled / n:.2f}/certificate")
        for x in (names[0], names[-1]):
            info(f"openssl check {x}: {openssl_issuer(httpd.https_port, x)}")
        order_stats(httpd.error_log, t0_wall)
        info("error-log timeline (seconds since launch):")
        summarize_timeline(log_events(httpd.error_log, t0_wall, ACME_TIMELINE))

        if do_restart and ok == n:
            section(f"graceful restart with {n} valid certificates")
            before = len(pebble.requests())
            r_wall = time.time()
            httpd.graceful()
            time.sleep(5)
            after = pebble.requests()
            extra = after[before:]
            line("restart: CA requests in the next 5 s", f"{len(extra)}", "0",
                 f"(mod_md: one per domain = {n})")
            if extra:
                paths = {}
                for m, p in extra:
                    key = m + " " + re.sub(r"/[A-Za-z0-9_-]{16,}.*", "/…", p)
                    paths[key] = paths.get(key, 0) + 1
                info("requests: " + ", ".join(f"{k} x{v}" for k, v in paths.items()))
            still = sum(1 for x in names[:: max(1, n // 16)]
                        if serves_pebble(httpd.https_port, x))
            info(f"after the restart, {still} of {len(names[:: max(1, n // 16)])} sampled names "
                 f"serve their Pebble certificate; httpd running: {httpd.running()}")
            ev = log_events(httpd.error_log, r_wall, ACME_TIMELINE)
            ev = [e for e in ev if e[0] >= 0]
            if ev:
                info("error-log after the restart (seconds since SIGUSR1):")
                summarize_timeline(ev)
        return elapsed
    finally:
        if httpd:
            httpd.stop()
        pebble.stop()
        cleanup(workdir)


# ---------------------------------------------------------------- 3: 1,000 domains start-up

def first_answer_time(httpd, timeout=300):
    """Seconds from launch until a plain HTTP GET is answered (any status)."""
    t0, t0_wall = time.monotonic(), time.time()
    httpd.proc = harness.start_process("apache2", httpd._argv("-DFOREGROUND"),
                                       httpd.root / "logs" / "stdout_log")
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if httpd.proc.poll() is not None:
            raise RuntimeError(f"apache2 exited with {httpd.proc.returncode}:\n"
                               + httpd.log_text()[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", httpd.http_port), timeout=0.5) as s:
                s.settimeout(timeout)
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/"):
                    return time.monotonic() - t0, t0_wall
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"no HTTP answer within {timeout} s")


def startup_marks(t_answer, t0_wall, error_log):
    """Where the start-up time went, from the error log: mod_ssl's AH10085 (one per vhost that
    got a fallback certificate, once per configuration pass), the worker start, AH00489."""
    ev = log_events(error_log, t0_wall, {"ssl": r"AH10085", "worker": r"renewal worker started",
                                         "ready": r"AH00489"})
    ssl_t = [t for t, label, _ in ev if label == "ssl"]
    parts = []
    if ssl_t:
        half = len(ssl_t) // 2
        passes = [ssl_t[:half], ssl_t[half:]] if half else [ssl_t]
        parts += [f"mod_ssl init pass {i + 1} (AH10085) {p[0]:.2f}..{p[-1]:.2f}"
                  for i, p in enumerate(passes) if p]
    fallbacks = [f.stat().st_mtime - t0_wall
                 for f in Path(error_log).parents[1].glob("acme/domains/_fallback/*.pem")]
    if fallbacks:
        parts.insert(0, f"{len(fallbacks)} fallback certificate files written "
                        f"{min(fallbacks):.2f}..{max(fallbacks):.2f}")
    parts += [f"{label} {t:.2f}" for t, label, _ in ev if label != "ssl"][:2]
    parts.append(f"first answer {t_answer:.2f}")
    return "; ".join(parts)


def many_config(httpd, n, acme, cert, key, dead_url, cafile):
    base = httpd.base_config()
    if not acme:
        # plain httpd: no mod_acme at all
        base = "\n".join(l for l in base.splitlines() if "acme_module" not in l) + "\n"
        base = base.replace("LogLevel warn acme:debug", "LogLevel warn")
    lines = []
    if acme:
        lines += [f"ACMECertificateAuthority {dead_url}", f"ACMECACertificate {cafile}",
                  "ACMEAgreement accepted", "ACMEContactEmail admin@example.test"]
        lines += [f"ACMEDomain m{i:04d}.bench.test" for i in range(n)]
    for i in range(n):
        lines += [f"<VirtualHost 127.0.0.1:{httpd.https_port}>",
                  f"  ServerName m{i:04d}.bench.test", "  SSLEngine on"]
        if not acme:
            lines += [f"  SSLCertificateFile {cert}", f"  SSLCertificateKeyFile {key}"]
        lines.append("</VirtualHost>")
    httpd.conf_path.write_text(base + "\n".join(lines) + "\n")


def bench_many(n, runs):
    section(f"start-up with {n} vhosts: {n} ACMEDomains (dead CA, no certificates) vs static files")
    shared = harness.make_workdir()
    try:
        cafile, cert, key = harness.make_test_ca(shared / "ca", "bench")
        dead_url = f"https://127.0.0.1:{harness.free_port()}/dir"
        results = {"static": [], "acme": []}
        marks = {}
        every = {"static": [], "acme": []}
        for r in range(runs):
            for kind in ("static", "acme"):
                workdir = harness.make_workdir()
                httpd = harness.Httpd(workdir, module=MODULE)
                try:
                    many_config(httpd, n, kind == "acme", cert, key, dead_url, cafile)
                    rc, out = httpd.configtest()
                    if rc != 0:
                        raise RuntimeError(f"configtest ({kind}) failed:\n{out[-3000:]}")
                    t, t0_wall = first_answer_time(httpd)
                    results[kind].append(t)
                    marks[kind] = (t, t0_wall, httpd.error_log)
                    if kind == "acme":
                        # the fallback really is served (and it is not the static certificate)
                        der = served_der(httpd.https_port, "m0007.bench.test")
                        fb = issuer_cn(der) if der else None
                finally:
                    httpd.stop()
                    if kind in marks and marks[kind][2] == httpd.error_log:
                        marks[kind] = startup_marks(*marks[kind])
                        every[kind].append(marks[kind])
                    if kind == "acme" and r == runs - 1 and KEEP:
                        info(f"work directory kept: {workdir}")
                    else:
                        shutil.rmtree(workdir, ignore_errors=True)
        med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
        fmt = lambda v: ", ".join(f"{x:.2f}" for x in v)
        line(f"{n} vhosts, static cert files: first answer", f"{med['static']:.2f} s",
             "", f"(runs: {fmt(results['static'])})")
        line(f"{n} ACMEDomains, no certs: first answer", f"{med['acme']:.2f} s",
             "", f"(runs: {fmt(results['acme'])})")
        line(f"{n} ACMEDomains: later than static by", f"{med['acme'] - med['static']:+.2f} s",
             "<= +1 s", f"(mod_md: 171 s; difference of the fastest runs "
                        f"{min(results['acme']) - min(results['static']):+.2f} s)")
        info(f"fallback served for m0007.bench.test, issuer CN: {fb!r}")
        for kind in ("static", "acme"):
            info(f"{kind}, seconds since launch, run by run:")
            for i, m in enumerate(every[kind]):
                info(f"  {i + 1}: {m}")
    finally:
        cleanup(shared)


# ---------------------------------------------------------------- 4: Debian's mod_md, N = 10

MOD_MD = Path("/usr/lib/apache2/modules/mod_md.so")


def bench_mod_md(n, timeout):
    section(f"for comparison: Debian's mod_md, cold start, {n} single-name domains")
    if not MOD_MD.exists():
        info(f"skipped: {MOD_MD} not found")
        return
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    httpd = None
    try:
        pebble.start()
        httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
        names = [f"md{i:03d}.bench.test" for i in range(n)]
        base = httpd.base_config().replace(f"LoadModule acme_module {httpd.module}",
                                           f"LoadModule md_module {MOD_MD}")
        base = base.replace("LogLevel warn acme:debug", "LogLevel warn md:notice")
        lines = [f"MDCertificateAuthority {pebble.directory_url}",
                 f"MDCACertificateFile {pebble.ca_file}",
                 "MDCertificateAgreement accepted", "MDContactEmail admin@example.test",
                 f"MDPortMap http:{httpd.http_port} https:{httpd.https_port}",
                 "MDCAChallenges http-01", "MDRenewViaARI off",
                 "<Location /md-status>", "  SetHandler md-status", "</Location>"]
        lines += [f"MDomain {x}" for x in names]
        for x in names:
            lines += [f"<VirtualHost 127.0.0.1:{httpd.https_port}>", f"  ServerName {x}",
                      "  SSLEngine on", "</VirtualHost>"]
        httpd.conf_path.write_text(base + "\n".join(lines) + "\n")
        rc, out = httpd.configtest()
        if rc != 0:
            info("skipped: mod_md configtest failed: " + out.strip()[-500:])
            return
        reqs_before = len(pebble.requests())
        t0 = time.monotonic()
        httpd.start(timeout=60)
        staged = None
        deadline = t0 + timeout
        while time.monotonic() < deadline and httpd.running():
            if httpd.error_log.exists():
                text = httpd.error_log.read_text(errors="replace")
                if len(set(re.findall(r"AH10059: The Managed Domain (\S+) has been setup",
                                      text))) >= n:
                    staged = time.monotonic() - t0
                    break
            time.sleep(0.1)
        if staged is None:
            info(f"skipped: mod_md did not stage all {n} within {timeout} s")
            return
        httpd.graceful()
        seen = wait_all_served(httpd.https_port, names, 30, httpd.running)
        cpu = tree_cpu_seconds(httpd.proc.pid)
        reqs = pebble.requests()[reqs_before:]
        line(f"mod_md N={n}: all staged (AH10059)", f"{staged:.2f} s", "",
             "(needs an admin's graceful)")
        if len(seen) == n:
            line(f"mod_md N={n}: served after our graceful", f"{max(seen.values()) - t0:.2f} s",
                 "", "(peers.md: 5.8 s)")
        else:
            line(f"mod_md N={n}: served after our graceful", f"only {len(seen)}/{n} in 30 s")
        line(f"mod_md N={n}: httpd tree CPU", f"{cpu:.2f} CPU-s", "", "(peers.md: 4.6)")
        line(f"mod_md N={n}: CA requests/certificate", f"{len(reqs) / n:.2f}", "",
             "(peers.md: 12.5)")
        if len(seen) == n:
            before = wait_requests_settle(pebble)
            httpd.graceful()
            time.sleep(5)
            at5 = len(pebble.requests()) - before
            time.sleep(10)
            line(f"mod_md N={n}: CA req. after a graceful",
                 f"{at5} in 5 s, {len(pebble.requests()) - before} in 15 s", "",
                 "(mod_acme target: 0)")
    finally:
        if httpd:
            httpd.stop()
        pebble.stop()
        cleanup(workdir)


# ---------------------------------------------------------------- main

def _loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["cold", "many", "mod_md"], action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--sizes", default="50,200", help="cold-start sizes (default 50,200)")
    ap.add_argument("--many", type=int, default=1000, help="vhosts for part 3 (default 1000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per variant in part 3 (default 3)")
    ap.add_argument("--no-mod-md", action="store_true", help="skip the mod_md comparison")
    args = ap.parse_args()
    parts = set(args.only or ["cold", "many"] + ([] if args.no_mod_md else ["mod_md"]))

    if not harness.MODULE_SO.exists():
        print(f"{harness.MODULE_SO} is missing: build first (bash test/build.sh, then "
              f"ACME_BUILD_DIR=build/main), or set ACME_BUILD_DIR", file=sys.stderr)
        return 2
    global MODULE
    # A private copy: a rebuild of the tree during the bench must not swap the module under it.
    snap_dir = harness.make_workdir()
    MODULE = snap_dir / "mod_acme.so"
    shutil.copy2(harness.MODULE_SO, MODULE)
    print(f"mod_acme bench: module {harness.MODULE_SO} (copied, mtime "
          f"{time.strftime('%H:%M:%S', time.localtime(harness.MODULE_SO.stat().st_mtime))}), "
          f"{os.cpu_count()} CPUs, load average {_loadavg()}, Pebble with PEBBLE_VA_NOSLEEP=1, "
          f"authz reuse off")
    t_start = time.monotonic()
    failed = False
    mod_md_targets = {50: (3, 23), 200: (8, 88)}
    try:
        if "cold" in parts:
            for n in (int(x) for x in args.sizes.split(",") if x):
                try:
                    bench_cold_start(n, 45 if n <= 50 else 90,
                                     mod_md_targets.get(n, ("?", "?")), do_restart=True)
                except Exception as e:        # report, go on with the other parts
                    failed = True
                    print(f"ERROR in cold start N={n}: {e}", flush=True)
        if "many" in parts:
            try:
                bench_many(args.many, args.runs)
            except Exception as e:
                failed = True
                print(f"ERROR in the {args.many}-vhost start-up: {e}", flush=True)
        if "mod_md" in parts:
            try:
                bench_mod_md(10, 90)
            except Exception as e:
                print(f"mod_md comparison skipped after an error: {e}", flush=True)
    finally:
        left = harness.leftover_processes()
        for name, proc in harness._started:       # belt and braces: by PID only
            if proc.poll() is None:
                harness.stop_process(proc)
        if left:
            print(f"WARNING: had to stop leftover processes: {left}", file=sys.stderr)
        shutil.rmtree(snap_dir, ignore_errors=True)
    print(f"\nbench finished in {time.monotonic() - t_start:.0f} s; load average {_loadavg()}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        for _, proc in harness._started:
            if proc.poll() is None:
                harness.stop_process(proc)
        sys.exit(130)
