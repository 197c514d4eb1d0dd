"""No store problem stops httpd (issue 13, point 5): whatever recovery finds in the root-owned
parts of the store, and even when no fallback file can be written, httpd starts, serves what it
has, and obtains the certificates."""
import os
from pathlib import Path

import pytest

import harness

from acme_site import site_config, served_cert, is_pebble_cert, wait_for_pebble_cert

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
