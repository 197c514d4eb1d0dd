"""dns-01 end to end (issue 6): real httpd + mod_acme, Pebble validating dns-01 against
pebble-challtestsrv as its DNS server, whose TXT records the test hook (dns01_hook.py) sets and
clears through the management API, as an admin's ACMEDns01Command would at a DNS provider."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness
from acme_site import (site_config, served_cert, is_pebble_cert, wait_for_pebble_cert,
                       verify_chain, status)

HOOK_SRC = Path(__file__).resolve().parent / "dns01_hook.py"


def install_hook(workdir):
    """The hook and its record file where the unprivileged worker can run and write them."""
    hook = Path(workdir) / "dns01_hook.py"
    shutil.copy(HOOK_SRC, hook)
    hook.chmod(0o755)
    record = Path(workdir) / "dns01-calls.jsonl"
    record.write_text("")
    record.chmod(0o666)
    Path(workdir).chmod(0o777)      # teardown-fails-once leaves a flag file next to the record
    return hook, record


def calls(record):
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def vhosts(httpd, domains):
    out = []
    for names in domains:
        out += [f"<VirtualHost 127.0.0.1:{httpd.https_port}>", f"  ServerName {names[0]}"]
        if len(names) > 1:
            out.append("  ServerAlias " + " ".join(names[1:]))
        out += ["  SSLEngine on", "</VirtualHost>"]
    return "\n".join(out) + "\n"


def wait_status(httpd, name, pred, timeout=60):
    deadline = time.monotonic() + timeout
    dom = None
    while time.monotonic() < deadline:
        dom = status(httpd, name)
        if pred(dom):
            return dom
        time.sleep(0.5)
    raise AssertionError(f"status of {name} never matched: {dom}\n{httpd.log_text()[-5000:]}")


def last_error(dom):
    return ((dom.get("renewal") or {}).get("last_error") or {})


def test_wildcard_and_base_name_through_dns01(httpd, pebble, workdir):
    hook, record = install_hook(workdir)
    names = ["wild.test", "*.wild.test"]
    extra = "\n".join([
        f"ACMEDns01Command {hook} {pebble.challtestsrv.url} {record} teardown-fails-once",
        "ACMEDns01Timeout 20s",
        f"ACMEDns01Propagation check 127.0.0.1:{pebble.challtestsrv.dns_port} 30s",
        "ACMEChallenges dns-01",
    ])
    httpd.write_config(site_config(httpd, pebble, [names], global_first=extra))
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    text = wait_for_pebble_cert(httpd, names, timeout=90)
    assert "DNS:*.wild.test" in text and "DNS:wild.test" in text
    ok, out = verify_chain(httpd, pebble, "wild.test")
    assert ok, out
    # Any name under the wildcard reaches the vhost with ServerAlias *.wild.test: same certificate.
    sub = served_cert(httpd, "anything.wild.test")
    assert is_pebble_cert(sub, names)

    got = calls(record)
    setups = [c["argv"] for c in got if c["argv"][0] == "setup"]
    teardowns = [c["argv"] for c in got if c["argv"][0] == "teardown"]
    # One TXT record per authorization (base name and wildcard share the fqdn), values base64url
    # of a SHA-256: 43 characters.
    assert len(setups) == 2, got
    assert all(a[1] == "_acme-challenge.wild.test" and len(a[2]) == 43 for a in setups), setups
    assert setups[0][2] != setups[1][2]
    env = got[0]["env"]
    assert env["ACME_DOMAIN"] == "wild.test"
    assert env["ACME_NAMES"] == "wild.test *.wild.test"
    assert env["ACME_STORE_DIR"].endswith("acme")
    assert "HOME" not in env and env["PATH"].startswith("/usr/local/sbin")
    # The first teardown failed on purpose: it was remembered and repeated at the next run
    # (the worker runs again after the activation restart).
    store = httpd.root / "acme"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        teardowns = [c["argv"] for c in calls(record) if c["argv"][0] == "teardown"]
        done = {a[2] for a in teardowns}
        if all(s[2] in done for s in setups) and len(teardowns) >= 3 \
                and not (store / "jobs" / "wild.test.dns01.json").exists():
            break
        time.sleep(0.5)
    assert all(s[2] in done for s in setups), (setups, teardowns)
    assert len(teardowns) >= 3, teardowns
    assert not (store / "jobs" / "wild.test.dns01.json").exists()
    log = httpd.log_text()
    assert "teardown failed on purpose" in log
    assert "left by an earlier run" in log
    assert httpd.running()


def test_failing_hanging_hooks_and_fallback(httpd, pebble, workdir):
    hook, record = install_hook(workdir)
    url = pebble.challtestsrv.url
    domains = [["ok.test"], ["fail.test"], ["hang.test"], ["fallback.test"]]
    conf = "\n".join([
        f"ACMECertificateAuthority {pebble.directory_url}",
        f"ACMECACertificate {pebble.ca_file}",
        "ACMEAgreement accepted",
        "ACMEContactEmail admin@example.test",
        "<Location /acme-status>", "  SetHandler acme-status", "</Location>",
        "ACMEDomain ok.test",
        "<ACMEDomain fail.test>",
        f"  ACMEDns01Command {hook} {url} {record} fail",
        "  ACMEChallenges dns-01",
        "</ACMEDomain>",
        "<ACMEDomain hang.test>",
        f"  ACMEDns01Command {hook} {url} {record} hang",
        "  ACMEDns01Timeout 2s",
        "  ACMEChallenges dns-01",
        "</ACMEDomain>",
        # dns-01 preferred, but its hook fails: http-01 is tried for the name instead.
        "<ACMEDomain fallback.test>",
        f"  ACMEDns01Command {hook} {url} {record} fail",
        "  ACMEChallenges dns-01 http-01",
        "</ACMEDomain>",
    ]) + "\n" + vhosts(httpd, domains)
    httpd.write_config(conf)
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    wait_for_pebble_cert(httpd, ["ok.test"])
    wait_for_pebble_cert(httpd, ["fallback.test"])
    fail = wait_status(httpd, "fail.test", lambda d: last_error(d).get("message"))
    msg = last_error(fail)["message"]
    assert "ACMEDns01Command" in msg and "exit status 1" in msg, fail
    assert "the DNS provider refused the update" in msg
    hang = wait_status(httpd, "hang.test", lambda d: last_error(d).get("message"))
    msg = last_error(hang)["message"]
    assert "did not finish within 2 s" in msg, hang
    log = httpd.log_text()
    assert "fail.test" in log and "exit status 1" in log
    assert "hang.test" in log and "did not finish within 2 s" in log
    assert "trying http-01 for fallback.test instead" in log
    assert "Segmentation fault" not in log and "exit signal" not in log
    assert httpd.running()
    # Teardown ran for the failed setups too.
    got = [c["argv"] for c in calls(record)]
    assert any(a[0] == "teardown" and a[1] == "_acme-challenge.fail.test" for a in got), got


def test_configtest_refuses_missing_hook_and_wildcard_without_dns01(httpd_alone, workdir):
    h = httpd_alone
    missing = Path(workdir) / "no-such-hook"
    base = vhosts(h, [["w.test", "*.w.test"]])
    h.write_config(f"ACMEAgreement accepted\nACMEDomain w.test *.w.test\n"
                   f"ACMEDns01Command {missing} setup\n" + base)
    rc, out = h.configtest()
    assert rc != 0
    assert "ACMEDns01Command" in out and str(missing) in out and "No such file" in out, out

    notexec = Path(workdir) / "hook.txt"
    notexec.write_text("#!/bin/sh\n")
    notexec.chmod(0o644)
    h.write_config(f"ACMEAgreement accepted\nACMEDomain w.test *.w.test\n"
                   f"ACMEDns01Command {notexec}\n" + base)
    rc, out = h.configtest()
    assert rc != 0 and "not executable" in out, out

    h.write_config("ACMEAgreement accepted\nACMEDomain w.test *.w.test\n" + base)
    rc, out = h.configtest()
    assert rc != 0
    assert "*.w.test is a wildcard name" in out and "ACMEDns01Command" in out, out

    h.write_config(f"ACMEAgreement accepted\nACMEDomain w.test *.w.test\n"
                   f"ACMEDns01Command /bin/true\nACMEChallenges http-01\n" + base)
    rc, out = h.configtest()
    assert rc != 0 and "does not list dns-01" in out, out

    h.write_config(f"ACMEAgreement accepted\nACMEDomain w.test *.w.test\n"
                   f"ACMEDns01Command /bin/true\nACMEDns01Propagation soon\n" + base)
    rc, out = h.configtest()
    assert rc != 0 and "ACMEDns01Propagation" in out, out

    h.write_config(f"ACMEAgreement accepted\nACMEDomain w.test *.w.test\n"
                   f"ACMEDns01Command /bin/true\nACMEDns01Timeout 5s\n"
                   f"ACMEDns01Propagation 2s\n" + base)
    rc, out = h.configtest()
    assert rc == 0, out


def test_specific_managed_name_wins_over_wildcard(httpd, pebble, workdir):
    hook, record = install_hook(workdir)
    conf = "\n".join([
        f"ACMECertificateAuthority {pebble.directory_url}",
        f"ACMECACertificate {pebble.ca_file}",
        "ACMEAgreement accepted",
        "ACMEContactEmail admin@example.test",
        f"ACMEDns01Command {hook} {pebble.challtestsrv.url} {record} ok",
        "ACMEDns01Propagation 1s",
        "ACMEDomain wild2.test *.wild2.test",
        "ACMEDomain shop.wild2.test",
    ]) + "\n" + vhosts(httpd, [["shop.wild2.test"], ["api.wild2.test"],
                               ["wild2.test", "*.wild2.test"]])
    # httpd gives a request to the first virtual host whose names match, so the specific vhosts
    # come before the one with the wildcard alias (as the admin guide says).
    httpd.write_config(conf)
    rc, out = httpd.configtest()
    assert rc == 0, out
    httpd.start()
    wait_for_pebble_cert(httpd, ["wild2.test", "*.wild2.test"], timeout=90)
    shop = wait_for_pebble_cert(httpd, ["shop.wild2.test"])
    assert "*.wild2.test" not in shop
    # A vhost of its own whose name only the wildcard covers is given the wildcard certificate.
    assert is_pebble_cert(served_cert(httpd, "api.wild2.test"), ["wild2.test", "*.wild2.test"])
    assert is_pebble_cert(served_cert(httpd, "other.wild2.test"), ["*.wild2.test"])
    # The wildcard went through dns-01, the specific name through http-01 (automatic choice).
    setups = [c["argv"] for c in calls(record) if c["argv"][0] == "setup"]
    assert {a[1] for a in setups} == {"_acme-challenge.wild2.test"}, setups


NAMED = shutil.which("named") or "/usr/sbin/named"
NSUPDATE = shutil.which("nsupdate")
TSIG_KEYGEN = shutil.which("tsig-keygen") or "/usr/sbin/tsig-keygen"
NSUPDATE_HOOK = harness.REPO / "docs" / "examples" / "acme-dns01-nsupdate"


def start_named(workdir):
    """BIND serving zone bind.test on loopback, accepting TSIG-signed updates of TXT records."""
    zdir = Path(workdir) / "named"
    zdir.mkdir()
    port = harness.free_port()
    key = subprocess.run([TSIG_KEYGEN, "-a", "hmac-sha256", "acme-test"], capture_output=True,
                         text=True, check=True).stdout
    (zdir / "acme-test.key").write_text(key)
    (zdir / "acme-test.key").chmod(0o644)        # the hook runs as the httpd User
    (zdir / "bind.test.zone").write_text(
        "$TTL 60\n"
        "@ IN SOA ns.bind.test. admin.bind.test. 1 60 60 600 60\n"
        "@ IN NS ns.bind.test.\n"
        "ns IN A 127.0.0.1\n"
        "@ IN A 127.0.0.1\n"
        "* IN A 127.0.0.1\n")
    (zdir / "named.conf").write_text(
        f'include "{zdir}/acme-test.key";\n'
        f'options {{ directory "{zdir}"; pid-file "{zdir}/named.pid"; '
        f'listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; '
        'recursion no; dnssec-validation no; };\n'
        f'zone "bind.test" {{ type primary; file "{zdir}/bind.test.zone"; '
        'update-policy { grant acme-test zonesub TXT; }; };\n')
    proc = harness.start_process("named", [NAMED, "-g", "-c", str(zdir / "named.conf")],
                                 zdir / "named.log")
    harness.wait_for(lambda: harness.port_open(port) or proc.poll() is not None, 20,
                     "named to listen")
    if proc.poll() is not None:
        raise RuntimeError("named exited: " + (zdir / "named.log").read_text())
    return proc, port, zdir / "acme-test.key"


def dig_txt(port, name):
    res = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "TXT", name],
                         capture_output=True, text=True, timeout=20)
    return res.stdout.strip()


@pytest.mark.skipif(not (os.path.exists(NAMED) and NSUPDATE and shutil.which("dig")),
                    reason="needs bind9 and bind9-dnsutils (test/install-deps.sh)")
def test_example_nsupdate_hook_against_bind(workdir):
    named, port, keyfile = start_named(workdir)
    pebble = harness.Pebble(workdir)
    start_challtestsrv = pebble.challtestsrv.start

    def challtestsrv_then_point_pebble_at_bind():
        start_challtestsrv()
        pebble.challtestsrv.dns_port = port     # Pebble resolves through BIND instead
        return pebble.challtestsrv

    pebble.challtestsrv.start = challtestsrv_then_point_pebble_at_bind
    httpd = None
    try:
        pebble.start()
        httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
        hook = Path(workdir) / "acme-dns01-nsupdate"
        shutil.copy(NSUPDATE_HOOK, hook)
        hook.chmod(0o755)
        names = ["bind.test", "*.bind.test"]
        extra = "\n".join([
            f"ACMEDns01Command {hook} 127.0.0.1 {keyfile} bind.test {port}",
            f"ACMEDns01Propagation check 127.0.0.1:{port} 30s",
            "ACMEChallenges dns-01",
        ])
        httpd.write_config(site_config(httpd, pebble, [names], global_first=extra))
        rc, out = httpd.configtest()
        assert rc == 0, out
        httpd.start()
        text = wait_for_pebble_cert(httpd, names, timeout=90)
        assert "DNS:*.bind.test" in text
        # Teardown removed both values from the zone.
        deadline = time.monotonic() + 20
        while dig_txt(port, "_acme-challenge.bind.test") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert dig_txt(port, "_acme-challenge.bind.test") == ""
    finally:
        if httpd:
            httpd.stop()
        pebble.stop()
        harness.stop_process(named)


def run_nsupdate_hook(workdir, *args):
    """The example hook with a stand-in nsupdate that records the command stream it gets."""
    log = Path(workdir) / "nsupdate-input"
    fake = Path(workdir) / "fake-nsupdate"
    fake.write_text(f"#!/bin/sh\ncat >> '{log}'\n")
    fake.chmod(0o755)
    env = dict(os.environ, NSUPDATE=str(fake))
    res = subprocess.run(["/bin/sh", str(NSUPDATE_HOOK), *args], capture_output=True, text=True,
                         env=env, timeout=20)
    return res, (log.read_text() if log.exists() else "")


def test_example_nsupdate_hook_refuses_command_injection(workdir):
    """A name, value, server, zone or port that could carry an nsupdate command never reaches
    nsupdate; a sound request still does, as one update."""
    res, stream = run_nsupdate_hook(workdir, "127.0.0.1", "/k", "bind.test", "5353", "setup",
                                    "_acme-challenge.www.bind.test", "abc-DEF_1")
    assert res.returncode == 0, res.stderr
    assert stream == ("server 127.0.0.1 5353\nzone bind.test\n"
                      'update add _acme-challenge.www.bind.test. 60 IN TXT "abc-DEF_1"\nsend\n')
    injected = "\nupdate add evil.bind.test. 60 IN A 192.0.2.1\nsend"
    bad = [
        ("127.0.0.1", "/k", "setup", "_acme-challenge.www.bind.test" + injected, "abc"),
        ("127.0.0.1", "/k", "setup", "_acme-challenge.www.bind.test. IN A", "abc"),
        ("127.0.0.1", "/k", "setup", "_acme-challenge.a\rb", "abc"),
        ("127.0.0.1", "/k", "setup", "_acme-challenge.", "abc"),
        ("127.0.0.1", "/k", "teardown", "_acme-challenge.www.bind.test", "abc" + injected),
        ("127.0.0.1" + injected, "/k", "setup", "_acme-challenge.www.bind.test", "abc"),
        ("127.0.0.1", "/k", "bind.test" + injected, "setup", "_acme-challenge.www.bind.test", "abc"),
        ("127.0.0.1", "/k", "bind.test", "53" + injected, "setup", "_acme-challenge.x.bind.test",
         "abc"),
    ]
    for args in bad:
        res, after = run_nsupdate_hook(workdir, *args)
        assert res.returncode == 2, (args, res.stderr)
        assert after == stream, args            # nothing more reached nsupdate
        assert "evil" not in res.stderr
