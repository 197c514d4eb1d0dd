import os
import re
import shutil
from pathlib import Path

import pytest

import harness

LOG_KEEP_DIR = Path(os.environ.get("ACME_TEST_LOGS", harness.REPO / "test-logs"))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(node):
    return any(getattr(node, "rep_" + when, None) is not None and getattr(node, "rep_" + when).failed
               for when in ("setup", "call"))


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    if not harness.MODULE_SO.exists():
        pytest.exit(f"{harness.MODULE_SO} is missing: build first (make), or set ACME_BUILD_DIR",
                    returncode=4)
    yield
    left = harness.leftover_processes()
    assert not left, f"processes left running after the tests: {left}"


@pytest.fixture
def workdir(request):
    path = harness.make_workdir()
    yield path
    if _failed(request.node):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        dest = harness.keep_logs(path, LOG_KEEP_DIR / name)
        print(f"\nlogs of the failed test kept in {dest}")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pebble(request, workdir):
    """Pebble + pebble-challtestsrv (as DNS) on loopback; parametrize indirectly with a variant
    name from harness.PEBBLE_VARIANTS or a dict {"env":…, "config":…, "challtestsrv_answers":…}."""
    server = harness.Pebble(workdir, getattr(request, "param", None))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def mpm(request):
    """The MPM of the httpd fixture: "event" unless a test parametrizes it."""
    return getattr(request, "param", "event")


@pytest.fixture
def httpd(workdir, pebble, mpm):
    """A private apache2 whose HTTP and HTTPS ports are the ones Pebble validates on.
    Not started: the test writes its config and starts it."""
    server = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port,
                           mpm=mpm)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def httpd_alone(workdir):
    """A private apache2 with no ACME server behind it (for configtest and start/stop tests)."""
    server = harness.Httpd(workdir)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- sanitizers (ACME_SANITIZE=1)
_SANITIZER_DIR = None
_sanitizer_seen = set()


@pytest.fixture(scope="session", autouse=True)
def sanitizer_session():
    """With ACME_SANITIZE=1: checks the module really is sanitized (apache2 must get the runtime
    preloaded, see harness.sanitizer_setup) and, at the end, that no report came late."""
    global _SANITIZER_DIR
    if not harness.SANITIZE:
        yield
        return
    if b"__asan_init" not in harness.MODULE_SO.read_bytes():
        pytest.exit(f"ACME_SANITIZE=1 but {harness.MODULE_SO} is not built with ASan "
                    "(set ACME_BUILD_DIR to a --enable-sanitizers build)", returncode=4)
    # Not under pytest's 0700 tmp root: children running as the User write here too.
    _SANITIZER_DIR = harness.sanitizer_setup(harness.make_workdir() / "sanitizer")
    yield
    late = _sanitizer_reports(_sanitizer_seen)
    if late:
        LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
        (LOG_KEEP_DIR / "late-sanitizer-reports.txt").write_text(late)
    shutil.rmtree(_SANITIZER_DIR.parent, ignore_errors=True)
    assert not late, "sanitizer reports written after the tests ended:\n" + late


def _sanitizer_reports(seen):
    """The text of every report file not in seen (which it extends), or ""."""
    text = []
    for p in sorted(_SANITIZER_DIR.iterdir()) if _SANITIZER_DIR else []:
        if p.name not in seen:
            seen.add(p.name)
            text.append(f"==== {p.name}\n{p.read_text(errors='replace')}")
    return "\n".join(text)


@pytest.fixture(autouse=True)
def no_sanitizer_report(request, sanitizer_session):
    """Fails the test (at teardown, after its servers stopped) if any process wrote a sanitizer
    report meanwhile; the reports are printed and kept with the test's logs."""
    yield
    if not _SANITIZER_DIR:
        return
    new = _sanitizer_reports(_sanitizer_seen)
    if new:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        dest = LOG_KEEP_DIR / name
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "sanitizer-reports.txt").write_text(new)
        pytest.fail(f"sanitizer reports (kept in {dest}):\n{new}", pytrace=False)

