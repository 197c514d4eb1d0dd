"""Clustering through an etcd that requires TLS client certificates (issue 16), as production
etcd runs: `--client-cert-auth` with a CA of its own. A node with `ACMEClusterTLS` and a client
certificate that CA signed orders and publishes through it; a node whose certificate another CA
signed is refused by etcd: it says so (ACME12010, the status), orders nothing and keeps serving.
Real etcd, real Pebble (PEBBLE_VA_ALWAYS_VALID), real httpd, all on loopback."""
import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import harness
from acme_site import new_orders, site_config, status, wait_for_pebble_cert
from etcd_cluster import ETCD_BIN

KEY_TEXT = "Zm9yIHRoZSB0ZXN0cyBvZiBtb2RfYWNtZSBvbmx5IDEyMzQ1Njc4OTA=\n"
NAMES = [["t1.tls-cluster.test"], ["t2.tls-cluster.test"]]


def client_cert(ca_dir, name, usage="clientAuth", san=""):
    """A certificate for `usage` (a client one by default) signed by the CA in ca_dir."""
    d = Path(ca_dir)
    harness.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                    "-subj", f"/CN={name}")
    (d / f"{name}.cnf").write_text(f"extendedKeyUsage={usage}\n{san}")
    harness.openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                    "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out",
                    str(d / f"{name}.pem"), "-days", "2", "-extfile", str(d / f"{name}.cnf"))
    return d / f"{name}.pem", d / f"{name}.key"


class TlsEtcd:
    """One etcd member serving clients over TLS only, with client certificates required."""

    def __init__(self, workdir):
        self.dir = Path(workdir) / "etcd-tls"
        self.ca, self.cert, self.key = harness.make_test_ca(self.dir, "etcd")
        # etcd's JSON gateway dials its own gRPC port with the server's certificate as a client
        # certificate: under --client-cert-auth that one needs clientAuth too (as in production).
        self.cert, self.key = client_cert(self.dir, "server", usage="serverAuth,clientAuth",
                                          san="subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self.port, self.peer = harness.free_port(), harness.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.admin = client_cert(self.dir, "admin")
        self.proc = None

    def start(self):
        peer = f"http://127.0.0.1:{self.peer}"
        argv = [ETCD_BIN, "--name", "t0", "--data-dir", str(self.dir / "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"t0={peer}", "--initial-cluster-state", "new",
                "--cert-file", str(self.cert), "--key-file", str(self.key),
                "--client-cert-auth", "--trusted-ca-file", str(self.ca)]
        self.proc = harness.start_process("etcd (TLS)", argv, self.dir / "etcd.log")
        harness.wait_for(lambda: self.etcdctl("endpoint", "health").returncode == 0, 30,
                         "etcd (TLS) healthy", interval=0.3)
        return self

    def stop(self):
        if self.proc is not None:
            harness.stop_process(self.proc)
            self.proc = None

    def etcdctl(self, *args):
        return subprocess.run(["etcdctl", "--endpoints", self.url, "--cacert", str(self.ca),
                               "--cert", str(self.admin[0]), "--key", str(self.admin[1]), *args],
                              capture_output=True, text=True, timeout=30,
                              env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})

    def values(self):
        res = self.etcdctl("get", "--prefix", "/mod_acme/", "-w", "json")
        assert res.returncode == 0, res.stderr
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
                for kv in json.loads(res.stdout).get("kvs", [])}


@pytest.fixture
def etcd_tls(workdir):
    server = TlsEtcd(workdir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def pebble_valid(workdir):
    server = harness.Pebble(workdir, {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"}})
    try:
        yield server.start()
    finally:
        server.stop()


def node_config(node, pebble, etcd, key, cert_pair, name):
    return site_config(node, pebble, NAMES, extra=(
        f"ACMECluster etcd {etcd.url}\nACMEClusterKey {key}\nACMEClusterNode {name}\n"
        f"ACMEClusterTLS {cert_pair[0]} {cert_pair[1]} {etcd.ca}\n"))


def test_nodes_reach_a_tls_etcd_with_client_certificates(workdir, etcd_tls, pebble_valid):
    key = Path(workdir) / "cluster.key"
    key.write_text(KEY_TEXT)
    os.chmod(key, 0o600)
    good = client_cert(etcd_tls.dir, "node1")
    other_ca = harness.make_test_ca(Path(workdir) / "other-ca", "other")[0].parent
    stranger = client_cert(other_ca, "node2")
    nodes = []
    try:
        os.makedirs(Path(workdir) / "n1")
        n1 = harness.Httpd(Path(workdir) / "n1")
        nodes.append(n1)
        n1.write_config(node_config(n1, pebble_valid, etcd_tls, key, good, "n1"))
        rc, out = n1.configtest()
        assert rc == 0, out
        n1.start()
        for names in NAMES:
            wait_for_pebble_cert(n1, names, timeout=90)
        # Published through TLS: the certificates are in etcd, the private keys only sealed.
        harness.wait_for(lambda: sum("-----BEGIN CERTIFICATE-----" in v.decode(errors="replace")
                                     for v in etcd_tls.values().values()) >= len(NAMES), 60,
                         "the certificates in etcd")
        for k, v in etcd_tls.values().items():
            assert b"PRIVATE KEY" not in v, k
        harness.wait_for(lambda: status(n1).get("cluster", {}).get("etcd", {}).get("healthy"),
                         60, "n1's status: etcd healthy")
        orders = len(new_orders(pebble_valid))

        # A node whose client certificate etcd does not trust: refused, it orders nothing, and
        # it keeps serving (its own fallback: it never had a certificate).
        os.makedirs(Path(workdir) / "n2")
        n2 = harness.Httpd(Path(workdir) / "n2")
        nodes.append(n2)
        n2.write_config(node_config(n2, pebble_valid, etcd_tls, key, stranger, "n2"))
        n2.start()
        harness.wait_for(lambda: "ACME12010" in n2.log_text(), 60, "n2 to report etcd refused")
        time.sleep(2)
        cl = status(n2).get("cluster", {})
        assert cl.get("etcd", {}).get("healthy") is False, cl
        assert len(new_orders(pebble_valid)) == orders
        assert n2.running()
        code, _, _ = n2.get("/")
        assert code in (200, 403, 404), code
    finally:
        for node in nodes:
            node.stop()
