"""The cluster demo (issue 16): a 3-member etcd cluster, Pebble and pebble-challtestsrv, and three
private apache2 nodes with mod_acme on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (the same ports on
each, as behind a load balancer), sharing their certificates through etcd. Each name's A record
in pebble-challtestsrv points at another node, so the CA's validations land on nodes that did
not necessarily order. Shows each certificate as each node serves it (openssl s_client), how
many orders the CA saw, then stops everything by PID (also on failure or SIGTERM).

ACME_DEMO_PIDFILE: every process started is also written there (one PID a line), so that the
shell wrapper's trap can stop what is left if this script itself was killed."""
import os
import re
import signal
import sys
import time

import harness
from acme_site import is_pebble_cert, new_orders, serial_of, site_config
from etcd_cluster import EtcdCluster

DOMAINS = [["www.cluster-demo.test", "cluster-demo.test"], ["shop.cluster-demo.test"],
           ["blog.cluster-demo.test"]]
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
KEY_BYTES = 32
TIMEOUT = 120

_start_process = harness.start_process


def _start_and_note(name, argv, log_path, env=None, cwd=None):
    proc = _start_process(name, argv, log_path, env=env, cwd=cwd)
    pidfile = os.environ.get("ACME_DEMO_PIDFILE")
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{proc.pid}\n")
    return proc


harness.start_process = _start_and_note


def _on_term(signum, frame):
    raise SystemExit(128 + signum)


def served(node, name):
    text, _ = harness.tls_peer_cert(node.https_port, name, host=node.host)
    return text


def grab(pattern, text):
    m = re.search(pattern, text or "")
    return m.group(1).strip() if m else "?"


def wait_served(nodes, deadline):
    """{(host, name): certificate text} once every node serves every name, or None."""
    seen = {}
    while time.monotonic() < deadline:
        for node in nodes:
            if not node.running():
                raise RuntimeError(f"apache2 on {node.host} exited:\n{node.log_text()[-3000:]}")
            for names in DOMAINS:
                if (node.host, names[0]) not in seen:
                    text = served(node, names[0])
                    if is_pebble_cert(text, names):
                        seen[(node.host, names[0])] = text
        if len(seen) == len(nodes) * len(DOMAINS):
            return seen
        time.sleep(0.5)
    return None


def show(nodes, seen, pebble, start):
    print(f"\nevery node serves every name, {time.monotonic() - start:.1f} s after the start:")
    for names in DOMAINS:
        print(f"\n{' '.join(names)}")
        for node in nodes:
            text = seen[(node.host, names[0])]
            print(f"  {node.host}:{node.https_port}  serial {serial_of(text)}  "
                  f"issuer {grab(r'Issuer: (.*)', text)}  "
                  f"not after {grab(r'Not After : (.*)', text)}")
        if len({serial_of(seen[(n.host, names[0])]) for n in nodes}) != 1:
            print("  the nodes serve different certificates", file=sys.stderr)
            return 1
    print(f"\norders the CA received: {len(new_orders(pebble))} for {len(DOMAINS)} certificates")
    for node in nodes:
        lines = [ln.split("] ", 3)[-1] for ln in node.log_text().splitlines()
                 if re.search(r"ACME120(13|19|22|24|30)", ln)]
        print(f"\n{node.host} ({node.root}):")
        for line in lines[:8]:
            print("  " + line[:150])
    return 0


def main():
    signal.signal(signal.SIGTERM, _on_term)
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    etcd = EtcdCluster(workdir)
    key = workdir / "cluster.key"
    key.write_text(os.urandom(KEY_BYTES).hex() + "\n")
    key.chmod(0o600)
    nodes = []
    try:
        print(f"starting a 3-member etcd cluster, Pebble and pebble-challtestsrv in {workdir}")
        etcd.start()
        pebble.start()
        print(f"  etcd: {etcd.endpoints}\n  ACME directory: {pebble.directory_url}")
        for i, names in enumerate(DOMAINS):        # validations land on different nodes
            for name in names:
                pebble.challtestsrv.add_a(name, HOSTS[(i + 1) % len(HOSTS)])
        start = time.monotonic()
        for i, host in enumerate(HOSTS):
            node = harness.Httpd(workdir / f"node{i + 1}", http_port=pebble.http_port,
                                 https_port=pebble.tls_port, host=host)
            node.write_config(site_config(node, pebble, DOMAINS, extra=(
                f"ACMECluster etcd {etcd.endpoints}\nACMEClusterKey {key}\n"
                f"ACMEClusterNode node{i + 1}\n")))
            nodes.append(node.start())
            print(f"  node{i + 1}: apache2 on {host}, HTTP {node.http_port}, "
                  f"HTTPS {node.https_port}")
        seen = wait_served(nodes, time.monotonic() + TIMEOUT)
        if seen is None:
            print(f"not every node served every name within {TIMEOUT} s", file=sys.stderr)
            for node in nodes:
                print(f"--- {node.host} ---\n{node.log_text()[-2000:]}", file=sys.stderr)
            return 1
        return show(nodes, seen, pebble, start)
    finally:
        print("\nstopping the nodes, Pebble, pebble-challtestsrv and etcd")
        for node in nodes:
            node.stop()
        pebble.stop()
        etcd.stop()
        left = harness.leftover_processes()
        if left:
            print(f"processes left behind: {left}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
