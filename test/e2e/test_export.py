"""ACMEExport (issue 17) with real daemons: httpd + mod_acme issuing from Pebble (ECDSA and RSA
certificates per domain) export the served certificates; a real HAProxy (Debian's haproxy)
loads the `haproxy` export through its crt-list and serves the module's certificate per SNI
name and key type; after a forced renewal the `exported` hook reloads HAProxy (through its
master CLI, the way a hook running as the httpd User can) and HAProxy serves the new serial.
The `txsni` and `split` exports parse as key + chain, have the configured owner and mode, and a
domain removed from the configuration loses its files."""
import grp
import json
import pwd
import shutil
import ssl
import stat
import subprocess
from pathlib import Path

import pytest

import harness
from acme_site import site_config, serial_of, wait_for_pebble_cert, notify_events

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
A2ACME = harness.BUILD_DIR / "src" / "a2acme"


def hook_script(workdir, master_sock):
    """ACMENotifyCommand: logs every event; for `exported` it asks HAProxy's master to reload
    (runs as the httpd User: it can reach the master socket, never HAProxy's keys)."""
    out_dir = Path(workdir) / "notify"
    out_dir.mkdir(exist_ok=True)
    out_dir.chmod(0o777)
    script = out_dir / "hook.sh"
    reload_py = ("import socket,sys\n"
                 "s=socket.socket(socket.AF_UNIX)\n"
                 "s.settimeout(10)\n"
                 "s.connect(sys.argv[1])\n"
                 "s.sendall(b'reload\\n')\n"
                 "try:\n"
                 "    while s.recv(4096): pass\n"
                 "except OSError: pass\n")
    (out_dir / "reload.py").write_text(reload_py)
    script.write_text("#!/bin/sh\n"
                      "IFS= read -r doc\n"
                      f'echo "$1 $2 $doc" >> {out_dir}/events\n'
                      # only the haproxy export concerns HAProxy (one event per directory)
                      'case "$1 $doc" in exported*\'"format":"haproxy"\'*)\n'
                      f"  /usr/bin/python3 {out_dir}/reload.py {master_sock} "
                      f">> {out_dir}/reload.log 2>&1\n"
                      f'  echo "reloaded $2" >> {out_dir}/reload.log;;\n'
                      "esac\n")
    script.chmod(0o755)
    return script, out_dir / "events"


def haproxy_conf(path, port, crt_list):
    path.write_text("global\n"
                    "  maxconn 100\n"
                    "defaults\n"
                    "  mode http\n"
                    "  timeout connect 5s\n"
                    "  timeout client 5s\n"
                    "  timeout server 5s\n"
                    "frontend tls\n"
                    f"  bind 127.0.0.1:{port} ssl crt-list {crt_list}\n"
                    "  http-request return status 200 content-type text/plain string ok\n")


RSA_ONLY = ("-sigalgs", "rsa_pss_rsae_sha256:rsa_pkcs1_sha256")


def haproxy_serial(port, name, extra=()):
    text, _ = harness.tls_peer_cert(port, name, extra=extra)
    return serial_of(text) if text else None


def wait_serial(port, name, want, timeout, what):
    harness.wait_for(lambda: haproxy_serial(port, name) == want, timeout, what, interval=0.2)


def exported(events_file, name, fmt="haproxy"):
    """The `exported` documents of name for the export of that format (one per directory)."""
    return [d for e, dom, d in notify_events(events_file)
            if e == "exported" and dom == name and d.get("format") == fmt]


def pem_key_and_chain(path):
    """(key's public key PEM, leaf's public key PEM, number of certificates) of a PEM file."""
    key_pub = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout"],
                             capture_output=True, text=True, check=True).stdout
    leaf_pub = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-pubkey"],
                              capture_output=True, text=True, check=True).stdout
    return key_pub, leaf_pub, path.read_text().count("-----BEGIN CERTIFICATE-----")


def unreadable_by_user(path):
    """The httpd User (www-data) cannot open the file."""
    res = subprocess.run(["setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups",
                          "cat", str(path)], capture_output=True, text=True)
    return res.returncode != 0 and "BEGIN" not in res.stdout


@pytest.fixture
def haproxy_proc():
    procs = []
    yield procs
    for proc in procs:
        harness.stop_process(proc)


def test_export_to_haproxy_txsni_and_split(httpd, pebble, workdir, haproxy_proc):
    if not Path(HAPROXY).exists():
        pytest.fail("haproxy is missing: apt-get install -y haproxy (CI installs it)")
    work = Path(workdir)
    exp_h, exp_t, exp_s = work / "exp-haproxy", work / "exp-txsni", work / "exp-split"
    exp_h.mkdir()
    exp_h.chmod(0o755)
    master_sock = work / "haproxy-master.sock"
    hook, events = hook_script(workdir, master_sock)
    domains = [["exa.test", "www.exa.test"], ["exb.test"]]
    extra = (f"ACMENotifyCommand {hook}\n"
             f"ACMEExport {exp_h} haproxy owner=haproxy:haproxy mode=0640\n"
             f"ACMEExport {exp_t} txsni\n")
    dual = "ACMEPrivateKeys secp256r1 rsa2048"
    # split only for exa.test: an ACMEExport inside its <ACMEDomain>
    section = (f"<ACMEDomain exa.test www.exa.test>\n"
               f"  ACMEExport {exp_s} split owner=root:www-data mode=0640\n</ACMEDomain>\n")

    def config(doms):
        text = site_config(httpd, pebble, doms, extra=extra, global_first=dual)
        return text.replace("ACMEDomain exa.test www.exa.test\n", section)

    httpd.write_config(config(domains))
    assert section in httpd.conf_path.read_text()
    httpd.start()
    served = {d[0]: serial_of(wait_for_pebble_cert(httpd, d)) for d in domains}
    served_rsa = {d[0]: haproxy_serial(httpd.https_port, d[0], RSA_ONLY) for d in domains}
    assert not set(served.values()) & set(served_rsa.values())
    # After the activation's graceful restart the parent exports and notifies.
    harness.wait_for(lambda: exported(events, "exa.test") and exported(events, "exb.test"), 60,
                     "the exported events")
    doc = exported(events, "exa.test")[-1]
    assert doc["names"] == ["exa.test", "www.exa.test"]
    assert doc["serial"].lower().lstrip("0") == served["exa.test"].lstrip("0")

    # txsni: one file per name, key + chain that belong together, root:root 0640 (default)
    for name in ("exa.test", "www.exa.test", "exb.test"):
        f = exp_t / f"{name}.pem"
        key_pub, leaf_pub, n = pem_key_and_chain(f)
        assert key_pub == leaf_pub and n >= 2, name
        # what txsni does with it: a server context from the one file (fails on a key mismatch)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(f))
        st = f.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o640)
        assert unreadable_by_user(f)
    # split: certbot's names, owner root, group www-data as configured
    sp = exp_s / "exa.test"
    assert {p.name for p in sp.iterdir()} == {"privkey.pem", "cert.pem", "chain.pem",
                                              "fullchain.pem", "privkey.rsa2048.pem",
                                              "cert.rsa2048.pem", "chain.rsa2048.pem",
                                              "fullchain.rsa2048.pem"}
    st = (sp / "privkey.pem").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, grp.getgrnam("www-data").gr_gid,
                                                               0o640)
    assert (sp / "fullchain.pem").read_text() == ((sp / "cert.pem").read_text()
                                                  + (sp / "chain.pem").read_text())
    # haproxy: owned by haproxy, never readable by the User
    hst = (exp_h / "exa.test.pem").stat()
    hap = pwd.getpwnam("haproxy")
    assert (hst.st_uid, hst.st_gid, stat.S_IMODE(hst.st_mode)) == (hap.pw_uid,
                                                                   grp.getgrnam("haproxy").gr_gid,
                                                                   0o640)
    assert unreadable_by_user(exp_h / "exa.test.pem")

    # HAProxy from the export's crt-list, master CLI for the User's group
    port = harness.free_port()
    cfg = work / "haproxy.cfg"
    haproxy_conf(cfg, port, exp_h / "crt-list.txt")
    proc = harness.start_process("haproxy", [HAPROXY, "-W", "-db", "-f", str(cfg), "-S",
                                             f"{master_sock},mode,660,group,www-data"],
                                 work / "haproxy.log")
    haproxy_proc.append(proc)
    harness.wait_for(lambda: harness.port_open(port), 20, "haproxy to listen")
    # One crt-list line per key type: HAProxy picks ECDSA or RSA per client, like mod_ssl.
    for names in domains:
        for name in names:
            assert haproxy_serial(port, name) == served[names[0]], name
            assert haproxy_serial(port, name, RSA_ONLY) == served_rsa[names[0]], name

    # Forced renewal: httpd serves the new serial, the hook reloads HAProxy, which serves it too.
    before = len(exported(events, "exa.test"))
    res = subprocess.run([str(A2ACME), "--store", str(httpd.root / "acme"), "renew", "exa.test"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    new = serial_of(wait_for_pebble_cert(httpd, domains[0], timeout=90,
                                         not_serial=served["exa.test"]))
    assert new != served["exa.test"]
    wait_serial(port, "www.exa.test", new, 60, "haproxy to serve the renewed certificate")
    new_rsa = haproxy_serial(httpd.https_port, "exa.test", RSA_ONLY)
    assert new_rsa != served_rsa["exa.test"]
    assert haproxy_serial(port, "exa.test", RSA_ONLY) == new_rsa
    assert haproxy_serial(port, "exb.test") == served["exb.test"]
    assert len(exported(events, "exa.test")) == before + 1
    assert not exported(events, "exb.test")[1:], "exb.test exported again though unchanged"
    assert proc.poll() is None      # reloaded, not restarted: the master keeps its PID
    assert "reloaded exa.test" in (work / "notify" / "reload.log").read_text()

    # exb.test removed from the configuration: its files go, HAProxy stops serving it.
    assert sorted(p.name for p in exp_s.iterdir()) == [".mod_acme-export.json", "exa.test"]
    httpd.write_config(config(domains[:1]))
    httpd.graceful()
    # The parent exports one directory after the other: wait for all three.
    harness.wait_for(lambda: not any(p.exists() for p in (exp_t / "exb.test.pem",
                                                          exp_h / "exb.test.pem")),
                     30, "exb.test's removal")
    assert "exb.test" not in (exp_h / "crt-list.txt").read_text()
    harness.wait_for(lambda: exported(events, "exb.test")[-1].get("removed") is True, 30,
                     "the exported event of the removal")
    harness.wait_for(lambda: haproxy_serial(port, "exb.test") == new, 30,
                     "haproxy to drop exb.test (its default certificate is exa.test's)")
    assert (exp_t / "exa.test.pem").exists()
    manifest = json.loads((exp_t / ".mod_acme-export.json").read_text())
    assert sorted(manifest["files"]) == ["exa.test.pem", "www.exa.test.pem"]
    # Secrets stay out of the log.
    log = httpd.log_text()
    print("\n".join(line for line in log.splitlines() if "ACME115" in line))
    assert "PRIVATE KEY" not in log
    assert "PRIVATE KEY" not in events.read_text()
    assert "ACME11501: exb.test: no longer managed" in log
