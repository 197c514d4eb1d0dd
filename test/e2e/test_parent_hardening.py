"""The root parent's side of mod_acme against a real apache2 + Pebble (issue 13, point 6): the
store's domains.json is not world-readable, `a2acme revoke` runs ACMENotifyCommand as the httpd
User, the configuration test before a self-restart is bounded in time and survives a replaced
httpd binary, and a replaced module file is tested before the parent restarts itself."""
import errno
import grp
import json
import os
import pwd
import shutil
import stat
import time
from pathlib import Path

import pytest

import harness
from test_a2acme import a2acme, issued_site, store_of, wait_for_new_cert, hex_serial
from acme_site import served_cert, site_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the parent drops to User only as root")

USER = "www-data"


def log_has(httpd, text):
    return text in httpd.log_text()


def renew(httpd, name):
    res = a2acme("--store", store_of(httpd), "renew", name)
    assert res.returncode == 0, res.stdout + res.stderr


def unblock_fifo(path):
    """A configuration test stuck opening the FIFO reads an empty file and goes on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno not in (errno.ENXIO, errno.ENOENT):
            raise
    else:
        os.close(fd)
    if os.path.lexists(path):
        os.unlink(path)


def configtests_running(conf_path):
    """PIDs of 'apache2 ... -t' processes testing this test's configuration."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-t" in argv and str(conf_path).encode() in argv:
            pids.append(int(entry.name))
    return pids


def test_domains_json_is_readable_by_root_and_the_user_group_only(httpd, pebble, workdir):
    httpd.write_config(site_config(httpd, pebble, [["perm.test"]],
                                   global_first="ACMENotifyCommand /bin/true --secret-arg"))
    httpd.start()
    path = store_of(httpd) / "domains.json"
    harness.wait_for(path.exists, 20, "domains.json")
    # Written (renamed into place, root's group) and then given to the User's group: each of
    # httpd's two configuration passes does both, so wait for the second to be through.
    gid = grp.getgrnam(USER).gr_gid
    harness.wait_for(lambda: path.stat().st_gid == gid, 20, "domains.json in the User's group")
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert st.st_uid == 0
    assert st.st_gid == grp.getgrnam(USER).gr_gid
    doc = json.loads(path.read_text())
    assert doc["notify_command"] == ["/bin/true", "--secret-arg"]
    assert doc["hook_user"]["uid"] == pwd.getpwnam(USER).pw_uid


def test_revoke_runs_the_notify_hook_as_the_httpd_user(httpd, pebble, workdir):
    out_dir = Path(workdir) / "notify"
    out_dir.mkdir()
    out_dir.chmod(0o777)
    script = out_dir / "notify.sh"
    script.write_text("#!/bin/sh\ncat >/dev/null\n"
                      f'echo "$1 $2 $(id -u) $(id -g) $(id -G)" >> {out_dir}/events\n')
    script.chmod(0o755)
    issued_site(httpd, pebble, [["who.test"]], global_first=f"ACMENotifyCommand {script}")
    res = a2acme("--store", store_of(httpd), "revoke", "who.test", "--no-renew",
                 "--ca-file", pebble.ca_file)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [ln.split() for ln in (out_dir / "events").read_text().splitlines()]
    revoked = [ln for ln in lines if ln[0] == "revoked"]
    assert len(revoked) == 1, lines
    user = pwd.getpwnam(USER)
    # uid, gid and the supplementary groups: nothing of root's is left.
    assert revoked[0][2:] == [str(user.pw_uid), str(user.pw_gid), str(user.pw_gid)], revoked


def test_a_hanging_configtest_is_killed_and_tried_again(httpd, pebble, workdir, monkeypatch):
    monkeypatch.setenv("ACME_TEST_CONFIGTEST_TIMEOUT", "3")
    inc = Path(workdir) / "inc"
    inc.mkdir()
    # A directive of its own makes the directory one the parent watches for changes.
    (inc / "base.conf").write_text("ServerAdmin admin@example.test\n")
    serials = issued_site(httpd, pebble, [["hang.test"]],
                          global_first=f"ACMEActivation restart\nIncludeOptional {inc}/*.conf")
    fifo = inc / "hang.conf"
    os.mkfifo(fifo)
    try:
        renew(httpd, "hang.test")
        harness.wait_for(lambda: log_has(httpd, "did not finish within 3 s and was killed"), 90,
                         "the hanging configuration test to be killed")
        harness.wait_for(lambda: log_has(httpd, "configuration test did not finish in time"), 20,
                         "activation to wait")
        assert httpd.running()
        assert hex_serial(served_cert(httpd, "hang.test")) == hex_serial(serials["hang.test"])
        assert configtests_running(httpd.conf_path) == []
    finally:
        unblock_fifo(fifo)
    # The next attempt finds a configuration that parses and activates the new certificate.
    wait_for_new_cert(httpd, "hang.test", serials["hang.test"], timeout=90)
    assert httpd.running()


def test_configtest_runs_when_the_httpd_binary_was_replaced(httpd, pebble, workdir):
    binary = Path(workdir) / "sbin" / "apache2"
    binary.parent.mkdir()
    shutil.copy2(harness.HTTPD_BIN, binary)
    argv = httpd._argv
    httpd._argv = lambda *extra: [str(binary), *argv(*extra)[1:]]
    inc = Path(workdir) / "inc"
    inc.mkdir()
    # A directive of its own makes the directory one the parent watches for changes.
    (inc / "base.conf").write_text("ServerAdmin admin@example.test\n")
    serials = issued_site(httpd, pebble, [["exe.test"]],
                          global_first=f"ACMEActivation restart\nIncludeOptional {inc}/*.conf")
    # A package upgrade: the new binary is renamed over the running one.
    fresh = binary.with_name("apache2.dpkg-new")
    shutil.copy2(harness.HTTPD_BIN, fresh)
    os.replace(fresh, binary)
    assert os.readlink(f"/proc/{httpd.proc.pid}/exe").endswith(" (deleted)")
    # A changed configuration, so that the test really runs.
    (inc / "note.conf").write_text("# edited by the admin\n")
    mark = len(httpd.log_text())
    renew(httpd, "exe.test")
    wait_for_new_cert(httpd, "exe.test", serials["exe.test"], timeout=90)
    later = httpd.log_text()[mark:]
    assert "testing the configuration before activating exe.test" in later, later
    assert httpd.running()


def test_a_replaced_module_file_is_tested_before_the_restart(httpd, pebble, workdir):
    mod = Path(workdir) / "modules" / "mod_headers.so"
    mod.parent.mkdir()
    shutil.copy2(harness.HTTPD_MODULES / "mod_headers.so", mod)
    serials = issued_site(httpd, pebble, [["module.test"]],
                          global_first=f"ACMEActivation restart\nLoadModule headers_module {mod}")
    # The module replaced on disk (by rename, as a package manager does) with one that does not
    # load: a restart would stop the server, so the parent must test first.
    broken = mod.with_name("mod_headers.so.new")
    broken.write_bytes(b"this is not a shared object\n")
    os.utime(broken, (mod.stat().st_atime, mod.stat().st_mtime))
    os.replace(broken, mod)
    mark = len(httpd.log_text())
    renew(httpd, "module.test")
    harness.wait_for(lambda: "activation waiting: the configuration does not parse"
                     in httpd.log_text()[mark:] or not httpd.running(), 90,
                     "the configuration test to refuse the broken module")
    assert httpd.running(), httpd.log_text()[mark:]
    assert "mod_headers.so" in httpd.log_text()[mark:]
    assert hex_serial(served_cert(httpd, "module.test")) == hex_serial(serials["module.test"])
