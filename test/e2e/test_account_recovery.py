"""Issue 14, account recovery: a CA that forgets the account (Pebble reset: same directory URL,
new state, new roots) must not let the certificates expire. The worker looks the account key up
(onlyReturnExisting), registers it again when the CA has none, and orders at once, with one
notice line per CA and one new account however many orders meet the lost account together.
The once-per-hour limit is unit-tested in test/unit/test_job.c."""
import json
import re
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import harness
from acme_site import site_config, wait_for_pebble_cert, serial_of, verify_chain

NAMES = [["r1.test"], ["r2.test"], ["r3.test"]]
A2ACME = harness.BUILD_DIR / "src" / "a2acme"
# Pebble logs this once per account it creates (newAccount answered 201).
ACCOUNT_CREATED = re.compile(r"There are now \d+ accounts in memory")
REREGISTERED = "registered the account key again"


def _not_after(text):
    m = re.search(r"Not After\s*:\s*(.+? GMT)", text)
    assert m, text
    return datetime.strptime(m.group(1), "%b %d %H:%M:%S %Y %Z").replace(
        tzinfo=timezone.utc).timestamp()


def _renewed_by_new_ca(httpd, pebble, names, old_serial):
    text = harness.tls_peer_cert(httpd.https_port, names[0])[0]
    if not text or serial_of(text) == old_serial or not all(f"DNS:{n}" in text for n in names):
        return False
    ok, _ = verify_chain(httpd, pebble, names[0])      # pebble.root_pem(): the new CA's root
    return ok


@pytest.mark.parametrize("pebble", [{"config": {"certificateValidityPeriod": 120}}],
                         indirect=True)
def test_ca_reset_is_survived_with_one_new_account(httpd, pebble):
    """120 s certificates renewed with 90 s left, for three domains; the CA is reset right after
    the first issuance. All three are renewed by the new CA before the old ones expire, the new
    CA sees exactly one account registration, and the log has one notice about it, no CRIT."""
    httpd.write_config(site_config(
        httpd, pebble, NAMES,
        global_first="ACMECheckInterval 1m\nACMERenewWindow 90s\nACMEActivationInterval 0"))
    httpd.start()
    first = {}
    for names in NAMES:
        text = wait_for_pebble_cert(httpd, names)
        first[names[0]] = (serial_of(text), _not_after(text))
    expiry = min(na for _, na in first.values())
    # Every name's first certificate is issued by the old CA before the reset.
    assert all(verify_chain(httpd, pebble, n[0])[0] for n in NAMES)
    old_root = pebble.root_pem()

    pebble.restart_fresh()
    reset_at = time.time()
    assert pebble.root_pem() != old_root, "the new Pebble must issue under a new root"
    log_mark = len(httpd.log_text())

    pending = {n[0]: n for n in NAMES}
    renewed_at = {}
    while pending and time.time() < expiry - 2:
        for name, names in list(pending.items()):
            if _renewed_by_new_ca(httpd, pebble, names, first[name][0]):
                renewed_at[name] = time.time() - reset_at
                del pending[name]
        time.sleep(0.5)
    log = httpd.log_text()[log_mark:]
    assert not pending, (f"not renewed by the new CA before the old certificates expired: "
                         f"{sorted(pending)}\n--- error log since the reset ---\n{log[-6000:]}")
    print(f"\nCA reset -> all {len(NAMES)} names renewed in {max(renewed_at.values()):.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in sorted(renewed_at.items()))}); "
          f"old certificates had {expiry - reset_at:.0f} s left")

    new_ca_log = pebble.log_path.read_text(errors="replace")
    created = ACCOUNT_CREATED.findall(new_ca_log)
    sign_ups = [r for r in pebble.requests() if r == ("POST", "/sign-me-up")]
    print(f"new CA: {len(created)} account(s) created, {len(sign_ups)} newAccount requests "
          f"(onlyReturnExisting lookup + registration)")
    assert len(created) == 1, f"{len(created)} accounts registered at the new CA"
    assert len(sign_ups) == 2, sign_ups
    notices = [l for l in log.splitlines() if REREGISTERED in l]
    assert len(notices) == 1, notices
    print(f"notice: {notices[0]}")
    stamp = re.match(r"\[(\w+ \w+ +\d+ [\d:]+)\.\d+ (\d+)\]", notices[0])
    if stamp:
        noticed = datetime.strptime(" ".join(stamp.groups()), "%a %b %d %H:%M:%S %Y")
        noticed = noticed.astimezone().timestamp()  # httpd logs local time
        print(f"re-registration {noticed - reset_at:.1f} s after the reset (the renewal window "
              f"opened then); all renewed {max(renewed_at.values()) - (noticed - reset_at):.1f} "
              f"s after it")
    assert ":notice]" in notices[0] and pebble.directory_url in notices[0], notices[0]
    assert "next" in notices[0] or "waits until" in notices[0], notices[0]
    crits = [l for l in log.splitlines() if ":crit]" in l]
    assert not crits, crits[:5]

    # The account record: the new URL, the history of both accounts, the re-registration time.
    store = Path(httpd.root) / "acme"
    (record_path,) = list((store / "jobs").glob("account.*.json"))
    record = json.loads(record_path.read_text())
    history = record["history"]
    assert [h["reason"].split(":")[0] for h in history] == ["registered", "registered again"], \
        history
    assert record["url"] == history[-1]["url"] != history[0]["url"]
    assert record["reregistered_at"] and abs(record["reregistered_at"] - reset_at) < 120
    # ... and a2acme shows it.
    res = subprocess.run([str(A2ACME), "--store", str(store), "account", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    acct = json.loads(res.stdout)["accounts"][0]
    assert acct["url"] == record["url"] and acct["status"] == "valid", acct
    assert [h["url"] for h in acct["history"]] == [h["url"] for h in history], acct
    res = subprocess.run([str(A2ACME), "--store", str(store), "account"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "history:" in res.stdout and history[0]["url"] in res.stdout, res.stdout
    assert "registered again" in res.stdout, res.stdout
    assert httpd.running()
