"""A real etcd cluster on loopback for the cluster tests (issue 16): Debian's etcd-server, N
members on ports from harness.free_port(), each started and stopped by its PID."""
import shutil
import subprocess
import urllib.request
from pathlib import Path

import harness

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"


class EtcdMember:
    def __init__(self, name, workdir, client_port, peer_port):
        self.name = name
        self.data_dir = Path(workdir) / f"etcd-{name}"
        self.client_port = client_port
        self.peer_port = peer_port
        self.proc = None

    @property
    def client_url(self):
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer_port}"

    def healthy(self):
        try:
            with urllib.request.urlopen(self.client_url + "/health", timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False


class EtcdCluster:
    """members=3: quorum is 2. start() waits until every member reports healthy."""

    def __init__(self, workdir, members=3, token="mod-acme-test"):
        self.workdir = Path(workdir)
        self.token = token
        self.members = [EtcdMember(f"m{i}", self.workdir, harness.free_port(),
                                   harness.free_port()) for i in range(members)]

    @property
    def endpoints(self):
        return ",".join(m.client_url for m in self.members)

    def _initial_cluster(self):
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def _argv(self, m, state):
        return [ETCD_BIN, "--name", m.name, "--data-dir", str(m.data_dir),
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", self._initial_cluster(),
                "--initial-cluster-token", self.token, "--initial-cluster-state", state,
                "--heartbeat-interval", "50", "--election-timeout", "500"]

    def start_member(self, m, state="new"):
        log = self.workdir / f"etcd-{m.name}.log"
        m.proc = harness.start_process(f"etcd {m.name}", self._argv(m, state), log)

    def start(self, timeout=30):
        for m in self.members:
            self.start_member(m)
        for m in self.members:
            harness.wait_for(m.healthy, timeout, f"etcd member {m.name} healthy")
        return self

    def stop_member(self, m):
        if m.proc is not None:
            harness.stop_process(m.proc)
            m.proc = None

    def restart_member(self, m, timeout=30):
        """Back into the cluster it left, from its data directory."""
        self.start_member(m, state="existing")
        harness.wait_for(m.healthy, timeout, f"etcd member {m.name} healthy again")

    def stop(self):
        for m in self.members:
            self.stop_member(m)

    def etcdctl(self, *args):
        return subprocess.run(["etcdctl", "--endpoints", self.endpoints, *args],
                              capture_output=True, text=True, timeout=30,
                              env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
