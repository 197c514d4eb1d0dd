"""mod_acme's section of mod_status's server-status page (issue 18), against the real mod_status
of Debian's apache2: the HTML section and the ?auto lines, checked against the status JSON."""
import re
import time
from email.utils import parsedate_to_datetime

import pytest

import harness
from acme_site import site_config, status, wait_for_pebble_cert

WARN_DAYS = 3650        # longer than Pebble's 5-year certificates: every served one is inside
BLOCKED = {"config": {"domainBlocklist": ["blocked.test"]}}
MOD_STATUS = (f"LoadModule status_module {harness.HTTPD_MODULES}/mod_status.so\n"
              "<Location /server-status>\n  SetHandler server-status\n</Location>\n")


def _auto(httpd):
    code, body, _ = httpd.get("/server-status?auto")
    assert code == 200, body
    return body, {k: v.strip() for k, v in re.findall(r"^(ACME\w+): (.*)$", body, re.M)}


def _epoch(rfc822):
    return int(parsedate_to_datetime(rfc822).timestamp()) if rfc822 else 0


def _expected(doc, now):
    """The ?auto values as the status JSON says them."""
    domains = doc["domains"]
    certs = [c for d in domains for c in d["certificates"]]
    renewals = [_epoch(d.get("next_renewal")) for d in domains if d.get("next_renewal")]
    return {
        "ACMEDomains": str(len(domains)),
        "ACMEDomainsValid": str(sum(d["state"].startswith("valid") for d in domains)),
        "ACMEDomainsFailing": str(sum(d["state"] in ("failing", "valid, renewal failing")
                                      for d in domains)),
        "ACMEDomainsExpiring": str(sum(any(now >= c["not_after_epoch"] - WARN_DAYS * 86400
                                           for c in d["certificates"]) for d in domains)),
        "ACMENextRenewal": str(min(renewals) if renewals else 0),
        "ACMEWorker": doc["worker"]["state"],
        "ACMELastActivation": str(max((c["activated_epoch"] for c in certs), default=0)),
    }


@pytest.mark.parametrize("pebble", [BLOCKED], indirect=True)
def test_server_status_section_matches_the_status(httpd, pebble):
    started = int(time.time())
    good = [["a.status.test"], ["b.status.test", "www.b.status.test"]]
    failing = ["fail.blocked.test"]
    httpd.write_config(site_config(httpd, pebble, good + [failing],
                                   global_first=f"ACMEWarnWindow {WARN_DAYS}d\n" + MOD_STATUS))
    httpd.start()
    for names in good:
        wait_for_pebble_cert(httpd, names)
    harness.wait_for(lambda: {d["name"]: d["state"] for d in status(httpd)["domains"]}
                     == {"a.status.test": "valid", "b.status.test": "valid",
                         "fail.blocked.test": "failing"}, 30, "the states to settle")
    # The worker may start or end between two reads: compare a snapshot the JSON confirms.
    for _ in range(20):
        before = status(httpd)
        body, auto = _auto(httpd)
        after = status(httpd)
        if before == after:
            break
        time.sleep(0.5)
    expected = _expected(after, time.time())
    assert auto == expected, (auto, expected, body)
    assert auto["ACMEDomains"] == "3" and auto["ACMEDomainsValid"] == "2"
    assert auto["ACMEDomainsFailing"] == "1" and auto["ACMEDomainsExpiring"] == "2"
    assert auto["ACMEWorker"] in ("running", "idle", "restarting")
    assert started - 2 <= int(auto["ACMELastActivation"]) <= time.time() + 1, auto
    assert int(auto["ACMENextRenewal"]) > time.time(), auto
    # mod_status's own lines are there too: this is the real server-status page.
    assert re.search(r"^ServerUptimeSeconds: \d+$", body, re.M), body
    # Counts only: no domain name, no path of the store.
    assert "status.test" not in body and "blocked.test" not in body and "/acme" not in body

    code, html, _ = httpd.get("/server-status")
    assert code == 200, html
    section = html[html.index("<h2>mod_acme</h2>"):]
    assert "<dt>Managed domains: 3</dt>" in section and "<dt>Valid: 2</dt>" in section
    assert "<dt>Renewal failing: 1</dt>" in section
    assert f"<dt>Renewal worker: {after['worker']['state']}</dt>" in section
    assert "status.test" not in html
