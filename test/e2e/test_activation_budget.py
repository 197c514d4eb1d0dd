"""The restart budget (ACMEActivationInterval, issue 18): renewed certificates landing a few
seconds apart are activated by at most one graceful restart per interval, and one that lands
inside an interval is activated when it ends, not later. Restarts are counted from the error
log (as test_load.py does); the only times checked are the budget's own, with generous bounds."""
import re
from datetime import datetime

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, serial_of

INTERVAL = 30
# 600 s certificates: a renewal is not urgent (10 % of the lifetime is 60 s away), so the budget
# applies. Renewed at 97 % and 96 % of the lifetime left: 18 s and 24 s after issuance.
TEN_MINUTES = {"config": {"certificateValidityPeriod": 600}}
SELF_RESTART = "are ready and the configuration parses; restarting gracefully"


def _time(line):
    m = re.match(r"\[(\w{3} \w{3} \d+ [\d:.]+ \d{4})\]", line)
    return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()


def _lines(httpd, needle):
    return [(_time(l), l) for l in httpd.log_text().splitlines()
            if needle in l and l.startswith("[")]


def _config(httpd, pebble, domains):
    conf = site_config(httpd, pebble, [], global_first=f"ACMEActivationInterval {INTERVAL}s\n"
                                                       "ACMERenewalInfo off\n")
    for name, window in domains:
        conf += (f"<ACMEDomain {name}>\n  ACMERenewWindow {window}\n</ACMEDomain>\n"
                 f"<VirtualHost 127.0.0.1:{httpd.https_port}>\n  ServerName {name}\n"
                 "  SSLEngine on\n</VirtualHost>\n")
    return conf


@pytest.mark.parametrize("pebble", [TEN_MINUTES], indirect=True)
def test_renewals_share_one_restart_per_interval(httpd, pebble):
    domains = [("a.budget.test", "97%"), ("b.budget.test", "96%")]
    httpd.write_config(_config(httpd, pebble, domains))
    httpd.start()
    first = {name: serial_of(wait_for_pebble_cert(httpd, [name])) for name, _ in domains}
    # First certificates go at once (the sites wait behind the fallback): one restart or two.
    issuance_restarts = _lines(httpd, SELF_RESTART)
    assert 1 <= len(issuance_restarts) <= 2, issuance_restarts
    last_issuance = issuance_restarts[-1][0]

    renewed = {name: serial_of(wait_for_pebble_cert(httpd, [name], timeout=90,
                                                    not_serial=first[name]))
               for name, _ in domains}
    assert all(renewed[n] != first[n] for n in renewed)
    restarts = _lines(httpd, SELF_RESTART)[len(issuance_restarts):]
    staged = {name: [t for t, _ in _lines(httpd, f"{name}: new certificate staged")]
              for name, _ in domains}
    log = httpd.log_text()
    # Both renewals landed inside the interval that began with the last issuance restart ...
    assert all(len(staged[n]) >= 2 and staged[n][1] < last_issuance + INTERVAL for n in staged), \
        (staged, last_issuance, log[-4000:])
    assert "wait for the restart budget (ACMEActivationInterval)" in log, log[-4000:]
    # ... and one restart at its end activated both of them.
    assert len(restarts) >= 1, log[-4000:]
    at, line = restarts[0]
    assert all(n in line for n in staged), line
    assert at >= last_issuance + INTERVAL - 1, (at, last_issuance)
    assert at <= last_issuance + INTERVAL + 20, (at, last_issuance)
    # Never two restarts inside one interval (a third renewal may have come meanwhile).
    times = [t for t, _ in issuance_restarts[-1:] + restarts]
    assert all(b - a >= INTERVAL - 1 for a, b in zip(times, times[1:])), times
    assert "scoreboard is full" not in log and "seg fault" not in log
