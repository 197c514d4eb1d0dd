"""A CA that misbehaves can't wedge or crash the client (issue 14).

Each case runs one whole issuance of test/acmedrv against hostile_ca.HostileCA, which answers
one request in one hostile way. The outcome must be a clear error (class, and a message naming
the URL and what was wrong), the driver must end on its own within its time limits, no
certificate may be written, and nothing may be sent to a host that is not the CA's.
"""
import re
import subprocess

import pytest

from hostile_ca import BEHAVIOURS, HostileCA
from test_protocol import run_driver

NAME = "hostile.example.test"
# A short whole-request limit, so the trickling cases end in seconds.
TIMEOUT = "2"
REFUSED = r"is not on the CA's host {url}; refused, nothing is sent there"

# behaviour -> (error class, regular expression the message must match)
EXPECTED = {
    "trickle-headers": ("retry-soon", r"GET {dir} failed: .*timed out"),
    "trickle-body": ("retry-soon", r"GET {dir} failed: .*timed out"),
    "huge-body": ("retry-soon", r"GET {dir}: response larger than 1048576 bytes"),
    "huge-chunked": ("retry-soon", r"POST {url}/order: response larger than 1048576 bytes"),
    "html-directory": ("retry-soon", r"the ACME directory {dir} is not a JSON object "
                       r"\(got text/html, 52 bytes: \"<html><body><h1>Welcome to nginx!"),
    "text-order": ("permanent", r"newOrder for {name}: the CA sent no valid order object "
                   r"\(got text/plain, 24 bytes: \"order created, thank you\"\)"),
    "truncated-directory": ("retry-soon", r"the ACME directory {dir} is not a JSON object "
                            r"\(got application/json, \d+ bytes"),
    "truncated-order": ("permanent", r"order {url}/order/1: the CA sent no valid order object "
                        r"\(got application/json, \d+ bytes"),
    "octet-stream-order": ("permanent", r"order {url}/order/1: the CA sent no valid order "
                           r"object \(got application/octet-stream, 1024 bytes"),
    "array-directory": ("retry-soon", r"the ACME directory {dir} is not a JSON object"),
    "directory-wrong-types": ("admin-action", r"{dir} is not an ACME v2 directory"),
    "order-wrong-types": ("permanent", r"newOrder for {name}: the CA sent no valid order object"),
    "order-finalize-number": ("permanent",
                              r"newOrder for {name}: the CA sent no valid order object"),
    "authz-wrong-types": ("retry-soon", r"authorization {url}/authz/1: not a valid "
                          r"authorization object \(got application/json"),
    "redirect-directory": ("admin-action", r"GET directory {dir}: HTTP 301 redirect to "
                           r"{url}/moved/dir, not followed"),
    "redirect-order": ("permanent", r"order {url}/order/1: HTTP 307 redirect to "
                       r"{url}/moved/order/1, not followed"),
    "problem-200-directory": ("retry-soon", r"GET directory {dir}: a problem document with "
                              r"HTTP 200"),
    "problem-200-order": ("retry-soon", r"order {url}/order/1: a problem document with HTTP 200"),
    "foreign-order": ("permanent", r"newOrder for {name}: the order URL {foreign}/order/1 "
                      r"{refused}"),
    "foreign-authz": ("permanent", r"newOrder for {name}: authorization {foreign}/authz/1 "
                      r"{refused}"),
    "foreign-challenge": ("permanent", r"authorization {url}/authz/1: http-01 challenge "
                          r"{foreign}/chal/1 {refused}"),
    "foreign-finalize": ("permanent", r"order {url}/order/1: finalize URL {foreign}/finalize/1 "
                         r"{refused}"),
    "foreign-certificate": ("permanent", r"finalize of order {url}/order/1: certificate URL "
                            r"{foreign}/cert/1 {refused}"),
    "leaf-other-key": ("permanent", r"certificate {url}/cert/1 is unusable: the leaf "
                       r"certificate is for another key than the one in our CSR"),
    "leaf-other-names": ("permanent", r"certificate {url}/cert/1 is unusable: the leaf "
                         r"certificate is not for the names ordered: certificate does not "
                         r"cover dns:" + re.escape(NAME)),
    "cert-as-json": ("permanent", r"certificate {url}/cert/1 is unusable: .*no certificate "
                     r"\(got application/json"),
}


@pytest.fixture
def hostile(request, workdir):
    server = HostileCA(workdir, request.param).start()
    try:
        yield server
    finally:
        server.stop()


def issue(ca, workdir):
    return run_driver("--dir", ca.directory_url, "--state", workdir / "state",
                      "--timeout", TIMEOUT, "--connect-timeout", "1", "--poll-timeout", "10",
                      "issue", "--skip-provision", NAME, timeout=60)


def test_every_behaviour_has_an_expectation():
    assert sorted(EXPECTED) == sorted(BEHAVIOURS)


@pytest.mark.parametrize("hostile", [None], indirect=True)
def test_well_behaved_fake_ca_issues(hostile, workdir):
    """The control: without a misbehaviour the fake CA's certificate is accepted and written."""
    run = issue(hostile, workdir)
    assert run.rc == 0, run
    assert run.out["certificate"]["sans"] == [NAME]
    assert (workdir / "state" / "cert.pem").exists()
    text = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                           str(workdir / "state" / "cert.pem")],
                          capture_output=True, text=True, check=True).stdout
    assert "hostile" in text or NAME in text


@pytest.mark.parametrize("hostile", sorted(BEHAVIOURS), indirect=True)
def test_hostile_ca_is_a_clear_error(hostile, workdir, record_property):
    run = issue(hostile, workdir)
    record_property("elapsed_s", round(run.elapsed, 2))
    print(f"\n{hostile.behaviour}: {run.elapsed:.2f} s, rc={run.rc}, "
          f"class={run.error.get('class')}: {run.error.get('message')}")
    assert run.rc == 1, run
    cls, pattern = EXPECTED[hostile.behaviour]
    pattern = pattern.format(dir=re.escape(hostile.directory_url), url=re.escape(hostile.url),
                             foreign=re.escape(hostile.foreign.url), name=re.escape(NAME),
                             refused=REFUSED.format(url=re.escape(hostile.url)))
    message = run.error.get("message") or ""
    assert re.search(pattern, message), f"{message!r} does not match {pattern!r}"
    assert "\n" not in message
    assert run.error["class"] == cls, run
    assert not (workdir / "state" / "cert.pem").exists(), "nothing may be written"
    assert hostile.foreign.requests == [], "a request went to a host that is not the CA's"
