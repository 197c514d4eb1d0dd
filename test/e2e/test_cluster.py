"""Clustering through etcd (issue 16).

Configuration: ACMECluster and its companions are refused by configtest with file, line and the
fix (bad endpoints, a cluster key readable by others or too short); without ACMECluster nothing
changes. The directive-by-directive bad usages are in test_config.py's table.

Nodes: real httpd instances, each with its own ServerRoot and store, sharing a real 3-member
etcd cluster (etcd_cluster.EtcdCluster) and one Pebble. The nodes of the sharing and steering
tests listen on their own addresses (127.0.0.2, .3, .4, later .5) with the same ports, those
Pebble validates on, as behind a load balancer; pebble-challtestsrv's A record for each name
decides which node Pebble's validation reaches, so validations land on nodes that did not place
the order. Tests about locks, take-over and outages use PEBBLE_VA_ALWAYS_VALID=1 (no validation
request at all) and nodes on 127.0.0.1 with ports of their own.
"""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509

import harness
from acme_site import (new_orders, serial_of, served_cert, site_config, status,
                       wait_for_pebble_cert)
from ca_proxy import HANG, PASS, CaProxy
from etcd_cluster import EtcdCluster

KEY_TEXT = "q0mXv7cY4l2f9J0o0b6Zq8n3h1x5r7t9w2e4u6i8o0p=\n"     # openssl rand -base64 32
A2ACME = harness.BUILD_DIR / "src" / "a2acme"


def a2acme_cluster(etcd, *extra):
    """a2acme list --cluster: what etcd says of the cluster (no store needed)."""
    return subprocess.run([str(A2ACME), "list", "--cluster", etcd.endpoints, *extra],
                          capture_output=True, text=True, timeout=60)


def cluster_list(etcd):
    res = a2acme_cluster(etcd, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def norm(serial):
    return (serial or "").lower().lstrip("0")


def write_key(workdir, text=KEY_TEXT, mode=0o600, name="cluster.key"):
    path = os.path.join(str(workdir), name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def cluster_conf(key, endpoints="http://127.0.0.1:2379", extra=""):
    return f"ACMECluster etcd {endpoints}\nACMEClusterKey {key}\nACMEClusterNode n1\n{extra}"


def syntax_error_at(out, conf_path, needle):
    n = next(i for i, t in enumerate(conf_path.read_text().splitlines(), 1) if needle in t)
    return re.search(rf"Syntax error on line {n} of {re.escape(str(conf_path))}:", out)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_readable_by_others_is_refused(httpd_alone, mode):
    key = write_key(httpd_alone.workdir, mode=mode)
    conf_path = httpd_alone.write_config(cluster_conf(key))
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "Syntax OK" not in out, out
    assert syntax_error_at(out, conf_path, "ACMEClusterKey"), out
    assert "can be read by others" in out and f"chmod 600 {key}" in out, out


def test_short_key_is_refused(httpd_alone):
    # 31 bytes and a newline: the newline does not count
    key = write_key(httpd_alone.workdir, text="0123456789012345678901234567890\n")
    conf_path = httpd_alone.write_config(cluster_conf(key))
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "Syntax OK" not in out, out
    assert syntax_error_at(out, conf_path, "ACMEClusterKey"), out
    assert "must hold 32 bytes" in out and "openssl rand -base64 32" in out, out


@pytest.mark.parametrize("endpoints,reason", [
    ("http://127.0.0.1:2379,127.0.0.2:2379", "is no etcd endpoint"),
    ("http://127.0.0.1:99999", "from 1 to 65535"),
    ("https://127.0.0.1:2379/v3", "nothing else"),
])
def test_bad_endpoint_is_refused(httpd_alone, endpoints, reason):
    key = write_key(httpd_alone.workdir)
    conf_path = httpd_alone.write_config(cluster_conf(key, endpoints))
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    assert syntax_error_at(out, conf_path, "ACMECluster etcd"), out
    assert reason in out, out


def test_good_cluster_configuration_passes(httpd_alone):
    key = write_key(httpd_alone.workdir)
    httpd_alone.write_config(cluster_conf(
        key, "http://127.0.0.1:2379,https://[::1]:2379,http://etcd-c:2379 prefix=/prod/web"))
    rc, out = httpd_alone.configtest()
    assert rc == 0 and "Syntax OK" in out, out
    assert "ACME12002" in out     # https without ACMEClusterTLS: a warning, not a refusal


def test_key_without_cluster_is_refused(httpd_alone):
    key = write_key(httpd_alone.workdir)
    httpd_alone.write_config(f"ACMEClusterKey {key}\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0 and "ACME12001" in out, out


# ---------------------------------------------------------------- nodes sharing etcd

NAMES = [["a.cluster.test", "www.a.cluster.test"], ["b.cluster.test"], ["c.cluster.test"],
         ["d.cluster.test"]]


@pytest.fixture
def etcd(workdir):
    cluster = EtcdCluster(workdir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def pebble_valid(workdir):
    server = harness.Pebble(workdir, {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"}})
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def nodes(workdir):
    started = []

    def make(name, pebble, etcd, names=NAMES, ca_url=None, host=None, extra="",
             vhost_extra=""):
        """A node; with host, on that address and on the ports Pebble validates on."""
        node_dir = os.path.join(str(workdir), name)
        os.makedirs(node_dir)
        node = harness.Httpd(node_dir, host=host, http_port=pebble.http_port,
                             https_port=pebble.tls_port) if host else harness.Httpd(node_dir)
        key = os.path.join(str(workdir), "cluster.key")
        if not os.path.exists(key):
            write_key(workdir)
        conf = site_config(node, pebble, names, vhost_extra=vhost_extra, extra=(
            f"ACMECluster etcd {etcd.endpoints}\nACMEClusterKey {key}\n"
            f"ACMEClusterNode {name}\n{extra}"))
        node.write_config(conf.replace(pebble.directory_url, ca_url or pebble.directory_url))
        started.append(node)
        return node.start()

    try:
        yield make
    finally:
        for node in started:
            node.stop()


THIRTY = [["a.cluster.test", "www.a.cluster.test"]] + [[f"m{i:02d}.cluster.test"]
                                                      for i in range(29)]
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def serials(node, domains=NAMES):
    out = {}
    for names in domains:
        text = wait_for_pebble_cert(node, names, timeout=90)
        out[names[0]] = serial_of(text)
    return out


def etcd_values(etcd):
    """Every key and value under the prefix, read back through etcdctl."""
    res = etcd.etcdctl("get", "--prefix", "/mod_acme/", "-w", "json")
    assert res.returncode == 0, res.stderr
    kvs = json.loads(res.stdout).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in kvs}


# DER private keys, also base64-wrapped: PKCS#8 (SEQUENCE, INTEGER 0, SEQUENCE) and SEC 1 EC
# (SEQUENCE, INTEGER 1, OCTET STRING of 32 or 48 bytes); PKCS#1 RSA (SEQUENCE, INTEGER 0, INTEGER)
DER_KEY = re.compile(rb"\x30\x82..\x02\x01\x00(\x30|\x02\x82)|\x30[\x77\x81].{0,1}\x02\x01\x01\x04[\x20\x30]",
                     re.S)


def der_private_key_in(value):
    """A DER private key in value as it is, or in any base64 run of it."""
    blobs = [value.encode("latin-1", "replace")]
    for run in re.findall(r"[A-Za-z0-9+/_-]{64,}={0,2}", value):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                blobs.append(decode(run + "=" * (-len(run) % 4)))
            except ValueError:
                pass
    return any(DER_KEY.search(b) for b in blobs)


def challenge_fetches(node):
    """{Host: count} of the http-01 validation requests this node's access log shows."""
    path = node.root / "logs" / "access_log"
    text = path.read_text(errors="replace") if path.exists() else ""
    hosts = re.findall(r'"GET /\.well-known/acme-challenge/\S+ HTTP/1\.1" 200 \d+ "([^":]+)', text)
    return {h: hosts.count(h) for h in hosts}


def steer(pebble, domains):
    """Each domain's names get the A record of one of the three nodes, in turn: {name: node}."""
    where = {}
    for i, names in enumerate(domains):
        for name in names:
            pebble.challtestsrv.add_a(name, HOSTS[i % 3])
            where[name] = f"n{i % 3 + 1}"
    return where


def holders(etcd, domains):
    """{domain: the node that ordered its certificate}, from the records in etcd."""
    kv = etcd_values(etcd)
    return {names[0]: json.loads(kv[f"/mod_acme/certs/{names[0]}/record"])["node"]
            for names in domains}


def test_three_nodes_share_one_order_per_certificate(workdir, etcd, pebble, nodes):
    """30 domains managed by three nodes on 127.0.0.2-.4 (same ports), Pebble validating for
    real: each name's A record sends its validation to one node, whoever orders."""
    where = steer(pebble, THIRTY)
    front = CaProxy(pebble)         # shut until all three listen: a validation reaching an
    front.opened = threading.Event()     # address no node listens on yet would fail
    try:
        trio = [nodes(f"n{i + 1}", pebble, etcd, names=THIRTY, host=HOSTS[i],
                      ca_url=front.directory_url) for i in range(3)]
        front.opened.set()
        check_three_nodes(etcd, pebble, nodes, trio, where, front.directory_url)
    finally:
        front.stop()


def check_three_nodes(etcd, pebble, nodes, trio, where, ca_url):
    s1 = serials(trio[0], THIRTY)
    for node in trio[1:]:
        assert serials(node, THIRTY) == s1
    assert len(set(s1.values())) == len(THIRTY)
    # each certificate ordered exactly once, cluster-wide
    assert len(new_orders(pebble)) == len(THIRTY), pebble.requests()
    # every validation reached the node its A record names, which answered even where another
    # node held the order; the holder was not asked for those
    held = holders(etcd, THIRTY)
    fetched = {f"n{i + 1}": challenge_fetches(node) for i, node in enumerate(trio)}
    crossed = 0
    for names in THIRTY:
        for name in names:
            assert fetched[where[name]].get(name), (name, where[name], fetched)
            assert all(not fetched[n].get(name) for n in fetched if n != where[name]), fetched
            crossed += where[name] != held[names[0]]
    assert crossed >= len(THIRTY) // 3, (held, where)
    shared_checks(etcd, trio, s1)
    # one etcd member stopped: a fourth node joining now gets everything and orders nothing
    etcd.stop_member(etcd.members[0])
    n4 = nodes("n4", pebble, etcd, names=THIRTY, host=HOSTS[3], ca_url=ca_url)
    assert serials(n4, THIRTY) == s1
    assert len(new_orders(pebble)) == len(THIRTY)
    assert "ACME12013" in n4.log_text()          # staged from etcd
    # every member stopped: the nodes keep serving; the worker says etcd is unusable
    etcd.stop()
    trio[1].graceful()
    harness.wait_for(lambda: "ACME12010" in trio[1].log_text(), 30,
                     "n2's worker to report etcd down")
    harness.wait_for(lambda: status(trio[1])["cluster"]["etcd"].get("healthy") is False, 30,
                     "n2's status to show etcd down")
    for node in trio + [n4]:
        assert node.running()
        for names in THIRTY:
            assert serial_of(served_cert(node, names[0])) == s1[names[0]]


def shared_checks(etcd, trio, s1):
    """What etcd, the status page and a2acme say once every node serves every certificate."""
    kv = etcd_values(etcd)
    keys = {k: v for k, v in kv.items() if k.endswith("/key")}
    assert len(keys) == len(s1) + 1, sorted(kv)      # and the cluster's account key
    assert all(v.startswith("acme-vault-v1:") for v in keys.values()), keys
    assert not any("PRIVATE KEY" in v for v in kv.values())
    assert not any(der_private_key_in(v) for v in kv.values()), sorted(kv)
    assert not any(k.startswith("/mod_acme/locks/") for k in kv), sorted(kv)
    # the status page's cluster section: this node, the live nodes, etcd, per domain etcd's serial
    harness.wait_for(lambda: status(trio[0]).get("cluster", {}).get("domains"), 30,
                     "n1's cluster status")
    cl = status(trio[0])["cluster"]
    assert cl["node"] == "n1" and cl["etcd"]["healthy"] is True, cl
    assert {"n1", "n2", "n3"} <= set(cl["nodes"]), cl
    for domain, serial in s1.items():
        assert norm(cl["domains"][domain]["serial"]) == norm(serial), cl

    # a2acme list --cluster: per domain etcd's serial, no holder, no order, each node's serial
    def listed_everywhere():
        doc = cluster_list(etcd)
        return {"n1", "n2", "n3"} <= set(doc["nodes"]) and all(
            norm(doc["domains"][d]["serial"]) == norm(serial)
            and all(norm(doc["domains"][d]["served"].get(node)) == norm(serial)
                    for node in ("n1", "n2", "n3")) for d, serial in s1.items())
    harness.wait_for(listed_everywhere, 60, "a2acme list --cluster to show every node's serial")
    doc = cluster_list(etcd)
    assert all(d["holder"] is None and d["order"] is None for d in doc["domains"].values()), doc
    res = a2acme_cluster(etcd)
    assert res.returncode == 0 and "HOLDER" in res.stdout and "n1" in res.stdout, res.stderr
    assert "a.cluster.test" in res.stdout


def store_answers(node):
    """The answer files in a node's challenge area (http-01 tokens, tls-alpn-01 answers)."""
    area = node.root / "acme" / "challenges"
    return sorted(str(p.relative_to(area)) for p in area.rglob("*") if p.is_file()) \
        if area.exists() else []


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_validation_is_answered_by_a_node_that_did_not_order(workdir, etcd, pebble, nodes,
                                                             challenge):
    """n1 (127.0.0.2) and n2 (127.0.0.3) on the same ports; every name's A record points at n1,
    which cannot reach the CA: n2 orders, n1's worker writes each answer n2 put in etcd into its
    own challenge area (tls-alpn-01: n1 makes the challenge certificate from the key
    authorization; no key travels) and acknowledges it, and n1's children answer every
    validation from there. n2 asks the CA to validate only after n1 acknowledged each answer;
    afterwards the answers leave etcd and n1's challenge area."""
    for names in NAMES:
        for name in names:
            pebble.challtestsrv.add_a(name, HOSTS[0])
    dead = f"https://127.0.0.1:{harness.free_port()}/dir"
    extra = f"ACMEChallenges {challenge}\n"
    alpn = "  Protocols http/1.1 acme-tls/1"
    n1 = nodes("n1", pebble, etcd, ca_url=dead, host=HOSTS[0], extra=extra, vhost_extra=alpn)
    n2 = nodes("n2", pebble, etcd, host=HOSTS[1], extra=extra, vhost_extra=alpn)
    s2 = serials(n2)
    assert serials(n1) == s2
    assert len(new_orders(pebble)) == len(NAMES), pebble.requests()
    mirrored = re.findall(rf"ACME12036: {challenge}/([^/\s:]+)", n1.log_text())
    assert sorted(set(mirrored)) == sorted(n for names in NAMES for n in names), \
        n1.log_text()[-4000:]
    assert "ACME12036" not in n2.log_text()       # its own answers are not mirrored
    if challenge == "http-01":          # n1's children answered, the holder was never asked
        assert set(challenge_fetches(n1)) == {n for names in NAMES for n in names}
        assert not challenge_fetches(n2), challenge_fetches(n2)
    # n2 asked the CA to validate only once n1 (live) acknowledged every answer in etcd
    acked = re.findall(r"ACME12031: (\S+): every other live node \(1\) acknowledged",
                       n2.log_text())
    assert sorted(acked) == sorted(n[0] for n in NAMES), n2.log_text()[-4000:]
    assert "ACME12032" not in n2.log_text()
    # answers are withdrawn after validation: from etcd, and from n1's challenge area
    assert not any("/challenges/" in k or "/acks/" in k for k in etcd_values(etcd))
    harness.wait_for(lambda: not store_answers(n1), 30, "n1's copies of the answers to go")


def tls_alpn_certificate(node, name):
    """The certificate a handshake offering only acme-tls/1 gets from node."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    with socket.create_connection((node.host, node.https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_a_node_whose_worker_is_late_answers_from_etcd(workdir, etcd, pebble_valid, nodes):
    """A node whose worker has not written an answer (here: stopped with SIGSTOP) still answers
    the CA: its children ask etcd, for http-01 under the name the request came for, and make a
    tls-alpn-01 certificate from the key authorization themselves."""
    n1 = nodes("n1", pebble_valid, etcd, host=HOSTS[0],
               vhost_extra="  Protocols http/1.1 acme-tls/1")
    serials(n1)
    harness.wait_for(lambda: "ACME12028" in n1.log_text(), 60, "n1's worker to watch etcd")
    worker = int(re.findall(r"renewal worker started \(pid (\d+)\)", n1.log_text())[-1])
    token, thumb = "tok_" + "A" * 39, "T" * 43
    os.kill(worker, signal.SIGSTOP)
    try:
        for key, value in ((f"http-01/b.cluster.test/{token}", f"{token}.{thumb}"),
                           ("tls-alpn-01/c.cluster.test", f"other.{thumb}")):
            res = etcd.etcdctl("put", f"/mod_acme/challenges/{key}", value)
            assert res.returncode == 0, res.stderr
        path = f"/.well-known/acme-challenge/{token}"
        code, body, _ = n1.get(path, host="b.cluster.test")
        assert (code, body) == (200, f"{token}.{thumb}")
        assert n1.get(path, host="c.cluster.test")[0] == 404     # another name's answer
        cert = tls_alpn_certificate(n1, "c.cluster.test")
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"))
        digest = hashlib.sha256(f"other.{thumb}".encode()).digest()
        assert ext.critical and ext.value.value == b"\x04\x20" + digest
        log = n1.log_text()
        assert "ACME12022" in log and "ACME12024" in log, log[-3000:]
        assert not store_answers(n1)        # nothing was written: the worker is stopped
    finally:
        os.kill(worker, signal.SIGCONT)


def test_a_dead_holders_lock_is_taken_over_when_its_lease_ends(workdir, etcd, pebble_valid,
                                                               nodes):
    """A holder that died (here: a lock the test put with a 4 s lease, kept alive by nobody):
    the node waits for its certificate instead of ordering, then takes the lock over when the
    lease ends and orders itself - once."""
    res = etcd.etcdctl("lease", "grant", "4")
    assert res.returncode == 0, res.stderr
    lease = re.search(r"lease ([0-9a-f]+) granted", res.stdout).group(1)
    res = etcd.etcdctl("put", "/mod_acme/locks/b.cluster.test", "node ghost", f"--lease={lease}")
    assert res.returncode == 0, res.stderr
    n1 = nodes("n1", pebble_valid, etcd)
    assert len(set(serials(n1).values())) == len(NAMES)
    log = n1.log_text()
    assert re.search(r"ACME12016: b\.cluster\.test: another node orders it \(node ghost\)", log), \
        log[-4000:]
    assert len(new_orders(pebble_valid)) == len(NAMES)
    assert etcd_values(etcd)["/mod_acme/certs/b.cluster.test/record"].count('"node":"n1"') == 1


def test_a_node_whose_domain_has_more_names_orders_its_own(workdir, etcd, pebble_valid, nodes):
    """A rolling change of ACMEDomain: n2 already has a name more in a.cluster.test. n1's
    certificate does not name it, so n2 does not stage it (its parent would refuse it at every
    run) but orders its own; the other domains are shared as usual."""
    n1 = nodes("n1", pebble_valid, etcd)
    s1 = serials(n1)
    wider = [NAMES[0] + ["new.a.cluster.test"]] + NAMES[1:]
    n2 = nodes("n2", pebble_valid, etcd, names=wider)
    text = wait_for_pebble_cert(n2, wider[0], timeout=90)
    assert serial_of(text) != s1["a.cluster.test"]
    for names in NAMES[1:]:
        assert serial_of(wait_for_pebble_cert(n2, names, timeout=90)) == s1[names[0]]
    assert len(new_orders(pebble_valid)) == len(NAMES) + 1
    # one account per CA for the cluster: n2 ordered with the key n1 put into etcd (sealed)
    assert "ACME12026" in n2.log_text()
    urls = [json.loads(next((n.root / "acme" / "jobs").glob("account.*.json")).read_text())["url"]
            for n in (n1, n2)]
    assert urls[0] and urls[0] == urls[1], urls
    keys = {k: v for k, v in etcd_values(etcd).items() if k.startswith("/mod_acme/accounts/")}
    assert len(keys) == 1 and all(v.startswith("acme-vault-v1:") for v in keys.values()), keys


def test_a_node_taking_over_resumes_the_dead_holders_order(workdir, etcd, pebble_valid, nodes):
    """Three nodes; the holder is SIGKILLed (its whole httpd tree) right after newOrder, its next
    request hanging at the CA front: when its lease ends, one of the two others (waiting for the
    lock meanwhile) takes the lock, finds the order in etcd and resumes it with the cluster's
    account - no second newOrder for the name - and both survivors serve the certificate."""
    front = CaProxy(pebble_valid)
    record = front._record_order

    def record_then_hang(body):
        record(body)
        front.mode = HANG           # the holder's next request never gets an answer
    front._record_order = record_then_hang
    names = [["k.cluster.test"]]
    try:
        n1 = nodes("n1", pebble_valid, etcd, names=names, ca_url=front.directory_url)
        harness.wait_for(lambda: "/mod_acme/orders/k.cluster.test" in etcd_values(etcd), 30,
                         "n1's order in etcd")
        listed = cluster_list(etcd)["domains"]["k.cluster.test"]    # a2acme list --cluster
        assert listed["holder"] == "n1" and listed["order"].startswith("https://"), listed
        survivors = [nodes(n, pebble_valid, etcd, names=names, ca_url=front.directory_url)
                     for n in ("n2", "n3")]
        harness.wait_for(lambda: all("ACME12016" in n.log_text() for n in survivors), 30,
                         "n2 and n3 to wait for n1's lock")
        os.killpg(n1.proc.pid, signal.SIGKILL)
        n1.proc.wait(timeout=10)
        front._record_order = record
        front.mode = PASS
        serial = serial_of(wait_for_pebble_cert(survivors[0], names[0], timeout=90))
        assert serial_of(wait_for_pebble_cert(survivors[1], names[0], timeout=90)) == serial
        assert sum("ACME12027" in n.log_text() for n in survivors) == 1, \
            [n.log_text()[-3000:] for n in survivors]
        assert len(new_orders(pebble_valid)) == 1, pebble_valid.requests()
        assert front.orders_per_name() == {"k.cluster.test": 1}, front.orders
    finally:
        front.stop()


def test_a_renewal_on_another_node_is_served_here_without_a_nudge(workdir, etcd, pebble_valid,
                                                                  nodes):
    """Once its work is done, a node's worker stays and watches etcd: a renewal n1 makes (forced
    with requests/<name>.force, the marker a2acme renew writes; n1's watching worker ends for it)
    is staged by n2's watching worker and served by n2 at once, without n2 being asked, without
    a restart and long before n2's next run (5 minutes away at the earliest). One order per
    certificate still: the renewal is n1's, n2 orders nothing."""
    names = [["w.cluster.test"]]
    n1 = nodes("n1", pebble_valid, etcd, names=names)
    first = serial_of(wait_for_pebble_cert(n1, names[0], timeout=90))
    n2 = nodes("n2", pebble_valid, etcd, names=names)
    assert serial_of(wait_for_pebble_cert(n2, names[0], timeout=90)) == first
    harness.wait_for(lambda: "ACME12028" in n1.log_text() and "ACME12028" in n2.log_text(), 60,
                     "both nodes' workers to watch etcd")
    assert len(new_orders(pebble_valid)) == 1
    pid, log_before = n2.proc.pid, n2.log_text()

    marker = n1.root / "acme" / "requests" / "w.cluster.test.force"
    marker.parent.mkdir(exist_ok=True)
    marker.write_text("")
    renewed = serial_of(wait_for_pebble_cert(n1, names[0], timeout=90, not_serial=first))
    assert serial_of(wait_for_pebble_cert(n2, names[0], timeout=60, not_serial=first)) == renewed
    log = n2.log_text()[len(log_before):]
    assert re.search(r"ACME12030: w\.cluster\.test: node n1 published certificate", log), log
    assert "resuming normal operations" not in log and n2.proc.pid == pid and n2.running()
    assert len(new_orders(pebble_valid)) == 2
    # the next run of n2 watches again
    harness.wait_for(lambda: "ACME12028" in n2.log_text()[len(log_before):], 60,
                     "n2's next worker run to watch again")


def restart_etcd(etcd):
    """Every member back from its data directory, then every one healthy (none is alone)."""
    for m in etcd.members:
        etcd.start_member(m, state="existing")
    for m in etcd.members:
        harness.wait_for(m.healthy, 30, f"etcd member {m.name} healthy again")


def test_renewals_while_etcd_is_down(workdir, etcd, nodes):
    """60-second certificates, every etcd member stopped: the node keeps serving and orders
    nothing when the renewal falls due; once etcd is back the renewal happens as a cluster order
    (published in etcd, no CRIT). Stopped again until the certificate reaches its emergency floor,
    the node orders alone (ACME12015, crit) rather than let it lapse."""
    pebble = harness.Pebble(workdir, {"env": {"PEBBLE_VA_ALWAYS_VALID": "1"},
                                      "config": {"certificateValidityPeriod": 60}})
    pebble.start()
    try:
        names = [["e.cluster.test"]]
        n1 = nodes("n1", pebble, etcd, names=names)
        first = serial_of(wait_for_pebble_cert(n1, names[0], timeout=90))
        etcd.stop()
        harness.wait_for(lambda: re.search(r"e\.cluster\.test: certificate order failed .*etcd is "
                                           r"unreachable", n1.log_text()), 90,
                         "the due renewal to be refused while etcd is down")
        assert serial_of(served_cert(n1, "e.cluster.test")) == first
        assert status(n1)["cluster"]["etcd"]["healthy"] is False
        assert len(new_orders(pebble)) == 1
        mark = len(n1.log_text())
        restart_etcd(etcd)
        second = serial_of(wait_for_pebble_cert(n1, names[0], timeout=90, not_serial=first))
        log = n1.log_text()[mark:]
        assert "ACME12015" not in log, log
        assert "ACME12019: e.cluster.test: certificate" in log, log     # published in etcd

        etcd.stop()
        mark = len(n1.log_text())
        third = serial_of(wait_for_pebble_cert(n1, names[0], timeout=90, not_serial=second))
        assert third != first
        assert re.search(r"ACME12015: e\.cluster\.test: etcd is unreachable", n1.log_text()[mark:])
        assert n1.running()
    finally:
        pebble.stop()


def test_a_watching_worker_makes_way_for_a_new_configuration(workdir, etcd, pebble_valid, nodes):
    """The worker watching etcd is of the generation that started it: after a graceful restart
    with a domain more, its watch ends and the next run (of the new configuration) orders the new
    domain."""
    n1 = nodes("n1", pebble_valid, etcd, names=[["g.cluster.test"]])
    wait_for_pebble_cert(n1, ["g.cluster.test"], timeout=90)
    harness.wait_for(lambda: "ACME12028" in n1.log_text(), 60, "n1's worker to watch etcd")
    n1.conf_path.write_text(n1.conf_path.read_text().replace(
        "ACMEDomain g.cluster.test", "ACMEDomain g.cluster.test\nACMEDomain h.cluster.test")
        + f"<VirtualHost 127.0.0.1:{n1.https_port}>\n  ServerName h.cluster.test\n"
        "  SSLEngine on\n</VirtualHost>\n")
    assert "h.cluster.test" in n1.conf_path.read_text()
    n1.graceful()
    wait_for_pebble_cert(n1, ["h.cluster.test"], timeout=150)
    assert len(new_orders(pebble_valid)) == 2
