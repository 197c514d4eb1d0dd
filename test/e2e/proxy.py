"""A real forward proxy for the ACMEProxy tests: Debian's tinyproxy on loopback, with its own
config file in the test's directory, run in the foreground (-d) and stopped by PID.

Its outgoing connections leave from OUTGOING (127.0.0.2, tinyproxy's `Bind`), so a CA front that
accepts only that peer (ca_proxy.CaProxy.accept_only_from) refuses whatever did not come through
the proxy."""
import re
from pathlib import Path

import harness

TINYPROXY_BIN = "/usr/bin/tinyproxy"
OUTGOING = "127.0.0.2"


class Tinyproxy:
    def __init__(self, workdir, connect_ports, user=None, password=None):
        self.dir = Path(workdir) / "tinyproxy"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = harness.free_port()
        self.connect_ports = list(connect_ports)   # the ports CONNECT may reach (others: 403)
        self.user, self.password = user, password  # BasicAuth: without both, no auth
        self.log_path = self.dir / "tinyproxy.log"
        self.conf_path = self.dir / "tinyproxy.conf"
        self.proc = None

    def url(self, user=None, password=None):
        """The proxy's URL, with user:password@ when given."""
        cred = f"{user}:{password}@" if user is not None else ""
        return f"http://{cred}127.0.0.1:{self.port}"

    def _config(self):
        lines = [f"Port {self.port}", "Listen 127.0.0.1", f"Bind {OUTGOING}", "Timeout 60",
                 "Allow 127.0.0.1", "MaxClients 50", "LogLevel Connect",
                 f'LogFile "{self.log_path}"', f'PidFile "{self.dir}/tinyproxy.pid"']
        lines += [f"ConnectPort {p}" for p in self.connect_ports]
        if self.user and self.password:
            lines.append(f"BasicAuth {self.user} {self.password}")
        return "\n".join(lines) + "\n"

    def start(self):
        self.conf_path.write_text(self._config())
        self.proc = harness.start_process("tinyproxy", [TINYPROXY_BIN, "-d", "-c",
                                                        str(self.conf_path)],
                                          self.dir / "stdout.log")
        harness.wait_for(lambda: harness.port_open(self.port) or self.proc.poll() is not None,
                         10, "tinyproxy to listen")
        if self.proc.poll() is not None:
            raise RuntimeError("tinyproxy exited: " + (self.dir / "stdout.log").read_text())
        return self

    def stop(self):
        if self.proc:
            harness.stop_process(self.proc)

    _connect = re.compile(r"Request \(file descriptor \d+\): CONNECT (\S+)")

    def connects(self):
        """host:port of every CONNECT request the proxy received, oldest first."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return self._connect.findall(text)
