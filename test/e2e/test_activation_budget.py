"""The restart budget (ACMEActivationInterval, issue 18): renewed certificates landing a few
seconds apart are activated by at most one graceful restart per interval, and one that lands
inside an interval is activated when it ends, not later. Restarts are counted from the error
log (as test_load.py does); the only times checked are the budget's own, with generous bounds."""
import re
from datetime import datetime

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, serial_of

INTERVAL = 40
# 600 s certificates: a renewal is not urgent (10 % of the lifetime is 60 s away), so the budget
# applies. Renewed at 98 % and 96 % of the lifetime left: 12 s and 24 s after issuance, so the
# two land in different runs of the worker, seconds apart, inside the same interval.
TEN_MINUTES = {"config": {"certificateValidityPeriod": 600}}
SELF_RESTART = "are ready and the configuration parses; restarting gracefully"


def _time(line):
    m = re.match(r"\[(\w{3} \w{3} \d+ [\d:.]+ \d{4})\]", line)
    return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S.%f %Y").timestamp()


def _lines(httpd, needle):
    return [(_time(l), l) for l in httpd.log_text().splitlines()
            if needle in l and l.startswith("[")]


def _config(httpd, pebble, domains):
    conf = site_config(httpd, pebble, [], global_first="ACMEActivation restart\n"
                                                       f"ACMEActivationInterval {INTERVAL}s\n"
                                                       "ACMERenewalInfo off\n")
    for name, window in domains:
        conf += (f"<ACMEDomain {name}>\n  ACMERenewWindow {window}\n</ACMEDomain>\n"
                 f"<VirtualHost 127.0.0.1:{httpd.https_port}>\n  ServerName {name}\n"
                 "  SSLEngine on\n</VirtualHost>\n")
    return conf


@pytest.mark.parametrize("pebble", [TEN_MINUTES], indirect=True)
def test_renewals_share_one_restart_per_interval(httpd, pebble):
    domains = [("a.budget.test", "98%"), ("b.budget.test", "96%")]
    httpd.write_config(_config(httpd, pebble, domains))
    httpd.start()
    first = {name: serial_of(wait_for_pebble_cert(httpd, [name])) for name, _ in domains}
    # First certificates go at once (the sites wait behind the fallback): one restart or two.
    issuance_restarts = _lines(httpd, SELF_RESTART)
    assert 1 <= len(issuance_restarts) <= 2, issuance_restarts
    last_issuance = issuance_restarts[-1][0]

    for name, _ in domains:
        wait_for_pebble_cert(httpd, [name], timeout=120, not_serial=first[name])
    restarts = _lines(httpd, SELF_RESTART)[len(issuance_restarts):]
    log = httpd.log_text()
    landed = {}
    for name, _ in domains:
        staged = [t for t, _ in _lines(httpd, f"{name}: new certificate staged")]
        activated = [t for t, _ in _lines(httpd, f"mod_acme: {name}: new certificate activated")]
        assert len(staged) >= 2 and len(activated) >= 2, (name, log[-4000:])
        landed[name] = staged[1]
        # Activated at the latest when the interval it landed in ends (the monitor looks about
        # every 10 s: generous room), never before.
        due = max(staged[1], last_issuance + INTERVAL)
        after = [t for t in activated if t > staged[1]]
        assert after and last_issuance + INTERVAL - 1 <= after[0] <= due + 20, \
            (name, staged, activated, last_issuance)
    print(f"\nrenewals landed {abs(landed['b.budget.test'] - landed['a.budget.test']):.1f} s "
          f"apart; restarts at {[round(t - last_issuance, 1) for t, _ in restarts]} s after "
          "the last issuance restart")
    assert "wait for the restart budget (ACMEActivationInterval)" in log, log[-4000:]
    # Never two restarts inside one interval.
    times = [t for t, _ in issuance_restarts[-1:] + restarts]
    assert len(times) >= 2 and all(b - a >= INTERVAL - 1 for a, b in zip(times, times[1:])), \
        times
    # Both renewals landed inside the first interval: one restart activated both.
    if all(t < last_issuance + INTERVAL for t in landed.values()):
        assert all(n in restarts[0][1] for n in landed), restarts[0][1]
    assert "scoreboard is full" not in log and "seg fault" not in log
