"""No store problem stops httpd (issue 13, point 5): whatever recovery finds in the root-owned
parts of the store, and even when no fallback file can be written, httpd starts, serves what it
has, and obtains the certificates."""
import errno
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness

from acme_site import (site_config, served_cert, is_pebble_cert, serial_of,
                       wait_for_pebble_cert)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the parent must be root")


def _tree(path):
    """Every path below path with its type, mode and content: to prove nothing changed."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            out[str(p)] = (st.st_mode, st.st_uid, p.read_bytes() if p.is_file() else None)
    return out


def test_broken_replacement_markers_do_not_stop_httpd(httpd, pebble, workdir):
    names = ["markers.test"]
    victim = Path(workdir) / "victim"
    (victim / "inner").mkdir(parents=True)
    (victim / "inner" / "secret").write_text("root's\n")
    before = _tree(victim)
    domains = Path(httpd.root) / "acme" / "domains"
    domains.mkdir(parents=True)
    # A marker that is a directory, one naming a path outside the store, one through "..".
    (domains / ".markers.test.replacing").mkdir()
    (domains / ".other.test.replacing").write_text(f"{victim}/inner\n")
    (domains / ".third.test.replacing").write_text(f"{domains}/../../../victim/inner\n")
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    wait_for_pebble_cert(httpd, names, timeout=60)
    assert httpd.running()
    assert _tree(victim) == before
    assert not (domains / "other.test").exists() and not (domains / "third.test").exists()
    harness.wait_for(lambda: "recovering an interrupted replacement" in httpd.log_text(), 15,
                     "the broken marker to be reported")
    # The bad markers were looked at and are gone or left, never acted on; the good ones too.
    assert (domains / ".markers.test.replacing").is_dir()


def test_no_fallback_file_writable_still_starts_and_serves(httpd, pebble):
    names = ["nofallback.test"]
    domains = Path(httpd.root) / "acme" / "domains"
    domains.mkdir(parents=True)
    # Where the fallback files go is a file: every fallback write fails (as on a broken disk).
    (domains / "_fallback").write_text("not a directory\n")
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    assert httpd.running()
    harness.wait_for(lambda: "a fallback held in memory is served" in httpd.log_text(), 15,
                     "the in-memory fallback to be announced")
    first = served_cert(httpd, names[0])
    assert first, "no certificate at all was served before the real one"
    wait_for_pebble_cert(httpd, names, timeout=60)
    assert httpd.running()
    assert is_pebble_cert(served_cert(httpd, names[0]), names)


# ---------------------------------------------------------------- damaged store files (issue 14)

def _damage(path, kind):
    """Damages one store file as a failing disk or a careless admin would. chmod 000 does not
    stop root, so "unreadable" puts a directory in the file's place: open() of it for reading
    works, read() fails with EISDIR, and every reader of the store refuses it as no file."""
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(max(len(data), 16)))
    else:
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("not the file\n")


def _store_files_parse(store):
    """Every JSON and PEM file the module owns in the store parses (damaged ones set aside
    excepted); returns the complaints."""
    bad = []
    for p in sorted(Path(store).rglob("*")):
        if (not p.is_file() or ".damaged" in p.name or p.name.startswith(".")
                or p.relative_to(store).parts[0] in ("archive", "rejected")):
            continue
        if p.suffix == ".json":
            try:
                json.loads(p.read_text())
            except ValueError as e:
                bad.append(f"{p}: {e}")
        elif p.suffix in (".pem", ".key") and p.name != "proof.key":
            text = p.read_text(errors="replace")
            if "-----BEGIN" not in text or "-----END" not in text.rstrip().splitlines()[-1]:
                bad.append(f"{p}: no complete PEM")
    return bad


DAMAGE_KINDS = ["truncated", "empty", "garbage", "directory"]


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_damaged_store_files(httpd, pebble, kind, record_property):
    """Every kind of store file damaged at once (one httpd per kind of damage): httpd starts,
    serves what it can, names every damaged file, and repairs what it owns."""
    served = [["chain.test"], ["key.test"], ["job.test"]]
    staged = [["staged.test"], ["sealed.test"]]
    store = Path(httpd.root) / "acme"
    httpd.write_config(site_config(httpd, pebble, served))
    httpd.start()
    for names in served:
        wait_for_pebble_cert(httpd, names, timeout=60)
    # Two more domains are staged but not activated (ACMEAutoRestart off): their staged sets
    # exist when httpd stops.
    httpd.write_config(site_config(httpd, pebble, served + staged, extra="ACMEAutoRestart off",
                                   global_first="ACMEActivation restart"))
    httpd.graceful()
    harness.wait_for(lambda: all((store / "staging" / n[0] / "staged.json").exists()
                                 for n in staged), 60, "the staged sets")
    httpd.stop()
    account = next(store.glob("accounts/*/account.key"))
    victims = {
        "active chain": store / "domains/chain.test/pubcert.secp256r1.pem",
        "active key": store / "domains/key.test/privkey.secp256r1.pem",
        "job json": store / "jobs/job.test.json",
        "staged.json": store / "staging/staged.test/staged.json",
        "sealed key": store / "staging/sealed.test/privkey.secp256r1.sealed",
        "account key": account,
        "account json": next(store.glob("jobs/account.*.json")),
        "fallback key": store / "domains/_fallback/fallback.key",
        "fallback cert": store / "domains/_fallback/staged.test.pem",
        "seal key": store / "seal/seal.key",
        "seal cert": store / "seal/seal.pem",
        "proof key": store / "seal/proof.key",
        "next-run": store / "jobs/next-run",
    }
    for path in victims.values():
        _damage(path, kind)
    httpd.write_config(site_config(httpd, pebble, served + staged))
    started = time.monotonic()
    httpd.start()
    assert httpd.running()
    for names in served + staged:
        assert served_cert(httpd, names[0]), f"{names[0]}: nothing served after the start"
    for names in served + staged:
        wait_for_pebble_cert(httpd, names, timeout=90)
    record_property(f"recovered_{kind}_s", round(time.monotonic() - started, 1))
    print(f"\n{kind}: every domain served by the CA again {time.monotonic() - started:.1f}s "
          f"after the start")
    log = httpd.log_text()
    assert httpd.running()
    assert "AH00052" not in log and "Segmentation" not in log, log[-4000:]
    # A staged set's proof covers all its files: the verdict names the set's directory.
    # Repaired without a word: next-run (an hour when unreadable, the worker writes it at
    # exit), the fallback files (made anew), and 32 garbage bytes are as good a proof key as any
    # (the staged sets then fail their proof and are ordered again).
    silent = {"next-run", "fallback key", "fallback cert"} | ({"proof key"} if kind == "garbage"
                                                               else set())
    named = {what: str(path.parent if what in ("staged.json", "sealed key") else path)
             for what, path in victims.items() if what not in silent}
    unnamed = [what for what, text in named.items() if text not in log]
    assert not unnamed, f"not named in the log: {unnamed}\n{log[-6000:]}"
    assert _store_files_parse(store) == []
    assert (store / "seal/proof.key").stat().st_size == 32


# ---------------------------------------------------------------- a full store (issue 14)

TEN_MINUTES = {"config": {"certificateValidityPeriod": 600}}


def _fill(path):
    """Writes path until the file system is full; returns the bytes written."""
    written = 0
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
                written += 65536
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return written


@pytest.mark.parametrize("pebble", [TEN_MINUTES], indirect=True)
def test_full_store_keeps_serving_and_recovers(httpd, pebble, record_property):
    """ACMEStoreDir on a small tmpfs that fills up before a new name is ordered: the old
    certificate stays served, the log says the store is full, no store file is cut short, and
    the certificate for the new name arrives by itself once space is freed."""
    names = ["full.test"]
    store = Path(httpd.root) / "acme"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(store)],
                   check=True)
    try:
        httpd.write_config(site_config(httpd, pebble, [names]))
        httpd.start()
        old = wait_for_pebble_cert(httpd, names, timeout=60)
        filler = store / "filler"
        filled = _fill(filler)
        # One more name: the worker orders a new certificate it cannot store.
        httpd.write_config(site_config(httpd, pebble, [names + ["more.full.test"]]))
        httpd.graceful()
        harness.wait_for(lambda: "No space left on device" in httpd.log_text(), 60,
                         "the full store to be reported")
        full_at = time.monotonic()
        time.sleep(3)
        assert httpd.running()
        assert serial_of(served_cert(httpd, names[0])) == serial_of(old), "the old one went"
        log = httpd.log_text()
        assert "the file system holding the store is full (ENOSPC)" in log, log[-4000:]
        assert _store_files_parse(store) == []
        filler.unlink()
        freed_at = time.monotonic()
        wait_for_pebble_cert(httpd, names + ["more.full.test"], timeout=150)
        recovered = time.monotonic() - freed_at
        record_property("enospc_filled_bytes", filled)
        record_property("enospc_recovery_after_free_s", round(recovered, 1))
        print(f"\nstore tmpfs 2 MiB, filler {filled} bytes; full reported, then space freed "
              f"{freed_at - full_at:.1f}s later; new certificate served {recovered:.1f}s "
              f"after the space was freed")
        print("\n".join(line for line in httpd.log_text().splitlines()
                        if "space" in line or "starts again" in line or "retr" in line)[-3000:])
        assert httpd.running()
        assert _store_files_parse(store) == []
    finally:
        httpd.stop()
        subprocess.run(["umount", "-l", str(store)], check=False)


# ---------------------------------------------------------------- a forged jobs/next-run

def test_forged_next_run_does_not_fork_the_worker_every_tick(httpd, pebble):
    """jobs/next-run belongs to the httpd User: a time in the past, written again and again
    whatever the worker writes, starts the worker no more often than its shortest retry."""
    names = ["forged.test"]
    httpd.write_config(site_config(httpd, pebble, [names]))
    httpd.start()
    wait_for_pebble_cert(httpd, names, timeout=60)
    next_run = Path(httpd.root) / "acme" / "jobs" / "next-run"
    harness.wait_for(lambda: httpd.log_text().count("renewal worker started") >= 2
                     and "starts again in" in httpd.log_text(), 30, "the workers to end")
    before = httpd.log_text().count("renewal worker started")
    stop = threading.Event()

    def forge():
        while not stop.is_set():
            tmp = next_run.with_name(".forged")
            tmp.write_text("1\n")
            os.rename(tmp, next_run)
            time.sleep(0.005)

    forger = threading.Thread(target=forge)
    forger.start()
    try:
        httpd.graceful()        # a new generation: the worker runs once, reads the forged time
        time.sleep(20)
    finally:
        stop.set()
        forger.join()
    started = httpd.log_text().count("renewal worker started") - before
    print(f"\nworkers started in 20 s with a forged next-run: {started}")
    assert httpd.running()
    assert started <= 2, httpd.log_text()[-4000:]
