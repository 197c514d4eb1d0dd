#!/usr/bin/python3
"""mod_acme and Debian's Caddy side by side on one Pebble (issue 19, "Bench").

For N single-name sites from an empty store (N = 10; --sizes 10,50 adds 50), each server in turn:
launch -> every name serves a certificate that verifies against Pebble's root (a TLS handshake
with SNI per name, hostname checked, polled), and the CA requests per certificate by kind from
Pebble's log. Both run on the same machine, in the same run, against the same Pebble: each takes
Pebble's http-01 and tls-alpn-01 ports in turn (pebble-challtestsrv resolves every name to
127.0.0.1), so Pebble's VA really validates against the server under test; no
PEBBLE_VA_ALWAYS_VALID. Names differ per server and size (authorization reuse is off anyway).

Prints the figures side by side; never asserts a timing. Without caddy on the PATH it says how to
install it (apt-get install -y caddy) and measures mod_acme alone. Every process is started with
harness.start_process and stopped by PID (harness.stop_process) in finally blocks.
"""
import argparse
import collections
import os
import shutil
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "test" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))

import harness          # noqa: E402
import acme_site        # noqa: E402
import bench_module     # noqa: E402  (request_breakdown, wait_requests_settle, output helpers)

CADDY = shutil.which("caddy")
PROBE_THREADS = 8
KEEP = os.environ.get("ACME_BENCH_KEEP")
info, line, section = bench_module.info, bench_module.line, bench_module.section


def serves_verified(port, name, ctx, timeout=2.0):
    """A TLS handshake with SNI `name` whose chain verifies against ctx (Pebble's root) and whose
    certificate names `name`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=name):
                return True
    except (OSError, ssl.SSLError):
        return False


def wait_all_verified(port, names, ctx, timeout, alive, idle_sleep=0.2):
    """{name: monotonic time its verified certificate was first seen}; polls with PROBE_THREADS
    threads, a failed probe followed by idle_sleep (as bench_module.wait_all_served)."""
    pending = collections.deque(names)
    seen, lock, stop = {}, threading.Lock(), threading.Event()
    deadline = time.monotonic() + timeout

    def prober():
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if not pending:
                    return
                name = pending.popleft()
            ok = serves_verified(port, name, ctx)
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
                raise RuntimeError("the server exited while waiting for certificates")
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return seen


def measure(pebble, ctx, n, timeout, launch, alive):
    """Launches a server (launch() -> None), waits for every name; the figures as a dict."""
    before = len(pebble.requests())
    t0 = time.monotonic()
    names = launch()
    seen = wait_all_verified(pebble.tls_port, names, ctx, timeout, alive)
    reqs = pebble.requests()[before:]
    settled = bench_module.wait_requests_settle(pebble) - before
    out = {"served": len(seen), "n": n, "requests": len(reqs), "settled": settled,
           "breakdown": bench_module.request_breakdown(reqs, n),
           "time": (max(seen.values()) - t0) if len(seen) == n else None,
           "first": (min(seen.values()) - t0) if seen else None}
    return out


def run_mod_acme(pebble, ctx, workdir, n, timeout, module):
    httpd = harness.Httpd(workdir / "mod_acme", http_port=pebble.http_port,
                          https_port=pebble.tls_port, module=module)
    names = [f"m{n}-{i:03d}.bench.test" for i in range(n)]
    httpd.write_config(acme_site.site_config(httpd, pebble, [[x] for x in names]))
    rc, out = httpd.configtest()
    if rc != 0:
        raise RuntimeError("mod_acme configtest failed:\n" + out[-3000:])
    try:
        def launch():
            httpd.start(timeout=60)
            return names
        return measure(pebble, ctx, n, timeout, launch, httpd.running)
    finally:
        httpd.stop()


def caddyfile(pebble, cdir, names):
    """Caddy's own ACME client against Pebble: Pebble's HTTPS trusted through acme_ca_root, its
    storage and admin kept in the work directory / off, bound to loopback only."""
    lines = ["{", "\tadmin off", f"\thttp_port {pebble.http_port}",
             f"\thttps_port {pebble.tls_port}", "\tdefault_bind 127.0.0.1",
             f"\tacme_ca {pebble.directory_url}", f"\tacme_ca_root {pebble.ca_file}",
             "\temail admin@example.test", f"\tstorage file_system {cdir / 'data'}",
             "\tskip_install_trust", "\tocsp_stapling off", "}"]
    for x in names:
        lines += [f"{x} {{", '\trespond "hello from caddy"', "}"]
    return "\n".join(lines) + "\n"


def run_caddy(pebble, ctx, workdir, n, timeout):
    cdir = workdir / "caddy"
    cdir.mkdir(parents=True, exist_ok=True)
    names = [f"c{n}-{i:03d}.bench.test" for i in range(n)]
    conf = cdir / "Caddyfile"
    conf.write_text(caddyfile(pebble, cdir, names))
    env = dict(os.environ, HOME=str(cdir), XDG_DATA_HOME=str(cdir / "xdg-data"),
               XDG_CONFIG_HOME=str(cdir / "xdg-config"))
    proc = None
    try:
        def launch():
            nonlocal proc
            proc = harness.start_process("caddy", [CADDY, "run", "--config", str(conf),
                                                   "--adapter", "caddyfile"],
                                         cdir / "caddy.log", env=env, cwd=str(cdir))
            return names
        res = measure(pebble, ctx, n, timeout, launch, lambda: proc.poll() is None)
        res["log"] = cdir / "caddy.log"
        return res
    except RuntimeError:
        info("caddy log (last lines): " + (cdir / "caddy.log").read_text(errors="replace")[-1500:])
        raise
    finally:
        if proc:
            harness.stop_process(proc)


def fmt_time(r):
    if r is None:
        return "error"
    if r["time"] is None:
        return f"NOT all served ({r['served']}/{r['n']})"
    return f"{r['time']:.2f} s (first {r['first']:.2f} s)"


def fmt_reqs(r):
    if r is None:
        return "-"
    return f"{r['requests'] / r['n']:.2f} ({r['requests']} req)"


def report(n, mine, caddy):
    section(f"N={n}: launch -> every name serves a certificate verifying against Pebble's root")
    print(f"{'':<36} {'mod_acme':<34} {'caddy ' + ('(' + CADDY + ')' if CADDY else ''):<34}")
    print(f"{'all served':<36} {fmt_time(mine):<34} "
          f"{fmt_time(caddy) if CADDY else 'not installed':<34}")
    print(f"{'CA requests/certificate':<36} {fmt_reqs(mine):<34} "
          f"{fmt_reqs(caddy) if CADDY else '-':<34}")
    for label, r in (("mod_acme", mine), ("caddy", caddy)):
        if r:
            info(f"{label} requests per certificate by kind: {r['breakdown']}")
            if r["settled"] != r["requests"]:
                info(f"{label} after settling: {r['settled'] / n:.2f}/certificate "
                     f"({r['settled']} req)")


def bench_size(n, timeout, module):
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    mine = caddy = None
    try:
        pebble.start()
        root = workdir / "pebble-root.pem"
        root.write_text(pebble.root_pem(0))
        ctx = ssl.create_default_context(cafile=str(root))
        try:
            mine = run_mod_acme(pebble, ctx, workdir, n, timeout, module)
        except Exception as e:          # report, still measure caddy
            print(f"ERROR mod_acme N={n}: {e}", flush=True)
        if CADDY:
            try:
                caddy = run_caddy(pebble, ctx, workdir, n, timeout)
            except Exception as e:
                print(f"ERROR caddy N={n}: {e}", flush=True)
        report(n, mine, caddy)
        return mine is not None and (caddy is not None or not CADDY)
    finally:
        pebble.stop()
        if KEEP:
            info(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10", help="numbers of names (default 10; e.g. 10,50)")
    ap.add_argument("--timeout", type=float, default=120, help="per server and size (s)")
    args = ap.parse_args()
    if not harness.MODULE_SO.exists():
        print(f"{harness.MODULE_SO} is missing: build first, or set ACME_BUILD_DIR",
              file=sys.stderr)
        return 2
    if not CADDY:
        print("caddy is not installed: measuring mod_acme alone. For the comparison install "
              "Debian's caddy (apt-get install -y caddy) and run this again.", flush=True)
    snap = harness.make_workdir()
    module = snap / "mod_acme.so"        # a rebuild during the bench must not swap it
    shutil.copy2(harness.MODULE_SO, module)
    print(f"mod_acme vs caddy: module {harness.MODULE_SO} (copied), {os.cpu_count()} CPUs, load "
          f"average {bench_module._loadavg()}; Pebble with PEBBLE_VA_NOSLEEP=1, authz reuse off, "
          f"nonce rejection off; real validation (http-01 / tls-alpn-01 on Pebble's ports, no "
          f"PEBBLE_VA_ALWAYS_VALID); the servers run one after the other", flush=True)
    ok = True
    t_start = time.monotonic()
    try:
        for n in (int(x) for x in args.sizes.split(",") if x):
            ok = bench_size(n, args.timeout, module) and ok
    finally:
        left = harness.leftover_processes()
        for name, proc in harness._started:          # by PID only
            if proc.poll() is None:
                harness.stop_process(proc)
        if left:
            print(f"WARNING: had to stop leftover processes: {left}", file=sys.stderr)
        shutil.rmtree(snap, ignore_errors=True)
    print(f"\nbench finished in {time.monotonic() - t_start:.0f} s; load average "
          f"{bench_module._loadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
