"""Issue 15, `ACMEProxy url|none [ca]` with a real proxy: Debian's tinyproxy on loopback in front
of the CA (the CA front ca_proxy.CaProxy passing everything to one shared Pebble). The direct
route is blocked: tinyproxy's outgoing connections leave from 127.0.0.2 and the CA front closes
every connection from any other address, so an issuance proves that every ACME request went
through the proxy (the front's count of what it turned away stays 0).

- issuance through the proxy (`ACMEProxy url ca` beating `ACMEProxy none`), every CA request
  through it, the direct route refused; a2acme goes the same way;
- BasicAuth with user:password@ in the URL: issues, and the password is in no log (trace8),
  status or store file; later wrong credentials are a clear proxy error and the certificate
  stays;
- a proxy that refuses the CA's port (403) or is down: a clear error naming the proxy;
- `ACMEProxy none` and no directive with http(s)_proxy/ALL_PROXY in httpd's environment: direct.
The ACME challenge validation (Pebble to httpd) is not proxied."""
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, served_cert, serial_of
from ca_proxy import CaProxy
from proxy import Tinyproxy, OUTGOING, TINYPROXY_BIN

USER, PASSWORD, WRONG = "acme-user", "pr0xy-S3cret-pw", "wr0ng-S3cret-pw"
A2ACME = harness.BUILD_DIR / "src" / "a2acme"

pytestmark = pytest.mark.skipif(not Path(TINYPROXY_BIN).exists(),
                                reason="tinyproxy is not installed (test/install-deps.sh)")


@pytest.fixture(scope="module")
def shared_pebble():
    """One Pebble for the whole module: each test brings its own httpd, front and proxy."""
    workdir = harness.make_workdir()
    server = harness.Pebble(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def front(shared_pebble):
    server = CaProxy(shared_pebble)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def site(workdir, shared_pebble):
    server = harness.Httpd(workdir, http_port=shared_pebble.http_port,
                           https_port=shared_pebble.tls_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tinyproxy(workdir, front):
    """tinyproxy allowing CONNECT to the front's port only; a test may change it before start()."""
    server = Tinyproxy(workdir, [front.server.server_address[1]])
    try:
        yield server
    finally:
        server.stop()


def _config(httpd, pebble, front, domains, directives=""):
    ca = SimpleNamespace(directory_url=front.directory_url, ca_file=pebble.ca_file)
    return site_config(httpd, ca, domains, global_first=directives + "\nACMECheckInterval 1m",
                       extra="LogLevel info acme:trace8\n")


def _written(httpd):
    """Every file httpd and the module wrote (logs, store, domains.json) and the status; not
    httpd.conf, where the admin wrote the credentials."""
    parts = [p.read_bytes().decode(errors="replace") for p in Path(httpd.root).rglob("*")
             if p.is_file() and not p.is_symlink() and p != httpd.conf_path]
    parts.append(str(httpd.get("/acme-status")))
    return "\n".join(parts)


def _wait_for_log(httpd, text, timeout=60):
    harness.wait_for(lambda: text in httpd.log_text() or not httpd.running(), timeout,
                     f"{text!r} in the error log")
    assert httpd.running(), httpd.log_text()[-4000:]


def _direct_is_refused(front, ca_file):
    """A request from here (127.0.0.1, not through the proxy) gets no answer from the front."""
    import ssl
    ctx = ssl.create_default_context(cafile=str(ca_file))
    try:
        urllib.request.urlopen(front.directory_url, context=ctx, timeout=10)
    except (urllib.error.URLError, ConnectionError, OSError):
        return True
    return False


def test_issues_through_the_proxy_and_never_direct(site, shared_pebble, front, tinyproxy):
    names = ["via-proxy.test"]
    front.accept_only_from(OUTGOING)
    tinyproxy.start()
    # The line naming the CA wins over the one for every CA.
    site.write_config(_config(site, shared_pebble, front, [names],
                              f"ACMEProxy none\nACMEProxy {tinyproxy.url()} {front.directory_url}"))
    site.start()
    wait_for_pebble_cert(site, names)
    assert front.turned_away == 0, "a request to the CA bypassed the proxy"
    tunnels = tinyproxy.connects()
    port = front.server.server_address[1]
    assert tunnels and all(t == f"127.0.0.1:{port}" for t in tunnels), tunnels
    assert len(front.received) >= 5, front.received
    print(f"\n{len(front.received)} CA requests through {len(tunnels)} proxy tunnels")
    assert f"is reached through the proxy {tinyproxy.url()}" in site.log_text()
    # a2acme talks to the CA the way the server does (the proxy from domains.json).
    res = _a2acme("--store", Path(site.root) / "acme", "account")
    assert res.returncode == 0 and "valid" in res.stdout, res.stdout + res.stderr
    assert front.turned_away == 0 and len(tinyproxy.connects()) > len(tunnels)
    assert _direct_is_refused(front, shared_pebble.ca_file)
    assert front.turned_away == 1


def _a2acme(*args):
    return subprocess.run([str(A2ACME), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_credentials_work_stay_secret_and_wrong_ones_keep_the_cert(site, shared_pebble, front,
                                                                  tinyproxy):
    names = ["auth-proxy.test"]
    front.accept_only_from(OUTGOING)
    tinyproxy.user, tinyproxy.password = USER, PASSWORD
    tinyproxy.start()
    site.write_config(_config(site, shared_pebble, front, [names],
                              f"ACMEProxy {tinyproxy.url(USER, PASSWORD)}"))
    site.start()
    old = serial_of(wait_for_pebble_cert(site, names))
    assert front.turned_away == 0 and tinyproxy.connects()
    written = _written(site)
    assert PASSWORD not in written, "the proxy password was written somewhere"
    assert USER not in written, "the proxy user name was written somewhere"
    domains = json.loads((Path(site.root) / "acme" / "domains.json").read_text())
    assert domains["domains"][0]["proxies"] == [
        {"ca": front.directory_url, "proxy": tinyproxy.url(), "credentials": True}]
    # a2acme cannot know the password: it says so, and takes it with --proxy.
    store = Path(site.root) / "acme"
    res = _a2acme("--store", store, "account")
    assert res.returncode == 1 and "pass --proxy" in res.stderr, res.stdout + res.stderr
    assert f"through the proxy {tinyproxy.url()} with a user and password" in res.stderr, \
        res.stderr
    res = _a2acme("--store", store, "account", "--proxy", tinyproxy.url(USER, PASSWORD))
    assert res.returncode == 0 and "valid" in res.stdout, res.stdout + res.stderr
    assert PASSWORD not in res.stdout + res.stderr and front.turned_away == 0

    # Wrong credentials at the next renewal: the proxy's error, retried, the old cert serves.
    site.stop()
    res = _a2acme("--store", Path(site.root) / "acme", "renew", names[0])
    assert res.returncode == 0, res.stderr
    site.write_config(_config(site, shared_pebble, front, [names],
                              f"ACMEProxy {tinyproxy.url(USER, WRONG)}"))
    site.start()
    _wait_for_log(site, "failed at the proxy, not at the CA")
    log = site.log_text()
    assert "requires authentication" in log and "check the user name and password" in log, \
        log[-4000:]
    assert f"the proxy http://***@127.0.0.1:{tinyproxy.port}" in log, log[-4000:]
    assert serial_of(served_cert(site, names[0])) == old
    status = str(site.get("/acme-status"))
    assert "failed at the proxy" in status, status
    written = _written(site)
    assert PASSWORD not in written and WRONG not in written and USER not in written


@pytest.mark.parametrize("case", ["refused", "down"])
def test_a_failing_proxy_is_named_as_the_cause(site, shared_pebble, front, tinyproxy, case):
    names = [f"{case}-proxy.test"]
    front.accept_only_from(OUTGOING)
    if case == "refused":
        tinyproxy.connect_ports = [harness.free_port()]     # not the CA's port: 403
        tinyproxy.start()
        url, expect = tinyproxy.url(), "refused the tunnel to the CA (HTTP 403 to CONNECT)"
    else:
        url, expect = f"http://{USER}:{PASSWORD}@127.0.0.1:{harness.free_port()}", \
            "cannot be reached"
    site.write_config(_config(site, shared_pebble, front, [names], f"ACMEProxy {url}"))
    site.start()
    _wait_for_log(site, "failed at the proxy, not at the CA")
    assert expect in site.log_text(), site.log_text()[-4000:]
    assert front.received == [] and front.turned_away == 0
    assert PASSWORD not in _written(site)


def test_none_and_no_directive_ignore_the_environment(site, shared_pebble, front, tinyproxy):
    tinyproxy.start()
    front.accept_only_from("127.0.0.1")     # direct only: through tinyproxy would be 127.0.0.2
    url = tinyproxy.url()
    site.env = {k: url for k in ("http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
                                 "all_proxy")}
    direct, unset = ["none-proxy.test"], ["unset-proxy.test"]
    conf = _config(site, shared_pebble, front, [direct, unset])
    conf = conf.replace(f"ACMEDomain {direct[0]}\n",
                        f"<ACMEDomain {direct[0]}>\n  ACMEProxy none\n</ACMEDomain>\n")
    site.write_config(conf)
    site.start()
    wait_for_pebble_cert(site, direct)
    wait_for_pebble_cert(site, unset)
    assert tinyproxy.connects() == [] and front.turned_away == 0


def test_two_proxies_for_one_ca_fail_configtest(httpd_alone):
    conf = httpd_alone.write_config(
        "<ACMEDomain a.test>\n  ACMEProxy http://u:topsecret@proxy-a:3128\n</ACMEDomain>\n"
        "<ACMEDomain b.test>\n  ACMEProxy http://proxy-b:3128\n</ACMEDomain>\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    assert "through http://***@proxy-a:3128 for ACMEDomain a.test" in out, out
    assert "one CA is reached one way" in out and str(conf) in out, out
    assert "topsecret" not in out


def test_a_proxy_for_a_ca_no_domain_uses_is_warned_about(httpd_alone):
    httpd_alone.write_config("ACMEProxy http://u:topsecret@proxy:3128 "
                             "https://acme-v02.api.letsencrypt.org/directory/\n"
                             "ACMEDomain a.test\n")
    rc, out = httpd_alone.configtest()
    assert "ACMEProxy http://***@proxy:3128 https://acme-v02.api.letsencrypt.org/directory/: " \
           "no domain uses that CA" in out, out
    assert "topsecret" not in out
