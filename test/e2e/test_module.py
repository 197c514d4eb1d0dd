"""The module loads into Debian's apache2 with mod_ssl, serves, stops, and rejects bad directives."""
import json

import pytest

import harness

STATUS_LOCATION = """
<Location /acme-status>
  SetHandler acme-status
</Location>
"""


def test_httpd_with_module_starts_answers_and_stops(httpd_alone):
    httpd_alone.write_config(STATUS_LOCATION)
    rc, out = httpd_alone.configtest()
    assert rc == 0, out
    httpd_alone.start()
    status, body, headers = httpd_alone.get("/acme-status")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["version"]
    status, body, _ = httpd_alone.get("/index.html")
    assert status == 200 and "hello" in body
    httpd_alone.stop()
    assert not httpd_alone.running()
    assert not harness.port_open(httpd_alone.http_port)


BAD_DIRECTIVES = [
    ("ACMEParallelOrders 0", "not a whole number from 1 to"),
    ("ACMEParallelOrders many", "not a whole number from 1 to"),
    ("ACMEParallelOrders 1000", "not a whole number from 1 to"),
    ("ACMEAutoRestart maybe", "must be On or Off"),
    ('ACMEStoreDir ""', "takes one argument"),
]


@pytest.mark.parametrize("line,reason", BAD_DIRECTIVES, ids=[b[0] for b in BAD_DIRECTIVES])
def test_bad_directive_fails_configtest_with_file_line_and_reason(httpd_alone, line, reason):
    conf = httpd_alone.write_config(STATUS_LOCATION + line + "\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    assert f"line {httpd_alone.line_of(line)} of {conf}" in out, out
    assert reason in out, out


def test_pebble_stack_serves_directory(pebble):
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=str(pebble.ca_file))
    with urllib.request.urlopen(pebble.directory_url, context=ctx, timeout=10) as resp:
        directory = json.loads(resp.read())
    assert directory["newOrder"].startswith("https://127.0.0.1:")
    assert ("GET", "/dir") in pebble.requests()
    assert "BEGIN CERTIFICATE" in pebble.root_pem()
