"""The etcd v3 client of the core (src/acme_etcd.c) against a real 3-member etcd cluster:
keys under a prefix, locks bound to leases with fencing, lease expiry, watches, and what happens
when members (or the quorum) go away. test/etcdtool drives the client, one operation per run."""
import json
import subprocess
import time

import pytest

import harness
from etcd_cluster import EtcdCluster

TOOL = harness.BUILD_DIR / "test" / "etcdtool"


@pytest.fixture
def cluster(workdir):
    c = EtcdCluster(workdir)
    try:
        yield c.start()
    finally:
        c.stop()


def tool(endpoints, *args, prefix="/mod_acme/", ok=True):
    r = subprocess.run([str(TOOL), endpoints, prefix, *[str(a) for a in args]],
                       capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout)
    if ok:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return out


def test_keys_stay_under_their_prefix(cluster):
    e = cluster.endpoints
    tool(e, "put", "certs/a.example/chain", "A")
    tool(e, "put", "certs/b.example/chain", "B\nwith a newline")
    tool(e, "put", "other", "x", prefix="/someone-else/")
    got = tool(e, "list", "certs/")
    assert [kv["key"] for kv in got["kvs"]] == ["certs/a.example/chain", "certs/b.example/chain"]
    assert got["kvs"][1]["value"] == "B\nwith a newline"
    assert tool(e, "list", "")["kvs"][-1]["key"] == "certs/b.example/chain"   # not "other"
    assert tool(e, "get", "missing")["kv"] is None
    assert tool(e, "del", "certs/*")["deleted"] == 2
    assert tool(e, "list", "certs/")["kvs"] == []
    # what etcdctl sees: the prefix is really there, and the other prefix untouched
    r = cluster.etcdctl("get", "--prefix", "/someone-else/", "--keys-only")
    assert "/someone-else/other" in r.stdout


def test_many_reads_in_few_requests(cluster):
    """acme_etcd_read_many: keys and prefixes, present or not, each answered in its place; 70
    keys take two requests (64 a transaction), not 70."""
    e = cluster.endpoints
    for i in range(0, 70, 2):
        tool(e, "put", f"certs/d{i:02d}/record", f"r{i}")
    tool(e, "put", "nodes/a", "1")
    tool(e, "put", "nodes/b", "2")
    keys = [f"certs/d{i:02d}/record" for i in range(70)]
    got = tool(e, "read", "nodes/", *keys)
    assert got["requests"] == 2
    assert [kv["key"] for kv in got["reads"][0]] == ["nodes/a", "nodes/b"]
    for i in range(70):
        read = got["reads"][i + 1]
        assert [kv["value"] for kv in read] == ([f"r{i}"] if i % 2 == 0 else []), i


def test_local_reads_are_answered_by_the_member_alone(cluster):
    """acme_etcd_read_local (serializable): the same answers as read_many, and still answered
    by a member left without quorum, where a linearizable read fails."""
    e = cluster.endpoints
    tool(e, "put", "certs/x/record", "rx")
    tool(e, "put", "locks/x", "node-a")
    keys = ["certs/x/", "locks/x", "locks/y"]
    assert tool(e, "lread", *keys)["reads"] == tool(e, "read", *keys)["reads"]
    last = cluster.members[2]
    harness.wait_for(lambda: tool(last.client_url, "lread", "locks/x")["reads"][0], 10,
                     "the last member to have the lock's key")
    cluster.stop_member(cluster.members[0])
    cluster.stop_member(cluster.members[1])         # no quorum
    failed = tool(last.client_url, "read", *keys, ok=False)
    assert "error" in failed and failed["class"] == "retry-soon", failed
    got = tool(last.client_url, "lread", *keys)["reads"]
    assert [[kv["value"] for kv in r] for r in got] == [["rx"], ["node-a"], []], got


def test_one_holder_at_a_time_and_a_stale_holder_is_fenced(cluster):
    e = cluster.endpoints
    lease_a = tool(e, "grant", 30)["lease"]
    lease_b = tool(e, "grant", 30)["lease"]
    a = tool(e, "lock", "locks/a.example", "node-a", lease_a)
    b = tool(e, "lock", "locks/a.example", "node-b", lease_b)
    assert a["acquired"] and not b["acquired"]
    assert b["holder"]["value"] == "node-a" and b["holder"]["lease"] == lease_a
    token_a = a["holder"]["create_revision"]
    assert not tool(e, "fput", "locks/a.example", token_a, "orders/a.example", "url-a")["fenced"]

    # node-a stalls past its lease (revoked here); node-b takes over; node-a's write is refused
    tool(e, "revoke", lease_a)
    b = tool(e, "lock", "locks/a.example", "node-b", lease_b)
    assert b["acquired"] and b["holder"]["create_revision"] > token_a
    late = tool(e, "fput", "locks/a.example", token_a, "orders/a.example", "late", ok=False)
    assert late["fenced"] and "no longer ours" in late["error"]
    assert tool(e, "get", "orders/a.example")["kv"]["value"] == "url-a"


def test_an_expired_lease_frees_the_lock(cluster):
    e = cluster.endpoints
    lease = tool(e, "grant", 2)["lease"]
    assert tool(e, "lock", "locks/b.example", "node-a", lease)["acquired"]
    assert tool(e, "keepalive", lease)["ttl"] > 0
    harness.wait_for(lambda: tool(e, "get", "locks/b.example")["kv"] is None, 15,
                     "the lock to go with its lease")
    assert tool(e, "keepalive", lease)["ttl"] <= 0
    other = tool(e, "grant", 30)["lease"]
    assert tool(e, "lock", "locks/b.example", "node-b", other)["acquired"]


def test_watch_sees_changes_and_replays_from_a_revision(cluster):
    e = cluster.endpoints
    start = tool(e, "get", "x")["revision"] + 1
    tool(e, "put", "challenges/t1", "ka-1")
    tool(e, "put", "challenges/t2", "ka-2")
    tool(e, "del", "challenges/t1")
    seen = []
    rev = start
    while len(seen) < 3:
        got = tool(e, "watch", "challenges/", rev, 3000)
        assert got["events"], got
        seen += got["events"]
        rev = got["next_revision"]
    assert [(ev["key"], ev["deleted"]) for ev in seen] == [
        ("challenges/t1", False), ("challenges/t2", False), ("challenges/t1", True)]
    assert seen[1]["value"] == "ka-2"
    # nothing new: the watch returns empty when its wait runs out, at the same revision
    idle = tool(e, "watch", "challenges/", rev, 300)
    assert idle["events"] == [] and idle["next_revision"] == rev
    # a change made while a watch waits ends the wait
    proc = subprocess.Popen([str(TOOL), e, "/mod_acme/", "watch", "challenges/", str(rev), "20000"],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        tool(e, "put", "challenges/t3", "ka-3")
        out = json.loads(proc.communicate(timeout=20)[0])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [ev["key"] for ev in out["events"]] == ["challenges/t3"]


def test_one_member_down_is_invisible_and_no_quorum_is_a_temporary_error(cluster):
    e = cluster.endpoints
    tool(e, "put", "k", "v1")
    cluster.stop_member(cluster.members[0])     # the first endpoint every call tries
    got = tool(e, "get", "k")
    assert got["kv"]["value"] == "v1"
    tool(e, "put", "k", "v2")
    lease = tool(e, "grant", 30)["lease"]
    assert tool(e, "lock", "locks/c.example", "node-a", lease)["acquired"]

    cluster.stop_member(cluster.members[1])     # 1 of 3 left: no quorum
    failed = tool(e, "put", "k", "v3", ok=False)
    assert failed["class"] == "retry-soon" and "etcd" in failed["error"]
    assert failed["requests"] <= 3              # each endpoint once, each bounded by a timeout

    cluster.restart_member(cluster.members[0])  # quorum again
    harness.wait_for(lambda: subprocess.run(
        [str(TOOL), e, "/mod_acme/", "put", "k", "v4"], capture_output=True).returncode == 0,
        30, "writes to work again")
    assert tool(e, "get", "k")["kv"]["value"] == "v4"
