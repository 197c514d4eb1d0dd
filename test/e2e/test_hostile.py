"""Issue 13, a hostile httpd User: whatever the User (www-data here) can write in the store
(staging/, jobs/, challenges/, ...) may hold symlinks, FIFOs, garbage or forged flags. Root (the
httpd parent) must never follow them, hang on them, or install a certificate from them.

The tests run real apache2 + Pebble. The User's part is played by a helper script that runs as
www-data (setgid/setgroups/setuid before exec, checked inside the script), not by root.
The properties are checked, not the internals: a victim tree outside the store stays byte for
byte and mode for mode as it was, every SIGUSR1 gives a new generation, every name keeps a
certificate that chains to Pebble's root (never a planted one), no root process of the server sits
on a planted FIFO, nothing of the victim's bytes shows up in the store, and no restart loop starts.

The rounds of the main test, each followed by SIGUSR1 and a few monitor ticks (plants pile up):
  junk     a symlink to the victim, a FIFO and garbage in every store directory the User can write
  links    staging/<name>, jobs/<name>.json, next-run, challenge directories and the files of a
           staged set as symlinks to the victim; staging/l -> /; replacement markers naming the
           victim through staging/l, through staging/<name> and by its plain absolute path
  fifos    FIFOs as staged.json, pubcert/privkey of staged sets, a replacement marker, next-run,
           job files, a challenge token and a tls-alpn-01 answer
  forged   staged sets for managed names (self-signed; leaf + own CA named like Pebble's; a bogus
           "mac"), keys sealed to the store's seal certificate, "forced": true, and force markers
  markers  a directory, garbage, a NUL byte, "/../", a symlink as replacement markers; garbage
           job files and next-run
ACME_HOSTILE_ROUNDS=junk,links,fifos,forged,markers (the default) picks and orders the rounds, to
look at one kind of attack alone.
"""
import hashlib
import json
import os
import pwd
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, new_orders

USER = "www-data"
NAMES = ["alpha.hostile.test", "beta.hostile.test", "gamma.hostile.test"]
SECRET = b"victim-secret-5b1e7c0f"     # in the victim's files the User cannot read itself
PUBLIC = b"victim-public-5b1e7c0f"     # in the world-readable ones
NEW_GENERATION_WITHIN = 15      # seconds for a new generation after SIGUSR1 (normally < 1 s)
TICKS = 4                       # seconds of monitor ticks (one a second) after it
QUIET_WINDOW = 20               # seconds without any signal of ours at the end
RESUMED = "resuming normal operations"
RESTART = "Doing graceful restart"
ALL_ROUNDS = ["junk", "links", "fifos", "forged", "markers"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the parent must be root "
                                "and the User another account")

# Runs as the User. argv[1]: a JSON file {"victim":..., "store":..., "ops": [[op, path, arg]]}.
# Prints {"ids": [...], "results": [[op, path, status]]}; status "ok", "not writable: ..."
# (the User may not write there: nothing to test) or "error: ..." (the plant failed).
PLANTER = r'''
import json, os, shutil, stat, sys

spec = json.load(open(sys.argv[1]))
out = {"ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],
       "results": []}

def clear(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)

def parent_ready(path):
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError("not writable: " + parent)

def plant(op, path, arg):
    parent_ready(path)
    clear(path)
    if op == "link":
        os.symlink(arg, path)
    elif op == "fifo":
        os.mkfifo(path, 0o666)
    elif op == "mkdir":
        os.mkdir(path, 0o755)
    elif op == "write":
        with open(path, "wb") as f:
            f.write(arg.encode("latin-1"))
    elif op == "copy":
        with open(arg, "rb") as src, open(path, "wb") as f:
            f.write(src.read())
    else:
        raise ValueError(op)

def junk_everywhere(top, victim):
    """A symlink, a FIFO and garbage in every directory under top the User can write."""
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        if not os.access(root, os.W_OK | os.X_OK):
            continue
        for name, op, arg in ((".hostile-link", "link", victim),
                              (".hostile.fifo", "fifo", None),
                              ("hostile-garbage.json", "write", "\x00{garbage" * 50)):
            path = os.path.join(root, name)
            try:
                plant(op, path, arg)
                out["results"].append([op, path, "ok"])
            except Exception as e:
                out["results"].append([op, path, "error: %r" % e])

for op, path, arg in spec["ops"]:
    try:
        if op == "junk":
            junk_everywhere(path, arg)
            continue
        plant(op, path, arg)
        out["results"].append([op, path, "ok"])
    except PermissionError as e:
        msg = str(e)
        out["results"].append([op, path, msg if msg.startswith("not writable") else
                               "not writable: %r" % e])
    except Exception as e:
        out["results"].append([op, path, "error: %r" % e])
print(json.dumps(out))
'''


# ------------------------------------------------------------------ the User

class User:
    def __init__(self, workdir):
        pw = pwd.getpwnam(USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.script = Path(workdir) / "planter.py"
        self.script.write_text(PLANTER)
        self.script.chmod(0o644)
        self.n = 0

    def _drop(self):
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)

    def plant(self, store, victim, ops):
        """Runs ops as the User; returns [(op, path, status)]."""
        self.n += 1
        spec = self.script.parent / f"plant-{self.n}.json"
        spec.write_text(json.dumps({"store": str(store), "victim": str(victim),
                                    "ops": [[o, str(p), a] for o, p, a in ops]}))
        spec.chmod(0o644)
        res = subprocess.run([sys.executable, str(self.script), str(spec)], preexec_fn=self._drop,
                             capture_output=True, text=True, timeout=60, cwd="/")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        ids = out["ids"]
        assert ids[:4] == [self.uid, self.uid, self.gid, self.gid] and set(ids[4]) <= {self.gid}, \
            f"the planter did not run as {USER}: {ids}"
        return out["results"]


# ------------------------------------------------------------------ the victim

def make_victim(workdir):
    """A root-owned tree outside the store, with distinct modes."""
    v = Path(workdir) / "victim"
    layout = [("", "dir", 0o755), ("d1", "dir", 0o700), ("d2", "dir", 0o750),
              ("d3", "dir", 0o755), ("d3/sub", "dir", 0o711),
              ("f600", "file", 0o600), ("f640", "file", 0o640), ("f644", "file", 0o644),
              ("run.sh", "file", 0o755), ("d1/inner", "file", 0o600),
              ("d2/inner", "file", 0o640), ("d3/sub/deep", "file", 0o644)]
    for rel, kind, mode in layout:
        p = v / rel if rel else v
        if kind == "dir":
            p.mkdir()
        else:
            private = not mode & 0o004 or rel.startswith(("d1/", "d2/"))
            p.write_bytes((SECRET if private else PUBLIC) + b" " + rel.encode() + b"\n"
                          + os.urandom(64))
        p.chmod(mode)
    return v


def snapshot(top):
    """{relative path: (type, mode, uid, gid, sha256 or link target)} without following links."""
    shot = {}

    def entry(p):
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = os.readlink(p)
        else:
            what = None
        shot[os.path.relpath(p, top)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                         st.st_uid, st.st_gid, what)
    if not os.path.lexists(top):
        return {}
    entry(top)
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            entry(os.path.join(root, n))
    return shot


def victim_changes(before, now):
    """What differs between two snapshots, readably."""
    out = []
    for rel in sorted(set(before) | set(now)):
        a, b = before.get(rel), now.get(rel)
        if a == b:
            continue
        if b is None:
            out.append(f"{rel}: gone")
        elif a is None:
            out.append(f"{rel}: new")
        else:
            what = [f"{k} {x}->{y}" for k, x, y in
                    zip(("type", "mode", "uid", "gid", "content"),
                        (a[0], oct(a[1]), a[2], a[3], a[4]), (b[0], oct(b[1]), b[2], b[3], b[4]))
                    if x != y]
            out.append(f"{rel}: " + ", ".join(what))
    return out


def secret_in_store(store):
    """Regular files of the store (links not followed) that hold bytes of the victim's files
    the User cannot read."""
    found = []
    for root, dirs, files in os.walk(store):
        for n in files:
            p = os.path.join(root, n)
            try:
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_size < 4 << 20 \
                        and SECRET in Path(p).read_bytes():
                    found.append(p)
            except OSError:
                pass
    return found


# ------------------------------------------------------------------ processes

def _proc_table():
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
            uids = next(l for l in Path(f"/proc/{d}/status").read_text().splitlines()
                        if l.startswith("Uid:")).split()[1:]
            table[int(d)] = (ppid, [int(u) for u in uids])
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    return table


def server_processes(parent):
    """{pid: [ruid, euid, suid, fsuid]} of the parent and all its descendants."""
    table = _proc_table()
    found, todo = {}, [parent]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found[pid] = table[pid][1]
            todo += [p for p, (pp, _) in table.items() if pp == pid]
    return found


def root_on_fifos(parent, fifos):
    """Root processes of the server blocked opening a FIFO or holding a planted FIFO open, in
    two looks a second apart (opening one with O_NONBLOCK to find out what it is is fine)."""
    first = set(_root_on_fifos(parent, fifos))
    if not first:
        return []
    time.sleep(1)
    return [b for b in _root_on_fifos(parent, fifos) if b in first]


def _root_on_fifos(parent, fifos):
    fifos = {str(f) for f in fifos}
    bad = []
    for pid, uids in server_processes(parent).items():
        if uids[1] != 0 and uids[3] != 0:
            continue
        try:
            wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
        except OSError:
            continue
        if wchan == "wait_for_partner":
            bad.append(f"pid {pid} (root) blocked opening the FIFO {_opening(pid)} "
                       f"(wchan {wchan})")
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target in fifos:
                    bad.append(f"pid {pid} (root) holds the planted FIFO {target} (wchan {wchan})")
        except OSError:
            pass
    return bad


def _opening(pid):
    """The path a process blocked in open()/openat() is opening, read from its memory."""
    try:
        nr, *args = Path(f"/proc/{pid}/syscall").read_text().split()
        addr = int(args[0 if nr == "2" else 1], 16)
        with open(f"/proc/{pid}/mem", "rb") as mem:
            mem.seek(addr)
            return mem.read(4096).split(b"\0", 1)[0].decode(errors="replace")
    except (OSError, ValueError, IndexError, OverflowError):
        return "(path unknown)"


def release_fifos(fifos):
    """Gives every reader blocked on a planted FIFO an end of file, so the server can be stopped."""
    for f in fifos:
        try:
            if stat.S_ISFIFO(os.lstat(f).st_mode):
                os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


# ------------------------------------------------------------------ certificates

def _openssl(*args, cwd=None, input=None):
    return subprocess.run(["openssl", *args], cwd=cwd, input=input, check=True,
                          capture_output=True, timeout=60)


def _newkey(spec):
    if spec.startswith("rsa"):
        return ["-newkey", f"rsa:{spec[3:]}"]
    curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[spec]
    return ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{curve}"]


def fingerprint(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def first_pem(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return m.group(0) + "\n" if m else None


class Forger:
    """Certificates for managed names that Pebble never issued, keys sealed to the store."""

    def __init__(self, workdir, store):
        self.dir = Path(workdir) / "forge"
        self.dir.mkdir()
        self.dir.chmod(0o755)
        self.keys = Path(workdir) / "forge-keys"      # plain keys: root only
        self.keys.mkdir(mode=0o700)
        self.store = Path(store)
        self.fingerprints = set()
        self.n = 0

    def _seal(self, key, out):
        _openssl("cms", "-encrypt", "-binary", "-aes256", "-in", str(key), "-outform", "PEM",
                 "-out", str(out), str(self.store / "seal" / "seal.pem"))
        out.chmod(0o644)

    def self_signed(self, name, spec):
        self.n += 1
        key, cert = self.keys / f"ss{self.n}.key", self.dir / f"ss{self.n}.pem"
        _openssl("req", "-x509", *_newkey(spec), "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-days", "30", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                 "-addext", "extendedKeyUsage=serverAuth")
        return self._finish(cert.read_text(), key, spec)

    def ca_chain(self, name, spec):
        """Leaf for name + its own CA (named like Pebble's, to fool a name check)."""
        self.n += 1
        d, k = self.dir, self.keys
        ca_key, ca = k / f"ca{self.n}.key", d / f"ca{self.n}.pem"
        _openssl("req", "-x509", *_newkey("secp256r1"), "-nodes", "-keyout", str(ca_key),
                 "-out", str(ca), "-days", "30", "-subj", "/CN=Pebble Intermediate CA 0badc0de",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        key, csr, leaf = k / f"leaf{self.n}.key", k / f"leaf{self.n}.csr", d / f"leaf{self.n}.pem"
        _openssl("req", "-new", *_newkey(spec), "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={name}")
        ext = k / f"leaf{self.n}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"
                       "basicConstraints=critical,CA:FALSE\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-out", str(leaf), "-days", "30", "-extfile", str(ext))
        return self._finish(leaf.read_text() + ca.read_text(), key, spec)

    def _finish(self, chain_pem, key, spec):
        self.fingerprints.add(fingerprint(first_pem(chain_pem)))
        chain = self.dir / f"chain{self.n}.pem"
        chain.write_text(chain_pem)
        chain.chmod(0o644)
        sealed = self.dir / f"sealed{self.n}.pem"
        self._seal(key, sealed)
        return chain, sealed


def planted_in_root_store(store, planted):
    """Certificates with a planted fingerprint among the installed and archived sets."""
    hits = []
    for sub in ("domains", "archive"):
        for root, dirs, files in os.walk(store / sub):
            for n in files:
                p = os.path.join(root, n)
                try:
                    if not stat.S_ISREG(os.lstat(p).st_mode):
                        continue
                    text = Path(p).read_text(errors="replace")
                except OSError:
                    continue
                for m in re.finditer(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                                     text, re.S):
                    try:
                        if fingerprint(m.group(0)) in planted:
                            hits.append(p)
                    except ValueError:
                        pass
    return hits


class Watcher(threading.Thread):
    """Handshakes with every name in a loop for the whole test and remembers any planted
    certificate served, however briefly (a forced renewal may replace it within a second)."""

    def __init__(self, port, names, planted):
        super().__init__(daemon=True)
        self.port, self.names, self.planted = port, names, planted
        self.seen, self.handshakes, self.failures = [], 0, 0
        self.stop_flag = threading.Event()

    def run(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while not self.stop_flag.is_set():
            for name in self.names:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=3) as raw:
                        with ctx.wrap_socket(raw, server_hostname=name) as tls:
                            der = tls.getpeercert(binary_form=True)
                    self.handshakes += 1
                    if hashlib.sha256(der).hexdigest() in self.planted:
                        self.seen.append(f"{name} at {time.strftime('%H:%M:%S')}")
                except (OSError, ValueError):
                    self.failures += 1
            self.stop_flag.wait(0.2)

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=20)


# ------------------------------------------------------------------ the server

class Server:
    def __init__(self, httpd, pebble, workdir):
        self.httpd, self.pebble = httpd, pebble
        self.root_ca = Path(workdir) / "pebble-root.pem"
        self.root_ca.write_text(pebble.root_pem())

    def count(self, needle):
        try:
            return self.httpd.error_log.read_text(errors="replace").count(needle)
        except OSError:
            return 0

    def log_size(self):
        try:
            return self.httpd.error_log.stat().st_size
        except OSError:
            return 0

    def acme_lines_since(self, offset):
        """mod_acme's lines above debug level logged since offset, for the test's output."""
        with open(self.httpd.error_log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return [l for l in text.splitlines() if "[acme:" in l and "[acme:debug]" not in l]

    def served(self, name):
        """(leaf PEM, chain verified against Pebble's root for name, s_client output)."""
        argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{self.httpd.https_port}",
                "-servername", name, "-showcerts", "-CAfile", str(self.root_ca),
                "-verify_hostname", name]
        try:
            res = subprocess.run(argv, input="", capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return None, False, "handshake timed out"
        out = res.stdout + res.stderr
        return first_pem(res.stdout), "Verify return code: 0 (ok)" in out, out

    def graceful_and_wait(self, timeout=NEW_GENERATION_WITHIN):
        """SIGUSR1; True when the parent logged a new generation within timeout."""
        before = self.count(RESUMED)
        self.httpd.graceful()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(RESUMED) > before:
                return True
            if not self.httpd.running():
                return False
            time.sleep(0.2)
        return False

    def answers(self):
        try:
            code, _, _ = self.httpd.get("/index.html", timeout=5)
            return code == 200
        except OSError:
            return False


def diagnose(server, store, parent):
    lines = []
    for pid, uids in sorted(server_processes(parent).items()):
        try:
            wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except OSError:
            continue
        lines.append(f"  pid {pid} uids {uids} wchan {wchan} {cmd}")
    listing = subprocess.run(["ls", "-laR", str(store / "staging"), str(store / "jobs")],
                             capture_output=True, text=True, timeout=10).stdout
    return ("--- server processes ---\n" + "\n".join(lines)
            + "\n--- staging/ and jobs/ ---\n" + listing[-3000:]
            + "\n--- error log ---\n" + server.httpd.log_text()[-6000:])


# ------------------------------------------------------------------ rounds of planting

def round_ops(kind, store, victim, specs, forged):
    """The plants of one round: [(op, path, arg)]."""
    A, B, C = NAMES
    st, sg, jb, ch = store, store / "staging", store / "jobs", store / "challenges"
    via_link = f"{sg}/l{victim}"        # <store>/staging/l/<victim>, l -> /
    ops = []
    if kind == "links":
        ops += [("link", sg / A, str(victim / "d1")),
                ("link", sg / "l", "/"),
                ("mkdir", sg / B, None),
                ("link", sg / C, str(victim))]
        for s in specs:
            ops += [("link", sg / B / f"pubcert.{s}.pem", str(victim / "f644")),
                    ("link", sg / B / f"privkey.{s}.sealed", str(victim / "f600"))]
        ops += [("link", sg / B / "staged.json", str(victim / "f640")),
                # Replacement markers naming the victim through the User's links.
                ("write", sg / ".ghost-l.replacing", f"{via_link}/d2\n"),
                ("write", sg / ".ghost-c.replacing", f"{sg}/{C}/d3\n"),
                ("write", sg / ".ghost-abs.replacing", f"{victim}/d1\n"),
                ("write", sg / f".{A}.replacing", f"{sg}/.{A}.old\n"),
                ("link", sg / f".{A}.old", str(victim / "d3")),
                ("link", sg / f"{B}~pending", str(victim / "d2")),
                ("link", jb / f"{A}.json", str(victim / "f600")),
                ("link", jb / f"{B}.json", str(victim / "d1")),
                ("link", jb / "next-run", str(victim / "f640")),
                ("link", jb / "activation.json", str(victim / "f644")),
                ("link", jb / f"{C}.dns01.json", str(victim / "f600")),
                ("link", ch / "http-01" / A, str(victim / "d1")),
                ("link", ch / "tls-alpn-01", str(victim / "d2")),
                ("link", ch / "tls-sni-01" / "x.acme.invalid", str(victim / "d3"))]
    elif kind == "fifos":
        ops += [("mkdir", sg / A, None), ("fifo", sg / A / "staged.json", None)]
        for s in specs:
            ops += [("fifo", sg / A / f"pubcert.{s}.pem", None),
                    ("fifo", sg / A / f"privkey.{s}.sealed", None)]
        ops += [("mkdir", sg / B, None),
                ("write", sg / B / "staged.json", json.dumps({"name": B, "landed": int(time.time()),
                                                             "forced": True})),
                ("link", sg / "l", "/")]
        for s in specs:
            ops += [("fifo", sg / B / f"pubcert.{s}.pem", None),
                    ("fifo", sg / B / f"privkey.{s}.sealed", None)]
        ops += [("fifo", sg / f".{C}.replacing", None),
                ("fifo", jb / "next-run", None),
                ("fifo", jb / f"{A}.json", None),
                ("fifo", jb / f"{B}.json", None),
                ("fifo", jb / "activation.json", None),
                ("fifo", jb / f"{C}.force", None),
                ("mkdir", ch / "http-01" / A, None),
                ("fifo", ch / "http-01" / A / "hostiletoken", None),
                ("mkdir", ch / "tls-alpn-01", None),
                ("mkdir", ch / "tls-alpn-01" / A, None),
                ("fifo", ch / "tls-alpn-01" / A / "answer.pem", None)]
    elif kind == "forged":
        domains = {}
        try:
            domains = {d["name"]: d for d in
                       json.loads((store / "domains.json").read_text())["domains"]}
        except (OSError, ValueError, KeyError):
            pass
        for name, how, mac in ((A, "self_signed", None), (B, "ca_chain", "00" * 32),
                               (C, "ca_chain", None)):
            ops.append(("mkdir", sg / name, None))
            for s in specs:
                chain, sealed = getattr(forged, how)(name, s)
                ops += [("copy", sg / name / f"pubcert.{s}.pem", str(chain)),
                        ("copy", sg / name / f"privkey.{s}.sealed", str(sealed))]
            doc = {"name": name, "domain": domains.get(name, {"name": name}),
                   "landed": int(time.time()), "forced": True}
            if mac:
                doc["mac"] = mac
            ops += [("write", sg / name / "staged.json", json.dumps(doc)),
                    ("write", jb / f"{name}.force", ""),
                    ("write", st / "requests" / f"{name}.force", "")]
    elif kind == "junk":
        ops += [("write", jb / f"{A}.json.tmp", "partial"), ("fifo", sg / "hostile.tmp", None)]
    elif kind == "markers":
        ops += [("link", sg / "l", "/"),
                ("mkdir", sg / f".{A}.replacing", None),
                ("write", sg / ".ghost-file.replacing", f"{via_link}/f600\n"),
                ("write", sg / ".ghost-nul.replacing", f"{via_link}/d2\0junk\n"),
                ("write", sg / ".ghost-junk.replacing", "\xff\x00garbage" * 4096),
                ("write", sg / f".{B}.replacing", f"{via_link}/d1\n"),
                ("link", sg / f".{C}.replacing", str(victim / "f640")),
                ("write", sg / ".ghost-dots.replacing", f"{sg}/l/../../{victim}/d3\n"),
                ("write", jb / f"{A}.json", "{not json"),
                ("write", jb / "next-run", "garbage\n"),
                ("write", jb / f"{B}.json", json.dumps({"name": B, "next_run": 1, "order":
                                                        {"url": "file:///etc/shadow"}})),
                ("write", jb / f"{C}.json", "[" * 200000)]
    ops.append(("junk", store, str(victim)))
    return ops


# ------------------------------------------------------------------ the tests

def _start(httpd, pebble, names):
    httpd.write_config(site_config(httpd, pebble, [[n] for n in names]))
    httpd.start()
    for n in names:
        wait_for_pebble_cert(httpd, [n], timeout=90)


def _specs(store, name):
    specs = sorted(p.name[len("pubcert."):-len(".pem")]
                   for p in (store / "domains" / name).glob("pubcert.*.pem"))
    assert specs, f"no active certificate files for {name} in {store / 'domains' / name}"
    return specs


def _check_round(kind, server, store, victim, before, forged, fifos, parent, answered, watcher):
    """Every property after a round; returns the list of violations."""
    bad = []
    if watcher.seen:
        bad.append(f"a PLANTED certificate was served: {watcher.seen[:6]}")
    installed = planted_in_root_store(store, forged.fingerprints)
    if installed:
        bad.append(f"the planted set was installed or archived as an active set: {installed}")
    httpd = server.httpd
    up = httpd.running() and httpd.proc.pid == parent
    if not up:
        bad.append(f"httpd exited (returncode {httpd.proc.poll()})")
        answered = False
    elif not answered:
        bad.append(f"no new generation within {NEW_GENERATION_WITHIN} s after SIGUSR1 "
                   f"({RESUMED!r} not logged)")
    changes = victim_changes(before, snapshot(victim))
    if changes:
        bad.append(f"the victim tree outside the store changed: {changes[:20]}")
    bad += root_on_fifos(parent, fifos)
    leaked = secret_in_store(store)
    if leaked:
        bad.append(f"victim bytes copied into the store: {leaked}")
    if not answered:
        return bad          # handshakes would only wait for a parent that does not answer
    if not server.answers():
        bad.append("GET /index.html is not answered with 200")
    for name in NAMES:
        pem, verified, out = server.served(name)
        if not pem:
            bad.append(f"{name}: no certificate in the handshake: {out[-500:]}")
        elif fingerprint(pem) in forged.fingerprints:
            bad.append(f"{name}: serves the PLANTED certificate")
        elif not verified:
            bad.append(f"{name}: the served chain does not verify against Pebble's root: "
                       + "; ".join(l for l in out.splitlines() if "erif" in l)[:500])
    return bad


def test_hostile_user_cannot_make_root_follow_hang_or_install(httpd, pebble, workdir):
    rounds = [r for r in os.environ.get("ACME_HOSTILE_ROUNDS", ",".join(ALL_ROUNDS)).split(",")
              if r]
    assert set(rounds) <= set(ALL_ROUNDS), rounds
    _start(httpd, pebble, NAMES)
    store = Path(httpd.root) / "acme"
    server = Server(httpd, pebble, workdir)
    parent = httpd.proc.pid
    specs = _specs(store, NAMES[0])
    for name in NAMES:
        pem, verified, out = server.served(name)
        assert pem and verified, f"{name} not served with a Pebble certificate: {out[-2000:]}"
    orders = len(new_orders(pebble))
    victim = make_victim(workdir)
    before = snapshot(victim)
    user = User(workdir)
    forged = Forger(workdir, store)
    fifos = set()
    watcher = Watcher(httpd.https_port, NAMES, forged.fingerprints)
    watcher.start()
    try:
        for kind in rounds:
            results = user.plant(store, victim, round_ops(kind, store, victim, specs, forged))
            errors = [r for r in results if r[2].startswith("error")]
            planted = [r for r in results if r[2] == "ok"]
            assert not errors, f"round {kind}: the User could not plant: {errors}"
            assert any(str(store / "staging") in r[1] for r in planted) and \
                any(str(store / "jobs") in r[1] for r in planted), \
                f"round {kind}: nothing planted in staging/ and jobs/: {results}"
            fifos |= {r[1] for r in planted if r[0] == "fifo"}
            print(f"\nround {kind}: {len(planted)} planted, "
                  f"{len(results) - len(planted)} where the User may not write")
            mark = server.log_size()
            answered = server.graceful_and_wait()
            if answered:
                time.sleep(TICKS)
            print("\n".join(server.acme_lines_since(mark)))
            bad = _check_round(kind, server, store, victim, before, forged, fifos, parent,
                               answered, watcher)
            assert not bad, (f"round {kind}:\n  " + "\n  ".join(bad) + "\n"
                             + diagnose(server, store, parent))

        # No restart loop: in a window without signals of ours, no restart at all.
        restarts = server.count(RESTART)
        deadline = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < deadline:
            assert httpd.running() and httpd.proc.pid == parent, httpd.log_text()[-4000:]
            time.sleep(0.5)
        extra = server.count(RESTART) - restarts
        assert extra == 0, (f"{extra} graceful restarts in {QUIET_WINDOW} s without any signal "
                            f"from the test\n" + diagnose(server, store, parent))
        bad = _check_round("quiet", server, store, victim, before, forged, fifos, parent, True,
                           watcher)
        assert not bad, "after the quiet window:\n  " + "\n  ".join(bad)
        assert server.graceful_and_wait(), "no new generation after the last SIGUSR1"
        assert httpd.running() and httpd.proc.pid == parent
        print(f"\n{watcher.handshakes} handshakes watched, {watcher.failures} failed, "
              f"{len(new_orders(pebble)) - orders} orders sent to Pebble after the first "
              f"certificates")
    finally:
        watcher.stop()
        release_fifos(fifos)


def test_fifos_do_not_stop_graceful_restarts(httpd, pebble, workdir):
    """A FIFO as jobs/next-run and as staged files: `apache2 -k graceful` and SIGUSR1 are still
    answered with a new generation within 10 s."""
    name = "fifo.hostile.test"
    _start(httpd, pebble, [name])
    store = Path(httpd.root) / "acme"
    server = Server(httpd, pebble, workdir)
    parent = httpd.proc.pid
    specs = _specs(store, name)
    sg = store / "staging" / name
    ops = [("fifo", store / "jobs" / "next-run", None), ("mkdir", sg, None),
           ("fifo", sg / "staged.json", None)]
    ops += [("fifo", sg / f"{kind}.{s}.{ext}", None) for s in specs
            for kind, ext in (("pubcert", "pem"), ("privkey", "sealed"))]
    results = User(workdir).plant(store, workdir, ops)
    assert all(r[2] == "ok" for r in results), results
    fifos = {r[1] for r in results}
    try:
        before = server.count(RESUMED)
        res = subprocess.run([harness.HTTPD_BIN, "-d", str(httpd.root), "-f", str(httpd.conf_path),
                              "-k", "graceful"], capture_output=True, text=True, timeout=30,
                             env=harness.httpd_env())
        assert res.returncode == 0, res.stdout + res.stderr
        harness.wait_for(lambda: server.count(RESUMED) > before or not httpd.running(), 10,
                         "a new generation after apache2 -k graceful")
        for _ in range(2):
            time.sleep(2)           # monitor ticks with the FIFOs in place
            answered = server.graceful_and_wait(timeout=10)
            assert answered, ("no new generation within 10 s after SIGUSR1\n"
                              + diagnose(server, store, parent))
        assert not root_on_fifos(parent, fifos), diagnose(server, store, parent)
        assert httpd.running() and httpd.proc.pid == parent
        pem, verified, out = server.served(name)
        assert pem and verified, out[-2000:]
    except TimeoutError as e:
        raise AssertionError(f"{e}\n" + "\n".join(root_on_fifos(parent, fifos)) + "\n"
                             + diagnose(server, store, parent)) from None
    finally:
        release_fifos(fifos)
