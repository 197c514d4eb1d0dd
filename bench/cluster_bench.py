#!/usr/bin/python3
"""Cluster benchmark (issue 16, "Bench"): N single-name domains across 3 httpd nodes sharing a
3-member etcd cluster on loopback, from empty stores.

Prints, per N: time from launching the three nodes until every node serves every name with a
Pebble certificate (TLS handshakes with SNI), CA requests per certificate (Pebble's log), and
etcd requests per certificate (the members' grpc_server_handled_total, which counts the JSON
gateway's requests too). Never asserts a timing. Pebble runs with PEBBLE_VA_ALWAYS_VALID=1 (no
validation requests: challenge sharing is measured by test_cluster.py, not here).

  /usr/bin/python3 bench/cluster_bench.py [N ...]     (default: 50 200; ACME_BUILD_DIR as e2e)
"""
import os
import re
import signal
import socket
import ssl
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "test" / "e2e"))

import harness          # noqa: E402  (reused, not copied)
import acme_site        # noqa: E402
from etcd_cluster import EtcdCluster    # noqa: E402

KEY = "bench-cluster-key-of-at-least-32-bytes-000\n"


def etcd_requests(etcd, by_method=None):
    total = 0
    for m in etcd.members:
        if m.proc is None:
            continue
        with urllib.request.urlopen(m.client_url + "/metrics", timeout=5) as r:
            for ln in r.read().decode().splitlines():
                if ln.startswith("grpc_server_handled_total{"):
                    total += float(ln.rsplit(" ", 1)[1])
                    m = re.search(r'grpc_method="(\w+)"', ln)
                    if by_method is not None and m:
                        by_method[m[1]] = by_method.get(m[1], 0) + float(ln.rsplit(" ", 1)[1])
    return total


def proc_stats():
    """{pid: (ppid, own CPU ticks, reaped children's CPU ticks)} of every process now."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                 int(fields[13]) + int(fields[14]))
    return stats


def cpu_seconds(pid, stats=None):
    """CPU time of pid and every descendant, live or reaped (utime+stime+cutime+cstime)."""
    stats = stats or proc_stats()
    tree, todo = set(), [pid]
    while todo:
        cur = todo.pop()
        tree.add(cur)
        todo += [c for c, (ppid, _, _) in stats.items() if ppid == cur and c not in tree]
    return sum(stats[c][1] + stats[c][2] for c in tree if c in stats) / os.sysconf("SC_CLK_TCK")


def httpd_split(nodes):
    """httpd's CPU seconds by role: the parents' own, the renewal workers' (live, or reaped
    by the parents: children that ended count there too, none do in this run) and the serving
    children's (TLS and requests)."""
    stats, tick = proc_stats(), os.sysconf("SC_CLK_TCK")
    pids = {x.proc.pid for x in nodes}
    workers = {int(p) for x in nodes
               for p in re.findall(r"renewal worker started \(pid (\d+)\)", x.log_text())}
    parent = sum(stats[p][1] for p in pids if p in stats) / tick
    worker = sum(stats[p][2] for p in pids if p in stats) / tick + sum(
        cpu_seconds(c, stats) for c in workers if c in stats and stats[c][0] in pids)
    serving = sum(cpu_seconds(c, stats) for c, (pp, _, _) in stats.items()
                  if pp in pids and c not in workers)
    return parent, worker, serving


def pebble_served(node, name):
    """One real TLS handshake with SNI name, in this process (an openssl s_client and an x509
    per probe cost more CPU than the nodes' own work and delayed the figure by seconds): 1 when
    the leaf is Pebble's and names name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((node.host, node.https_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return False
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return "Pebble" in cert.issuer.rfc4514_string() and name in sans.get_values_for_type(
        x509.DNSName)


ACTIVATED = re.compile(r"ACME00309: mod_acme: (\S+): new certificate activated")


class ActivationLog:
    """The names each node logged as activated, read incrementally (whole logs of megabytes,
    read at every probe round, cost this process a core-second of the run)."""

    def __init__(self, nodes):
        self.paths = [n.root / "logs" / "error_log" for n in nodes]
        self.offsets = [0] * len(nodes)
        self.names = [set() for _ in nodes]

    def update(self):
        for i, path in enumerate(self.paths):
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets[i])
                    chunk = f.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1       # whole lines only
            self.offsets[i] += end
            self.names[i].update(ACTIVATED.findall(chunk[:end].decode(errors="replace")))
        return self.names


def all_served(nodes, names, done, everything, log):
    """Probes (8 handshakes at a time) the (node, name) pairs not yet seen served: those whose
    node logged the activation, or every one when everything is true (a probe of a name not
    served yet costs the node a handshake: probing all of them all the time slowed the run)."""
    logged = log.update()
    todo = [(i, name) for i in range(len(nodes)) for name in names
            if (i, name) not in done and (everything or name in logged[i])]

    def probe(pair):
        return pair if pebble_served(nodes[pair[0]], pair[1]) else None
    with ThreadPoolExecutor(8) as pool:
        done.update(p for p in pool.map(probe, todo) if p)
    return len(done) == len(nodes) * len(names)


def run(n):
    workdir = harness.make_workdir()
    etcd = EtcdCluster(workdir)
    pebble = harness.Pebble(workdir, {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"}})
    nodes = []
    try:
        etcd.start()
        pebble.start()
        key = os.path.join(str(workdir), "cluster.key")
        with open(key, "w") as f:
            f.write(KEY)
        os.chmod(key, 0o600)
        names = [f"b{i:04d}.bench.test" for i in range(n)]
        for i in range(3):
            d = os.path.join(str(workdir), f"n{i}")
            os.makedirs(d)
            node = harness.Httpd(d)
            node.write_config(acme_site.site_config(node, pebble, [[x] for x in names], extra=(
                f"ACMECluster etcd {etcd.endpoints}\nACMEClusterKey {key}\n"
                f"ACMEClusterNode n{i}\nACMEParallelOrders 8\n")))
            nodes.append(node)
        before = etcd_requests(etcd)
        t0 = time.monotonic()
        for node in nodes:
            node.start()
        done, rounds, log = set(), 0, ActivationLog(nodes)
        while not all_served(nodes, names, done, rounds % 30 == 29, log):
            rounds += 1
            if os.environ.get("ACME_BENCH_TRACE"):      # served per node over time
                print(f"  {time.monotonic() - t0:5.1f} s: " + " ".join(
                    str(sum(1 for d in done if d[0] == i)) for i in range(len(nodes))))
            if time.monotonic() - t0 > 600:
                raise RuntimeError("not every name served on every node within 600 s")
            time.sleep(0.1)
        took = time.monotonic() - t0
        ca = len(pebble.requests())
        orders = len(acme_site.new_orders(pebble))
        methods = {}
        et = etcd_requests(etcd, methods) - before
        target = "<= 5 s" if n <= 50 else "<= 12 s" if n <= 200 else ""
        print(f"N={n:<4} all served on 3 nodes: {took:6.1f} s (target {target})  "
              f"newOrders: {orders}  CA requests/cert: {ca / n:.1f} (target <= 8)  "
              f"etcd requests/cert: {et / n:.1f}", flush=True)
        cpu = {"httpd": sum(cpu_seconds(x.proc.pid) for x in nodes),
               "etcd": sum(cpu_seconds(m.proc.pid) for m in etcd.members if m.proc),
               "pebble": cpu_seconds(pebble.proc.pid)}
        split = httpd_split(nodes)
        print("  CPU seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) +
              f" (httpd {1000 * cpu['httpd'] / n:.0f} ms/cert: parents {split[0]:.1f}, "
              f"workers {split[1]:.1f}, serving children {split[2]:.1f})", flush=True)
        print("  etcd requests/cert by method: " + ", ".join(
            f"{k} {v / n:.1f}" for k, v in sorted(methods.items(), key=lambda kv: -kv[1])
            if v / n >= 0.05), flush=True)
    finally:
        for node in nodes:
            node.stop()
        pebble.stop()
        etcd.stop()
        if not os.environ.get("ACME_BENCH_KEEP"):
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    # a SIGTERM still stops every process started (the finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    for n in [int(a) for a in sys.argv[1:]] or [50, 200]:
        run(n)


if __name__ == "__main__":
    main()
