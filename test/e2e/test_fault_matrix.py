"""Issue 14, the fault matrix: real httpd + real Pebble behind the steerable front (ca_proxy.py).
Each fault gets its own fronts (one per domain, so that every request a front records belongs to
one domain's conversation): the front passes the first issuance through, turns to its fault the
moment that certificate is downloaded, keeps it up while the renewal comes due and fails, then
lifts it. Throughout, real TLS handshakes check that every name keeps being served a valid
certificate; afterwards the store is parsed file by file and the orders are counted per name.

Faults that stall the worker (HANG: the request never returns until curl's 30 s timeout, and
the renewalInfo lookups of all domains are made one after the other) run in their own httpd,
the others together. The renewal backoff itself is unit-tested in
test/unit/test_plan.c; test_renewal.py covers the warnings and notifications of a failing renewal.
The figures are printed (and recorded as properties) for the closing note of issue 14; nothing
here asserts a timing except that no request comes before the instant a Retry-After named."""
import json
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import harness
from acme_site import site_config, serial_of, is_pebble_cert, store_damage
from ca_proxy import CaProxy, DOWN, FAIL, UNAVAILABLE, LIMITED, HANG, PASS

VALIDITY = 120              # Pebble's certificate lifetime (s)
RENEW_WINDOW = "110s"       # a renewal is due 10 s after each issuance
FAULT_SECONDS = 20          # how long each fault stays up once the first certificate is out
NAMES_PER_FAULT = 2

# (label, fault): a mode, or a schedule [(seconds, mode), ...] that ends in PASS by itself.
# Retry-After: a short one (below the module's one-minute floor) for 503, a long one for 429.
SWITCHING = [(4, DOWN), (4, FAIL), (4, UNAVAILABLE), (4, LIMITED), (4, FAIL)]
SWITCHING_HANG = [(4, DOWN), (6, FAIL), (10, HANG)]     # the renewal (due at +10 s) hangs
GROUPS = {
    "refusals": [("down", DOWN), ("500", FAIL), ("503+RA2", (UNAVAILABLE, 2)),
                 ("429+RA62", (LIMITED, 62)), ("switching", SWITCHING)],
    "hang": [("hang", HANG)],
    "switching+hang": [("switching+hang", SWITCHING_HANG)],
}


def _not_after(text):
    m = re.search(r"Not After\s*:\s*(.+? GMT)", text or "")
    return datetime.strptime(m.group(1), "%b %d %H:%M:%S %Y %Z").replace(
        tzinfo=timezone.utc).timestamp() if m else 0


class Fault:
    """One fault: its label, its fronts (one per name) and what the test saw of it."""

    def __init__(self, label, spec, pebble, index):
        self.label, self.spec = label, spec
        self.names = [f"f{index}-{n}.matrix.test" for n in range(NAMES_PER_FAULT)]
        self.fronts = {name: CaProxy(pebble) for name in self.names}
        self.started = {}           # name -> time the fault went up on its front
        self.lifted = {}            # name -> time it was lifted
        self.first = {}             # name -> (serial, notAfter) of the first certificate
        self.recovered = {}         # name -> time a new certificate was served
        self.lost = []              # (name, when, what) for every handshake without a valid
                                    # certificate once the first one was served
        self.orders_at_recovery = {}  # name -> newOrders accepted until it was renewed
        for name, front in self.fronts.items():
            front.on_issued = self._starter(name, front)

    def _starter(self, name, front):
        def start(count):
            if count != 1:
                return
            if isinstance(self.spec, list):
                front.run_schedule(self.spec)
            elif isinstance(self.spec, tuple):
                front.retry_after = self.spec[1]
                front.mode = self.spec[0]
            else:
                front.mode = self.spec
            self.started[name] = time.time()
        return start

    def fault_seconds(self):
        return sum(s for s, _ in self.spec) if isinstance(self.spec, list) else FAULT_SECONDS

    def lift_due(self, now):
        for name, front in self.fronts.items():
            if name in self.started and name not in self.lifted and \
                    now >= self.started[name] + self.fault_seconds():
                if isinstance(self.spec, list):     # it switched to PASS by itself, then
                    self.lifted[name] = self.started[name] + self.fault_seconds()
                else:
                    front.mode = PASS
                    self.lifted[name] = now

    def stop(self):
        for front in self.fronts.values():
            front.stop()


def _config(httpd, pebble, faults):
    domains = [[n] for f in faults for n in f.names]
    conf = site_config(httpd, pebble, domains, global_first=(
        f"ACMECheckInterval 1m\nACMERenewWindow {RENEW_WINDOW}\nACMEActivationInterval 0"))
    for f in faults:
        for name, front in f.fronts.items():
            conf = conf.replace(f"ACMEDomain {name}\n",
                                f"<ACMEDomain {name}>\n  ACMECertificateAuthority "
                                f"{front.directory_url}\n</ACMEDomain>\n")
    return conf


def _served(httpd, name):
    """The served certificate's text; one retry (a graceful restart may be under way)."""
    for attempt in range(2):
        text, _ = harness.tls_peer_cert(httpd.https_port, name)
        if text:
            return text
        time.sleep(0.3)
    return None


def _watch(httpd, faults, deadline):
    """Handshakes for every name about once a second until every name is served a renewed
    certificate or the deadline passes; lifts each fault when its time is up."""
    while time.time() < deadline:
        now = time.time()
        pending = 0
        for f in faults:
            f.lift_due(now)
            for name in f.names:
                if name in f.recovered:
                    continue
                pending += 1
                text = _served(httpd, name)
                seen = time.time()
                valid = is_pebble_cert(text, [name]) and _not_after(text) > seen
                if name not in f.first:
                    if valid:       # the first certificate is being activated until then
                        f.first[name] = (serial_of(text), _not_after(text))
                    continue
                if not valid:
                    f.lost.append((name, round(seen - f.started[name], 1),
                                   (text or "no certificate")[:300]))
                    continue
                if serial_of(text) != f.first[name][0]:
                    f.lift_due(seen)
                    f.recovered[name] = seen
                    f.orders_at_recovery[name] = _orders_per_name(f).get(name, 0)
                    assert name in f.lifted, f"{name} renewed while its CA was failing"
        if not pending:
            return
        assert httpd.running(), httpd.log_text()[-4000:]
        time.sleep(max(0.0, 1.0 - (time.time() - now)))


def _orders_per_name(f):
    counts = {}
    for front in f.fronts.values():
        for order in front.orders:
            for ident in order.get("identifiers", []):
                counts[ident.get("value")] = counts.get(ident.get("value"), 0) + 1
    return counts


def _retry_after_margins(f):
    """For every 503/429 a front sent, the time from the instant it named to the next request
    it received (negative: the module came back too early)."""
    margins = []
    for front in f.fronts.values():
        times = sorted(t for t, _, _, _ in front.received)
        for received, instant in front.announced:
            later = [t for t in times if t > received]
            if later:
                margins.append(later[0] - instant)
    return margins


def _figures(f, corrupt, store_files):
    margins = _retry_after_margins(f)
    refused = sum(front.refused for front in f.fronts.values())
    hit = sorted({mode for front in f.fronts.values() for _, _, _, mode in front.received
                  if mode != PASS})
    recovery = [f.recovered[n] - f.lifted[n] for n in f.names if n in f.recovered]
    return {
        "fault": f.label,
        "names": len(f.names),
        "fault_s": f.fault_seconds(),
        "refused": refused,
        "modes_hit": "+".join(hit) or None,
        "lost": len({n for n, _, _ in f.lost}),
        "corrupt": len(corrupt),
        "store_files": store_files,
        # The first issuance and the renewal: anything more until the renewal is served is a
        # duplicate (an order opened again instead of resumed).
        "dup_orders": sum(max(0, f.orders_at_recovery.get(n, 0) - 2) for n in f.names),
        "orders": sum(f.orders_at_recovery.values()),
        "ra_margin_min_s": round(min(margins), 1) if margins else None,
        "recovery_max_s": round(max(recovery), 1) if recovery else None,
    }


def _timeline(f):
    """What the first front of a fault saw, from the moment its fault went up: the requests it
    refused and the first ones after; for the log of a run."""
    name = f.names[0]
    front, t0 = f.fronts[name], f.started.get(name, 0)
    shown = [f"{t - t0:+.1f} {m} {p.split('/')[1][:12]} {mode}"
             for t, m, p, mode in front.received if t >= t0 - 0.5][:12]
    lifted = f.lifted.get(name, 0) - t0 if name in f.lifted else None
    return f"{f.label} ({name}, lifted at {lifted if lifted is None else round(lifted, 1)}): " \
           + "; ".join(shown)


def _table(rows):
    cols = ["fault", "names", "fault_s", "refused", "modes_hit", "lost", "corrupt", "store_files",
            "dup_orders", "orders", "ra_margin_min_s", "recovery_max_s"]
    lines = [" | ".join(cols)]
    for r in rows:
        lines.append(" | ".join("-" if r[c] is None else str(r[c]) for c in cols))
    return "\n".join(lines)


@pytest.mark.parametrize("pebble", [{"config": {"certificateValidityPeriod": VALIDITY}}],
                         indirect=True)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_fault_matrix(httpd, pebble, group, record_property):
    faults = [Fault(label, spec, pebble, i) for i, (label, spec) in enumerate(GROUPS[group])]
    try:
        httpd.write_config(_config(httpd, pebble, faults))
        rc, out = httpd.configtest()
        assert rc == 0, out
        httpd.start()
        begun = time.time()
        # Every name's first certificate comes through its front; the fault goes up as it lands.
        harness.wait_for(lambda: all(fr.issued for f in faults for fr in f.fronts.values())
                         or not httpd.running(), 90, "the first certificates", interval=0.2)
        # Watch until every name is renewed, at the latest until the first certificates expire.
        _watch(httpd, faults, begun + VALIDITY + 30)
        time.sleep(1)       # a store write in flight when the last renewal was seen
        store_files, corrupt, _ = store_damage(httpd.root / "acme")
        rows = [_figures(f, corrupt if i == 0 else [], store_files)
                for i, f in enumerate(faults)]
        table = _table(rows)
        print(f"\nfault matrix ({group}; {VALIDITY} s certificates renewed with {RENEW_WINDOW} "
              f"left; store: {store_files} files parsed):\n{table}")
        record_property("fault_matrix_" + group, table)
        print("\n".join(_timeline(f) for f in faults))
        for f in faults:
            assert not f.lost, (f.label, f.lost[:5])
            assert set(f.recovered) == set(f.names), (f.label, f.recovered,
                                                      httpd.log_text()[-6000:])
        assert not corrupt, corrupt
        for r in rows:
            assert r["dup_orders"] == 0, (r, [f.orders_at_recovery for f in faults])
            assert r["ra_margin_min_s"] is None or r["ra_margin_min_s"] >= 0, r
        for f in faults:
            for front in f.fronts.values():
                for received, instant in front.announced:
                    early = [t for t, _, _, _ in front.received if received < t < instant]
                    assert not early, (f.label, received, instant, early)
        assert httpd.running()
    finally:
        for f in faults:
            f.stop()


# ---------------------------------------------------------------------- a clock behind the CA's

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
BEHIND = 600


@pytest.fixture
def early_pebble(workdir, monkeypatch):
    """Pebble whose HTTPS certificate (made by harness.make_test_ca) starts a day ago, so that a
    client whose clock is behind still trusts the CA's server: only the issued certificates are
    "not yet valid" for it. Pebble itself (Go) runs on the real clock."""
    def backdated(*args, cwd=None):
        subprocess.run(["faketime", "-f", "-1d", "openssl", *args], check=True, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    monkeypatch.setattr(harness, "openssl", backdated)
    server = harness.Pebble(workdir)
    try:
        server.start()
        monkeypatch.undo()
        yield server
    finally:
        server.stop()


def _not_before(text):
    m = re.search(r"Not Before\s*:\s*(.+? GMT)", text or "")
    return datetime.strptime(m.group(1), "%b %d %H:%M:%S %Y %Z").replace(
        tzinfo=timezone.utc).timestamp() if m else 0


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="libfaketime (Debian faketime) missing")
def test_clock_behind_the_ca_activates_once_valid(early_pebble, workdir, record_property):
    """httpd runs 10 minutes behind (libfaketime; its offset is re-read from a file, so the
    test moves the clock). The certificate Pebble issues starts at Pebble's now, in httpd's
    future: the staged set must wait (not go to rejected/, no refusal line), then be activated
    and served once the clock reaches its notBefore."""
    pebble = early_pebble
    names = ["skew.matrix.test"]
    offset = Path(workdir) / "faketime-offset"
    offset.write_text(f"-{BEHIND}s\n")
    offset.chmod(0o644)
    httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
    httpd.env = {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset),
                 "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    store = httpd.root / "acme"
    try:
        httpd.write_config(site_config(httpd, pebble, [names], global_first=(
            "ACMECheckInterval 1m\nACMEActivationInterval 0")))
        httpd.start()
        staged = store / "staging" / names[0]
        harness.wait_for(lambda: (staged / "staged.json").exists() or not httpd.running(), 60,
                         "a staged certificate", interval=0.2)
        assert httpd.running(), httpd.log_text()[-4000:]
        staged_at = time.time()
        # The module's clock is behind: the set waits for its notBefore. Two looks at it: the
        # reason is logged once (a fixed time, not a countdown), the second look at debug.
        harness.wait_for(lambda: httpd.log_text().count("becomes valid at") >= 2, 40,
                         "the activation to notice the notBefore ahead twice")
        log = httpd.log_text()
        assert log.count("becomes valid at") == log.count("still left as it is") + 1, \
            "the reason was logged again at info"
        log = httpd.log_text()
        served = _served(httpd, names[0])
        assert not is_pebble_cert(served, names), "activated before its notBefore"
        assert "rejected/" not in log and not any((store / "rejected").glob("*")), log[-4000:]
        assert (staged / "staged.json").exists(), "the staged set vanished"
        wait_line = next(l for l in log.splitlines() if "becomes valid at" in l)
        # The clock catches up (as NTP would step it): the set is activated and served.
        offset.write_text("+0s\n")
        caught_up = time.time()
        deadline = caught_up + 120
        served = None
        while time.time() < deadline and not is_pebble_cert(served, names):
            assert httpd.running(), httpd.log_text()[-4000:]
            served = _served(httpd, names[0])
            time.sleep(0.5)
        log = httpd.log_text()
        assert is_pebble_cert(served, names), ("not activated once valid", log[-6000:])
        activated = time.time() - caught_up
        assert _not_before(served) <= time.time() + 1
        assert "rejected/" not in log and not any((store / "rejected").glob("*")), log[-4000:]
        figures = (f"clock {BEHIND} s behind the CA: staged set waited "
                   f"{caught_up - staged_at:.1f} s unrejected; served {activated:.1f} s after "
                   f"the clock caught up; log: {wait_line.split('] ', 3)[-1][:160]}")
        print("\n" + figures)
        record_property("clock_behind", figures)
    finally:
        httpd.stop()
