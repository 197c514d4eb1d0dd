"""Prometheus metrics (issue 18): SetHandler acme-metrics on a real httpd after real issuances
from Pebble, parsed with the real Prometheus parser (python3-prometheus-client) and checked
against the status JSON; the counters survive a graceful restart; no secret in the text."""
import re
import time
import urllib.request
from email.utils import parsedate_to_datetime

from prometheus_client.parser import text_string_to_metric_families

import harness
from acme_site import site_config, status, wait_for_pebble_cert

METRICS_LOCATION = "<Location /acme-metrics>\n  SetHandler acme-metrics\n</Location>\n"

FAMILIES = {
    "acme_certificate_not_after_seconds": "gauge", "acme_certificate_not_before_seconds": "gauge",
    "acme_renewal_next_seconds": "gauge", "acme_renewal_failures": "gauge",
    "acme_domain_state": "gauge", "acme_orders": "counter", "acme_ca_requests": "counter",
    "acme_activations": "counter", "acme_challenges": "counter",
    "acme_badnonce_retries": "counter", "acme_worker_up": "gauge",
    "acme_store_problems": "gauge",
}


def scrape(httpd):
    """(Content-Type, text, {family name: family}) of one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{httpd.http_port}/acme-metrics",
                                timeout=10) as resp:
        assert resp.status == 200
        ctype = resp.headers["Content-Type"]
        text = resp.read().decode()
    return ctype, text, {f.name: f for f in text_string_to_metric_families(text)}


def value(families, family, sample, **labels):
    found = [s.value for s in families[family].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (sample, labels, families[family].samples)
    return found[0]


def orders_done(httpd):
    try:
        _, _, fam = scrape(httpd)
    except OSError:
        return False
    return value(fam, "acme_orders", "acme_orders_total", result="success") >= 2


def check_against_status(fam, st):
    for dom in st["domains"]:
        name = dom["name"]
        assert dom["state"] == "valid", dom
        for state_sample in fam["acme_domain_state"].samples:
            if state_sample.labels["domain"] == name:
                want = 1 if state_sample.labels["state"] == dom["state"] else 0
                assert state_sample.value == want, (state_sample, dom["state"])
        assert value(fam, "acme_renewal_failures", "acme_renewal_failures",
                     domain=name) == dom["renewal"]["failures"]
        next_at = parsedate_to_datetime(dom["next_renewal"]).timestamp()
        assert value(fam, "acme_renewal_next_seconds", "acme_renewal_next_seconds",
                     domain=name) == next_at
        assert dom["certificates"], dom
        for cert in dom["certificates"]:
            labels = {"domain": name, "key_type": cert["key_type"]}
            assert value(fam, "acme_certificate_not_after_seconds",
                         "acme_certificate_not_after_seconds", **labels) \
                == cert["not_after_epoch"]
            assert value(fam, "acme_certificate_not_before_seconds",
                         "acme_certificate_not_before_seconds", **labels) \
                == cert["not_before_epoch"]


def test_metrics_parse_match_status_and_survive_graceful(httpd, pebble):
    domains = [["m1.metrics.test", "www.m1.metrics.test"], ["m2.metrics.test"]]
    httpd.write_config(site_config(httpd, pebble, domains, extra=METRICS_LOCATION))
    httpd.start()
    for names in domains:
        wait_for_pebble_cert(httpd, names)
    # The worker adds its counts to the store when its run ends.
    harness.wait_for(lambda: orders_done(httpd), 40, "the orders in acme_orders_total")
    # Hot activation serves before the next worker run plans the renewals: wait for that plan.
    harness.wait_for(lambda: all(d.get("next_renewal") for d in status(httpd)["domains"]), 40,
                     "the renewals planned")

    ctype, text, fam = scrape(httpd)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    for name, kind in FAMILIES.items():
        assert fam[name].type == kind, name
        assert fam[name].documentation, name
        assert f"# HELP {name}" in text and f"# TYPE {name}" in text
    check_against_status(fam, status(httpd))
    orders = value(fam, "acme_orders", "acme_orders_total", result="success")
    assert orders >= 2
    assert value(fam, "acme_orders", "acme_orders_total", result="failure") == 0
    assert value(fam, "acme_ca_requests", "acme_ca_requests_total",
                 ca=pebble.directory_url, result="ok") > 0
    assert value(fam, "acme_challenges", "acme_challenges_total", type="http-01",
                 result="valid") >= 3
    assert value(fam, "acme_activations", "acme_activations_total", result="success") >= 2
    assert value(fam, "acme_worker_up", "acme_worker_up") == 1
    assert value(fam, "acme_store_problems", "acme_store_problems") == 0

    # No secrets: no PEM, no key material, no key authorization (token.thumbprint).
    assert "BEGIN" not in text and "PRIVATE" not in text
    assert not re.search(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}", text)
    key_pems = [p.read_text() for p in (httpd.root / "acme" / "domains").glob("*/*.key")]
    for pem in key_pems:
        body = "".join(pem.strip().splitlines()[1:-1])
        assert body[:40] not in text

    # Counters live in the store, not in a child: a graceful restart keeps them.
    httpd.graceful()
    time.sleep(2)
    harness.wait_for(lambda: orders_done(httpd), 20, "the server to answer after the restart")
    _, _, after = scrape(httpd)
    assert value(after, "acme_orders", "acme_orders_total", result="success") >= orders
    check_against_status(after, status(httpd))
    assert httpd.running()


def test_metrics_only_get(httpd_alone):
    httpd_alone.write_config(METRICS_LOCATION)
    httpd_alone.start()
    req = urllib.request.Request(f"http://127.0.0.1:{httpd_alone.http_port}/acme-metrics",
                                 data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    assert code == 405
    _, text, fam = scrape(httpd_alone)
    assert value(fam, "acme_orders", "acme_orders_total", result="success") == 0
