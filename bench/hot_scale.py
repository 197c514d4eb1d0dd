#!/usr/bin/python3
"""Hot activation at scale (issue 19, "Bench", the 1,000-name and 10,000-domain figures).

Prints figures, never asserts a timing:

1. N names (default 1,000, --names) from an empty store under ACMEActivation hot, against Pebble
   with PEBBLE_VA_ALWAYS_VALID=1 (no validation traffic; the CA side is as cheap as it gets):
   - start -> the first name served (a TLS handshake with SNI presents Pebble's certificate);
   - per name, its set landing in the store (the worker's "staged" line, ACME00429) -> its first
     handshake with Pebble's certificate: the first name's and min/median/max (target: the
     first served within 2 s of its landing);
   - start -> all N served (target <= 30 s at N = 1,000);
   - httpd CPU per certificate when all are served: parent + children + renewal worker (utime +
     stime from /proc, reaped processes included) / N (target <= 20 ms), and the parent's alone;
     the probe handshakes are served by the same children and counted in it;
   - how the parent activated: number of hot activations (ACME09005) and names per activation.
   Probing follows the error log: a name is probed (8 threads, again every 0.1 s until served)
   from the moment the parent logs its activation (ACME00309), so the landing -> served figure
   is not a round robin's, and names waiting for their turn are not handshaken over and over.
2. Parent memory with M managed domains (default 10,000, --domains), configured only (a CA that
   does not answer, no certificates: mod_ssl serves the fallback), ACMEActivation hot vs restart:
   RSS and PSS of the parent and the sum over the children after start-up, and the shared
   segment's size from ACME09003.

Usage: bench/hot_scale.py [--names N] [--domains M] [--skip-issue] [--skip-memory]
Every process is started and stopped by PID through test/e2e/harness.py.
"""
import argparse
import collections
import os
import re
import shutil
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "test" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))

import harness          # noqa: E402
import acme_site        # noqa: E402
import bench_module     # noqa: E402  (serves_pebble, tree_cpu_seconds, many_config, output)

info, line, section = bench_module.info, bench_module.line, bench_module.section
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROBE_THREADS = 8
RETRY = 0.1         # a staged name not served yet is probed again this much later (s)
KEEP = os.environ.get("ACME_BENCH_KEEP")
_TS = r"^\[(\w{3} \w{3} \d\d \d\d:\d\d:\d\d\.\d+ \d{4})\]"
STAGED = re.compile(_TS + r".*ACME00429: (\S+): new certificate staged", re.M)
ACTIVATED = re.compile(_TS + r".*ACME00309: mod_acme: (\S+): new certificate activated", re.M)
HOT = re.compile(_TS + r".*ACME09005: mod_acme: new certificates for (.*) are served", re.M)


def wall(ts):
    return datetime.strptime(ts, "%a %b %d %H:%M:%S.%f %Y").timestamp()


def cpu_split(leader):
    """CPU seconds of httpd's session: (parent's own, what the parent reaped (renewal workers,
    tickers, children that ended), the live processes but the parent (children, a running
    worker)); utime + stime from /proc."""
    own = reaped = live = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        if int(f[3]) != leader:
            continue
        if int(entry) == leader:
            own, reaped = int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
        else:
            live += int(f[11]) + int(f[12])
    return own / CLK_TCK, reaped / CLK_TCK, live / CLK_TCK


def cpu_of(pid):
    """utime + stime of a live process, seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    f = stat[stat.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def fmt3(values, unit="s"):
    if not values:
        return "-"
    v = sorted(values)
    return f"{v[0]:.2f} / {statistics.median(v):.2f} / {v[-1]:.2f} {unit} (min/median/max)"


class LogFollower:
    """Follows the error log: {name: wall time its set was staged}; names the parent activated
    queued to probe."""

    def __init__(self, path):
        self.path, self.offset, self.buf = Path(path), 0, ""
        self.landed, self.queue, self.lock = {}, collections.deque(), threading.Lock()
        self.queued = set()

    def poll(self):
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.offset)
                data = f.read()
                self.offset = f.tell()
        except OSError:
            return
        self.buf += data
        cut = self.buf.rfind("\n") + 1
        text, self.buf = self.buf[:cut], self.buf[cut:]
        for m in STAGED.finditer(text):
            with self.lock:
                self.landed.setdefault(m.group(2), wall(m.group(1)))
        # Probed from the parent's activation line on, not from staging: probing a name
        # every 0.1 s while it waits for its turn cost the children more CPU than the module.
        for m in ACTIVATED.finditer(text):
            with self.lock:
                if m.group(2) not in self.queued:
                    self.queued.add(m.group(2))
                    self.queue.append(m.group(2))


def probe_landed(port, names, follower, timeout, alive, leader):
    """{name: wall time its Pebble certificate was first seen}, probing names once staged;
    the number of probes (each a handshake the children serve); the parent's CPU seconds when
    the first set was staged (start-up, before any activation)."""
    wanted, seen, lock, stop = set(names), {}, threading.Lock(), threading.Event()
    retry = collections.deque()
    probes = [0]
    deadline = time.monotonic() + timeout

    first_cpu = []

    def prober():
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if len(seen) == len(wanted):
                    return
                name = None
                with follower.lock:
                    if follower.queue:
                        name = follower.queue.popleft()
                if name is None and retry and retry[0][1] <= time.monotonic():
                    name = retry.popleft()[0]
            if name is None or name not in wanted:
                stop.wait(0.02)
                continue
            ok = bench_module.serves_pebble(port, name)
            now = time.time()
            with lock:
                probes[0] += 1
                if ok:
                    seen.setdefault(name, now)
                else:
                    retry.append((name, time.monotonic() + RETRY))

    threads = [threading.Thread(target=prober, daemon=True) for _ in range(PROBE_THREADS)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            if not alive():
                raise RuntimeError("httpd exited while waiting for certificates")
            follower.poll()
            if follower.landed and not first_cpu:
                first_cpu.append(cpu_split(leader)[0])  # the parent before any activation
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return seen, probes[0], (first_cpu[0] if first_cpu else None)


def probe_cost(port, names, leader, count=1000):
    """httpd CPU seconds one probe handshake costs, measured once every name is served: count
    more probes, as the run's own (same threads, same function), and the tree's CPU before and
    after."""
    todo = collections.deque(names[i % len(names)] for i in range(count))
    lock = threading.Lock()

    def prober():
        while True:
            with lock:
                if not todo:
                    return
                name = todo.popleft()
            bench_module.serves_pebble(port, name)
    before = bench_module.tree_cpu_seconds(leader)
    threads = [threading.Thread(target=prober, daemon=True) for _ in range(PROBE_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return max(0.0, bench_module.tree_cpu_seconds(leader) - before) / count


def bench_issue(n, timeout, parallel):
    section(f"{n} names from an empty store, ACMEActivation hot, Pebble PEBBLE_VA_ALWAYS_VALID=1")
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir, {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"}})
    httpd = None
    try:
        pebble.start()
        httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port,
                              module=bench_module.MODULE)
        names = [f"s{i:05d}.scale.test" for i in range(n)]
        first = "ACMEActivation hot" + (f"\nACMEParallelOrders {parallel}" if parallel else "")
        httpd.write_config(acme_site.site_config(httpd, pebble, [[x] for x in names],
                                                 global_first=first))
        rc, out = httpd.configtest()
        if rc != 0:
            raise RuntimeError("configtest failed:\n" + out[-3000:])
        follower = LogFollower(httpd.error_log)
        t0 = time.time()
        httpd.start(timeout=120)
        t_listen = time.time() - t0
        seen, probes, cpu_startup = probe_landed(httpd.https_port, names, follower, timeout,
                                                 httpd.running, httpd.proc.pid)
        cpu_tree = bench_module.tree_cpu_seconds(httpd.proc.pid)
        cpu_parent, cpu_reaped, cpu_live = cpu_split(httpd.proc.pid)
        t_done = time.time()
        follower.poll()
        log = httpd.log_text()
        landed = follower.landed
        info(f"listening after {t_listen:.2f} s; {len(landed)} staged, {len(seen)} served; "
             f"{probes} probe handshakes")
        if seen:
            first_name = min(seen, key=seen.get)
            line("start -> first name served", f"{seen[first_name] - t0:.2f} s", "",
                 f"({first_name})")
        if landed:
            first_landed = min(landed, key=landed.get)
            line("start -> first set staged", f"{landed[first_landed] - t0:.2f} s", "",
                 f"({first_landed})")
            if first_landed in seen:
                line("first staged -> served", f"{seen[first_landed] - landed[first_landed]:.2f} s",
                     "<= 2 s")
            gaps = [seen[x] - landed[x] for x in seen if x in landed]
            line("staged -> served, every name", fmt3(gaps))
        if len(seen) == n:
            line(f"start -> all {n} served", f"{max(seen.values()) - t0:.2f} s",
                 "<= 30 s" if n >= 1000 else "")
        else:
            line(f"start -> all {n} served", f"NOT within {timeout:.0f} s ({len(seen)}/{n})",
                 "<= 30 s" if n >= 1000 else "")
        if landed:
            line("start -> last set staged", f"{max(landed.values()) - t0:.2f} s")
        line("httpd CPU per certificate", f"{1000 * cpu_tree / n:.1f} ms",
             "<= 20 ms", f"({cpu_tree:.2f} CPU-s at {t_done - t0:.1f} s, probes included)")
        per_probe = probe_cost(httpd.https_port, names, httpd.proc.pid)
        line("  the same, the probe handshakes taken out",
             f"{1000 * (cpu_tree - probes * per_probe) / n:.1f} ms", "<= 20 ms",
             f"({probes} probes x {1000 * per_probe:.2f} ms, measured after: 1,000 more "
             f"handshakes)")
        line("parent CPU per certificate", f"{1000 * cpu_parent / n:.1f} ms", "",
             f"({cpu_parent:.2f} CPU-s)")
        if cpu_startup is not None:
            line("  of which start-up (before the first set)", f"{cpu_startup:.2f} CPU-s", "",
                 f"(activation: {1000 * (cpu_parent - cpu_startup) / n:.1f} ms per certificate)")
        worker = sum(cpu_of(int(pid)) for pid in set(re.findall(
            r"ACME00302: mod_acme: renewal worker started \(pid (\d+)\)", log)))
        info(f"reaped by the parent (renewal workers that ended, tickers): {cpu_reaped:.2f} CPU-s;"
             f" live children and workers: {cpu_live:.2f} CPU-s, of which running workers "
             f"{worker:.2f} CPU-s ({1000 * worker / n:.1f} ms per certificate)")
        acts = [len(m.group(2).split()) for m in HOT.finditer(log)]
        if acts:
            line("hot activations (ACME09005)", f"{len(acts)}", "",
                 f"(names per activation {fmt3(acts, '')})")
        restarts = len(re.findall(r"AH00493|AH00489", log))
        info(f"graceful restarts/starts in the log (AH00493/AH00489): {restarts}")
        bench_module.order_stats(httpd.error_log, t0)
    finally:
        if httpd:
            httpd.stop()
        pebble.stop()
        bench_module.cleanup(workdir)


def memory_of(pid):
    """(RSS, PSS) in MiB of one process (PSS None when smaps_rollup is not readable)."""
    rss = pss = None
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                rss = int(ln.split()[1]) / 1024
    except OSError:
        pass
    try:
        for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if ln.startswith("Pss:"):
                pss = int(ln.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def bench_memory(m, modes):
    section(f"parent memory with {m} managed domains (configured, dead CA, no certificates)")
    shared = harness.make_workdir()
    try:
        cafile, cert, key = harness.make_test_ca(shared / "ca", "bench")
        dead_url = f"https://127.0.0.1:{harness.free_port()}/dir"
        for mode in modes:
            workdir = harness.make_workdir()
            httpd = harness.Httpd(workdir, module=bench_module.MODULE)
            try:
                bench_module.many_config(httpd, m, True, cert, key, dead_url, cafile)
                text = httpd.conf_path.read_text().replace(
                    "ACMEAgreement accepted", f"ACMEAgreement accepted\nACMEActivation {mode}")
                httpd.conf_path.write_text(text)
                t, _ = bench_module.first_answer_time(httpd)
                time.sleep(3)           # the children settle
                pid = httpd.proc.pid
                rss, pss = memory_of(pid)
                kids = [memory_of(c) for c in children_of(pid)]
                krss = sum(k[0] or 0 for k in kids)
                kpss = sum(k[1] or 0 for k in kids)
                seg = re.search(r"ACME09003: .*?(\d+) slots of (\d+) bytes", httpd.log_text())
                segment = (f"; segment {int(seg.group(1)) * int(seg.group(2)) / 2**20:.0f} MiB "
                           f"({seg.group(1)} slots of {seg.group(2)} bytes)" if seg else "")
                line(f"{m} domains, {mode}: parent RSS / PSS",
                     f"{rss:.1f} / {pss:.1f} MiB" if pss is not None else f"{rss:.1f} MiB", "",
                     f"(first answer {t:.1f} s{segment})")
                line(f"{m} domains, {mode}: {len(kids)} children RSS / PSS",
                     f"{krss:.1f} / {kpss:.1f} MiB")
            finally:
                httpd.stop()
                bench_module.cleanup(workdir)
    finally:
        bench_module.cleanup(shared)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", type=int, default=1000, help="names to issue (default 1000)")
    ap.add_argument("--domains", type=int, default=10000, help="domains for memory (10000)")
    ap.add_argument("--timeout", type=float, default=300, help="for all names served (s)")
    ap.add_argument("--parallel", type=int, default=0, help="ACMEParallelOrders (default: none)")
    ap.add_argument("--modes", default="restart,hot", help="ACMEActivation values for memory")
    ap.add_argument("--skip-issue", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if not harness.MODULE_SO.exists():
        print(f"{harness.MODULE_SO} is missing: build first, or set ACME_BUILD_DIR",
              file=sys.stderr)
        return 2
    snap = harness.make_workdir()
    bench_module.MODULE = snap / "mod_acme.so"   # a rebuild during the bench must not swap it
    shutil.copy2(harness.MODULE_SO, bench_module.MODULE)
    print(f"hot activation at scale: module {harness.MODULE_SO} (copied), {os.cpu_count()} CPUs, "
          f"load average {bench_module._loadavg()}", flush=True)
    t_start, failed = time.monotonic(), False
    try:
        if not args.skip_issue:
            try:
                bench_issue(args.names, args.timeout, args.parallel)
            except Exception as e:          # report, go on
                failed = True
                print(f"ERROR in the {args.names}-name run: {e}", flush=True)
        if not args.skip_memory:
            try:
                bench_memory(args.domains, [x for x in args.modes.split(",") if x])
            except Exception as e:
                failed = True
                print(f"ERROR in the {args.domains}-domain memory run: {e}", flush=True)
    finally:
        for _, proc in harness._started:          # by PID only
            if proc.poll() is None:
                harness.stop_process(proc)
        shutil.rmtree(snap, ignore_errors=True)
    print(f"\nbench finished in {time.monotonic() - t_start:.0f} s; load average "
          f"{bench_module._loadavg()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
