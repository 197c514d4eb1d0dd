"""Real processes for the end-to-end tests: pebble-challtestsrv, pebble and a private apache2.

Everything listens on 127.0.0.1 on ports picked at run time. Every process is started in its own
session, remembered, and stopped by its PID (SIGTERM, then SIGKILL to its process group).
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("ACME_BUILD_DIR", REPO))
# ACME_MODULE_SO loads another build of the module (test_package.py: the installed package's).
MODULE_SO = Path(os.environ.get("ACME_MODULE_SO") or BUILD_DIR / "modules" / "mod_acme.so")
HTTPD_BIN = os.environ.get("ACME_HTTPD", "/usr/sbin/apache2")
HTTPD_MODULES = Path(os.environ.get("ACME_HTTPD_MODULES", "/usr/lib/apache2/modules"))
PEBBLE_BIN = os.environ.get("ACME_PEBBLE", "pebble")
CHALLTESTSRV_BIN = os.environ.get("ACME_CHALLTESTSRV", "pebble-challtestsrv")

# Named Pebble variants; a test picks one with
#   @pytest.mark.parametrize("pebble", ["eab"], indirect=True)
# or passes a dict of the same shape.
PEBBLE_VARIANTS = {
    "default": {},
    "nonce-reject": {"env": {"PEBBLE_WFE_NONCEREJECT": "50"}},
    "authz-reuse": {"env": {"PEBBLE_AUTHZREUSE": "100"}},
    "eab": {"config": {
        "externalAccountBindingRequired": True,
        "externalAccountMACKeys": {
            "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
            "kid-2": "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH",
        },
    }},
    "short-validity": {"config": {"certificateValidityPeriod": 60}},
    "alternate-roots": {"env": {"PEBBLE_ALTERNATE_ROOTS": "2"}},
}

# ACME_SANITIZE=1 (with ACME_BUILD_DIR at a --enable-sanitizers build such as build/san): the
# module is built with clang's ASan + UBSan but apache2 is not, so apache2 gets clang's shared ASan
# runtime (which carries UBSan's too) preloaded; sanitizer_setup() sends every report into files.
SANITIZE = os.environ.get("ACME_SANITIZE") == "1"
_sanitizer_runtime = None


def sanitizer_setup(report_dir):
    """Makes every sanitized process this run starts (apache2, its children, the module's worker,
    a2acme, the test driver) write its reports to <report_dir>/asan.<pid> instead of stderr:
    set in os.environ, so every subprocess inherits it. detect_leaks=0: httpd and its children
    exit with pools and OpenSSL/libcurl state alive by design, so leak reports there would be
    noise; the unit tests run with leak detection. No halt_on_error: the build uses
    -fno-sanitize-recover, so the first report ends that one process after it is written (an
    httpd child, the worker), the others carry on. allow_addr2line: symbolized stacks without
    llvm-symbolizer (binutils' addr2line)."""
    global _sanitizer_runtime
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    report_dir.chmod(0o1777)        # httpd children and the worker may run as the User
    common = f"log_path={report_dir}/asan:allow_addr2line=1:print_stacktrace=1"
    os.environ["ASAN_OPTIONS"] = f"{common}:detect_leaks=0"
    os.environ["UBSAN_OPTIONS"] = common
    res = subprocess.run([os.environ.get("ACME_CLANG", "clang"),
                          "-print-file-name=libclang_rt.asan-x86_64.so"],
                         capture_output=True, text=True, check=True)
    runtime = Path(res.stdout.strip())
    if not runtime.is_absolute() or not runtime.exists():
        raise RuntimeError(f"clang's ASan runtime was not found ({runtime}): "
                           "install the Debian package libclang-rt-dev")
    _sanitizer_runtime = str(runtime)
    return report_dir


def httpd_env():
    """The environment to run apache2 in: None (inherit) unless sanitizing, then with the ASan
    runtime preloaded (apache2 cannot load the sanitized module without it)."""
    if not _sanitizer_runtime:
        return None
    return {**os.environ, "LD_PRELOAD": _sanitizer_runtime}


_started = []          # every process this run started: (name, Popen)
_ports_given = set()


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now, never handed out twice in one run.
    Under pytest-xdist each worker (gw0, gw1, ...) takes its ports from its own block below the
    kernel's ephemeral range, so two workers never pick the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return _free_port_in_block(int(worker[2:]))
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port found")


_PORT_BLOCK_START, _PORT_BLOCK_SIZE = 10000, 5000


def _free_port_in_block(index):
    first = _PORT_BLOCK_START + index * _PORT_BLOCK_SIZE
    for port in range(first, first + _PORT_BLOCK_SIZE):
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError(f"no free port left in block {index}")


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def make_workdir():
    # 0755 so that httpd children running as the unprivileged User can traverse it.
    path = Path(tempfile.mkdtemp(prefix="mod_acme-e2e-"))
    path.chmod(0o755)
    return path


def start_process(name, argv, log_path, env=None, cwd=None):
    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd, start_new_session=True)
    log.close()
    _started.append((name, proc))
    return proc


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Stops proc by PID; escalates to SIGKILL of its whole process group."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # Children (httpd's) share the process group the new session created.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)


def leftover_processes(grace=3.0):
    """Processes this run started that still run, or whose process group still has members.
    Killed processes may linger as zombies for a moment until they are reaped: allow `grace`."""
    deadline = time.monotonic() + grace
    alive = _leftover_now()
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = _leftover_now()
    return alive


def _leftover_now():
    alive = []
    for name, proc in _started:
        if proc.poll() is None:
            alive.append(f"{name} (pid {proc.pid})")
            continue
        try:
            os.killpg(proc.pid, 0)
            alive.append(f"{name} group {proc.pid}")
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], check=True, cwd=cwd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_test_ca(directory, name):
    """A throw-away CA plus a server certificate for 127.0.0.1/localhost signed by it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
            "-subj", f"/CN={name} test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", f"/CN={name}")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.pem"),
            "-days", "2", "-extfile", str(d / "ext.cnf"))
    return d / "ca.pem", d / "server.pem", d / "server.key"


def make_self_signed(directory, cn, sans):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{cn}.pem", d / f"{cn}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "subjectAltName=" + ",".join(sans))
    return cert, key


class ChallTestSrv:
    """pebble-challtestsrv as the DNS server every name resolves through (all names → 127.0.0.1).

    With answers=True its own http-01 and tls-alpn-01 responders listen on the given ports (for
    protocol tests without httpd); otherwise they are off and httpd owns those ports.
    """

    def __init__(self, workdir, http_port, tls_port, answers=False):
        self.workdir = Path(workdir)
        self.mgmt_port = free_port()
        self.dns_port = free_port()
        self.http_port, self.tls_port, self.answers = http_port, tls_port, answers
        self.log_path = self.workdir / "challtestsrv.log"
        self.url = f"http://127.0.0.1:{self.mgmt_port}"
        self.proc = None

    def start(self):
        argv = [CHALLTESTSRV_BIN,
                "-management", f"127.0.0.1:{self.mgmt_port}",
                "-dns01", f"127.0.0.1:{self.dns_port}",
                "-https01", "",
                "-http01", f"127.0.0.1:{self.http_port}" if self.answers else "",
                "-tlsalpn01", f"127.0.0.1:{self.tls_port}" if self.answers else "",
                "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]
        self.proc = start_process("pebble-challtestsrv", argv, self.log_path)
        wait_for(lambda: port_open(self.mgmt_port) or self.proc.poll() is not None, 10,
                 "pebble-challtestsrv management port")
        if self.proc.poll() is not None:
            raise RuntimeError(f"pebble-challtestsrv exited: {self.log_path.read_text()}")
        return self

    def post(self, path, body):
        req = urllib.request.Request(f"{self.url}/{path}", data=json.dumps(body).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.read()

    def add_a(self, name, address):
        """Pebble's validation of `name` goes to `address` from now on (its A record)."""
        self.post("add-a", {"host": name, "addresses": [address]})

    def stop(self):
        if self.proc:
            stop_process(self.proc)


class Pebble:
    def __init__(self, workdir, variant=None):
        variant = PEBBLE_VARIANTS[variant] if isinstance(variant, str) else (variant or {})
        self.workdir = Path(workdir)
        self.port = free_port()
        self.mgmt_port = free_port()
        self.http_port = free_port()
        self.tls_port = free_port()
        self.env_extra = dict(variant.get("env", {}))
        self.config_extra = dict(variant.get("config", {}))
        self.challtestsrv = ChallTestSrv(workdir, self.http_port, self.tls_port,
                                         answers=variant.get("challtestsrv_answers", False))
        self.log_path = self.workdir / "pebble.log"
        self.directory_url = f"https://127.0.0.1:{self.port}/dir"
        self.mgmt_url = f"https://127.0.0.1:{self.mgmt_port}"
        self.challtestsrv_url = self.challtestsrv.url
        self.proc = None
        self.ca_file = None

    @property
    def eab_keys(self):
        return self.config_extra.get("externalAccountMACKeys", {})

    def start(self):
        self.challtestsrv.start()
        pdir = self.workdir / "pebble"
        self.ca_file, cert, key = make_test_ca(pdir, "pebble")
        config = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        config.update(self.config_extra)
        (pdir / "pebble.json").write_text(json.dumps({"pebble": config}, indent=1))
        env = dict(os.environ)
        env.update({"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0",
                    "PEBBLE_AUTHZREUSE": "0"})
        env.update(self.env_extra)
        self._env = env
        self._launch()
        return self

    def _launch(self):
        pdir = self.workdir / "pebble"
        argv = [PEBBLE_BIN, "-config", str(pdir / "pebble.json"),
                "-dnsserver", f"127.0.0.1:{self.challtestsrv.dns_port}"]
        self.proc = start_process("pebble", argv, self.log_path, env=self._env, cwd=str(pdir))
        wait_for(lambda: (port_open(self.port) and port_open(self.mgmt_port))
                 or self.proc.poll() is not None, 20, "pebble to listen")
        if self.proc.poll() is not None:
            raise RuntimeError(f"pebble exited: {self.log_path.read_text()}")

    def restart_fresh(self):
        """Stops Pebble (by PID) and starts a new one on the same ports, URL and HTTPS
        certificate: a CA that was reset. It knows no account, order or certificate of the old
        one and issues under new roots. Its log (requests()) starts empty, in a new file."""
        stop_process(self.proc)
        self.restarts = getattr(self, "restarts", 0) + 1
        self.log_path = self.workdir / f"pebble.{self.restarts}.log"
        self._launch()
        return self

    def stop(self):
        if self.proc:
            stop_process(self.proc)
        self.challtestsrv.stop()

    def _ssl_context(self):
        return ssl.create_default_context(cafile=str(self.ca_file))

    def mgmt_get(self, path):
        with urllib.request.urlopen(f"{self.mgmt_url}{path}", context=self._ssl_context(),
                                    timeout=10) as resp:
            return resp.read().decode()

    def root_pem(self, index=0):
        """The root Pebble issues under (index > 0: an alternate hierarchy)."""
        return self.mgmt_get(f"/roots/{index}")

    def cert_status(self, serial_hex):
        return json.loads(self.mgmt_get(f"/cert-status-by-serial/{serial_hex.lower()}"))

    _request_line = re.compile(r"Pebble \S+ \S+ (GET|HEAD|POST) (\S+) -> calling handler")

    def requests(self):
        """(method, path) of every ACME request Pebble logged so far, oldest first."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [m.groups() for m in self._request_line.finditer(text)]


BASE_MODULES = ["authz_core", "authz_host", "socache_shmcb", "ssl"]
MPMS = ["event", "worker", "prefork"]


class Httpd:
    """A private apache2 with its own ServerRoot, mod_ssl and the freshly built mod_acme."""

    def __init__(self, workdir, http_port=None, https_port=None, module=MODULE_SO, mpm="event",
                 host="127.0.0.1"):
        self.workdir = Path(workdir)
        self.root = self.workdir / "httpd"
        self.host = host       # the loopback address it listens on (cluster nodes: .2, .3, ...)
        self.http_port = http_port or free_port()
        self.https_port = https_port or free_port()
        self.module = Path(module)
        self.mpm = mpm
        self.conf_path = self.root / "conf" / "httpd.conf"
        self.error_log = self.root / "logs" / "error_log"
        self.proc = None
        self.env = {}          # extra environment for the started apache2 (e.g. LD_PRELOAD)
        for sub in ("conf", "logs", "htdocs", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "htdocs" / "index.html").write_text("hello from the test httpd\n")
        for path in [self.root] + [self.root / s for s in ("conf", "logs", "htdocs", "run")]:
            path.chmod(0o755)

    def base_config(self):
        lines = [f'ServerRoot "{self.root}"', f"ServerName {self.host}",
                 f"Listen {self.host}:{self.http_port}", f"Listen {self.host}:{self.https_port}"]
        lines.append(f"LoadModule mpm_{self.mpm}_module {HTTPD_MODULES}/mod_mpm_{self.mpm}.so")
        lines += [f"LoadModule {m}_module {HTTPD_MODULES}/mod_{m}.so" for m in BASE_MODULES]
        lines.append(f"LoadModule acme_module {self.module}")
        if os.geteuid() == 0:
            lines += ["User www-data", "Group www-data"]
        lines += [
            f'PidFile "{self.root}/run/httpd.pid"',
            f'DefaultRuntimeDir "{self.root}/run"',
            f'Mutex file:{self.root}/run default',
            f'ErrorLog "{self.error_log}"',
            "LogLevel warn acme:debug",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Host}i\\"" common',
            f'CustomLog "{self.root}/logs/access_log" common',
            f'DocumentRoot "{self.root}/htdocs"',
            f'SSLSessionCache "shmcb:{self.root}/run/ssl_scache(512000)"',
            *self._mpm_tuning(),
            "GracefulShutdownTimeout 5",
        ]
        return "\n".join(lines) + "\n"

    def _mpm_tuning(self):
        if self.mpm == "prefork":
            return ["StartServers 2", "MinSpareServers 1", "MaxSpareServers 4",
                    "ServerLimit 16", "MaxRequestWorkers 16"]
        return ["StartServers 1", "ServerLimit 4", "ThreadsPerChild 8", "MaxRequestWorkers 32",
                "MinSpareThreads 8", "MaxSpareThreads 24"]

    def write_config(self, extra=""):
        self.conf_path.write_text(self.base_config() + extra)
        return self.conf_path

    def line_of(self, needle):
        """1-based line number of the first config line containing needle."""
        for i, line in enumerate(self.conf_path.read_text().splitlines(), 1):
            if needle in line:
                return i
        raise ValueError(f"{needle!r} not in {self.conf_path}")

    def _argv(self, *extra):
        return [HTTPD_BIN, "-d", str(self.root), "-f", str(self.conf_path), *extra]

    def configtest(self):
        res = subprocess.run(self._argv("-t"), capture_output=True, text=True, timeout=60,
                             env=httpd_env())
        return res.returncode, res.stdout + res.stderr

    def start(self, timeout=20):
        self.proc = start_process("apache2", self._argv("-DFOREGROUND"),
                                  self.root / "logs" / "stdout_log",
                                  env=dict(httpd_env() or os.environ, **self.env)
                                  if self.env else httpd_env())
        wait_for(lambda: port_open(self.http_port, self.host) or self.proc.poll() is not None,
                 timeout, f"apache2 to listen on {self.host}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"apache2 exited with {self.proc.returncode}:\n{self.log_text()}")
        return self

    def graceful(self):
        os.kill(self.proc.pid, signal.SIGUSR1)

    def stop(self):
        if self.proc:
            stop_process(self.proc, timeout=15)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def processes(self):
        """What each process of this httpd's tree is doing, for a failure message: ps with the
        kernel wait channel, and the stacks of the parent and of the latest renewal worker when gdb
        is there. Diagnostics only: never asserted on."""
        if not self.running():
            return "(not running)"
        ps = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,stat=,etimes=,wchan:32=,args="],
                            capture_output=True, text=True).stdout.splitlines()
        rows = [line.split(None, 5) for line in ps if len(line.split(None, 5)) >= 5]
        tree, kids = {self.proc.pid}, True
        while kids:
            kids = {int(r[0]) for r in rows if int(r[1]) in tree} - tree
            tree |= kids
        lines = [" ".join(r) for r in rows if int(r[0]) in tree]
        if shutil.which("gdb"):
            started = re.findall(r"renewal worker started \(pid (\d+)\)", self.log_text())
            worker = [int(started[-1])] if started and int(started[-1]) in tree else []
            for pid in [self.proc.pid] + worker:
                try:
                    bt = subprocess.run(["gdb", "-batch", "-nx", "-p", str(pid), "-ex",
                                         "thread apply all bt 25"], capture_output=True,
                                        text=True, timeout=30).stdout
                except subprocess.TimeoutExpired:
                    bt = "(gdb timed out)"
                lines.append(f"--- stacks of {pid} ---\n" + "\n".join(
                    line for line in bt.splitlines() if line.startswith(("#", "Thread"))))
        return "\n".join(lines)

    def log_text(self):
        parts = []
        for name in ("error_log", "stdout_log"):
            p = self.root / "logs" / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def get(self, path, port=None, host=None, timeout=10):
        """Plain HTTP GET; returns (status, body, headers)."""
        conn_port = port or self.http_port
        req = urllib.request.Request(f"http://{self.host}:{conn_port}{path}")
        if host:
            req.add_header("Host", host)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode(errors="replace"), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace"), dict(e.headers)


def tls_peer_cert(port, servername, cafile=None, alpn=None, host="127.0.0.1", extra=()):
    """The certificate a real TLS handshake (openssl s_client) presents, as parsed text."""
    argv = ["openssl", "s_client", "-connect", f"{host}:{port}", "-servername", servername,
            "-showcerts", *extra]
    if alpn:
        argv += ["-alpn", alpn]
    if cafile:
        argv += ["-CAfile", str(cafile), "-verify_return_error"]
    res = subprocess.run(argv, input="", capture_output=True, text=True, timeout=20)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", res.stdout, re.S)
    if not m:
        return None, res.stdout + res.stderr
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=m.group(0),
                          capture_output=True, text=True).stdout
    return text, res.stdout + res.stderr


def keep_logs(workdir, dest):
    """Copies every log of a failed test next to the repo so CI output can point at them."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for p in Path(workdir).rglob("*"):
        if p.is_file() and (p.suffix == ".log" or p.name.endswith("_log") or p.name.endswith(".json")):
            target = dest / p.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
    return dest
