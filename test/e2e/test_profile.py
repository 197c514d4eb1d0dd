"""Issue 15, ACMEProfile (draft-ietf-acme-profiles). Pebble 2.4.0 has no profiles, so the CA front
(ca_proxy.CaProxy.profiles) offers Let's Encrypt's three in meta.profiles, records the `profile`
of every newOrder and refuses names it does not offer with invalidProfile. One httpd, several
domains, one worker run for all the cases:
  mand.test     ACMEProfile tlsserver mandatory   -> ordered with it, shown in the status
  dns.test      no directive, DNS name            -> no profile field
  127.0.0.1     no directive, IP identifier       -> shortlived, automatically
  unknown.test  ACMEProfile nosuch                -> clear error, no order sent
  refused.test  ACMEProfile classic, CA refuses   -> the CA's invalidProfile, explained
  nooffer.test  ACMEProfile shortlived mandatory at a CA without profiles (Pebble) -> error
  optional.test ACMEProfile tlsserver at that CA -> issued without a profile, logged once
then configtest catches an unknown name from the cached directory, and a profile the CA stops
offering fails the renewal with the old certificate still served."""
import subprocess
import time
from pathlib import Path

import harness
from acme_site import served_cert, serial_of, site_config, status, wait_for_pebble_cert
from ca_proxy import CaProxy

A2ACME = harness.BUILD_DIR / "src" / "a2acme"
LE_PROFILES = {
    "classic": "https://letsencrypt.org/docs/profiles#classic",
    "tlsserver": {"description": "45 days", "maxNames": 25, "identifierTypes": ["dns"]},
    "shortlived": {"description": "160 hours", "maxNames": 25, "identifierTypes": ["dns", "ip"]},
}
SECTIONS = {
    "mand.test": "ACMEProfile tlsserver mandatory",
    "unknown.test": "ACMEProfile nosuch",
    "refused.test": "ACMEProfile classic",
}


def _vhost(httpd, name):
    return (f"<VirtualHost 127.0.0.1:{httpd.https_port}>\n  ServerName {name}\n"
            "  SSLEngine on\n</VirtualHost>\n")


def _config(httpd, pebble, front, sections):
    conf = site_config(httpd, pebble, [["dns.test"], ["127.0.0.1"]]).replace(
        f"ACMECertificateAuthority {pebble.directory_url}",
        f"ACMECertificateAuthority {front.directory_url}")
    for name, directive in sections.items():
        conf += f"<ACMEDomain {name}>\n  {directive}\n</ACMEDomain>\n" + _vhost(httpd, name)
    conf += ("<ACMEDomain nooffer.test>\n"
             f"  ACMECertificateAuthority {pebble.directory_url}\n"
             "  ACMEProfile shortlived mandatory\n</ACMEDomain>\n" + _vhost(httpd, "nooffer.test"))
    conf += ("<ACMEDomain optional.test>\n"
             f"  ACMECertificateAuthority {pebble.directory_url}\n"
             "  ACMEProfile tlsserver\n</ACMEDomain>\n" + _vhost(httpd, "optional.test"))
    return conf


def _last_error(httpd, name):
    err = (status(httpd, name).get("renewal") or {}).get("last_error") or {}
    return err.get("message") or ""


def _wait_error(httpd, name, needle, timeout=60):
    harness.wait_for(lambda: needle in _last_error(httpd, name), timeout,
                     f"the error for {name} naming {needle!r}: {_last_error(httpd, name)!r}")
    return _last_error(httpd, name)


def _graceful(httpd):
    done = httpd.log_text().count("resuming normal operations")
    httpd.graceful()
    harness.wait_for(lambda: httpd.log_text().count("resuming normal operations") > done
                     or not httpd.running(), 20, "the graceful restart")


def test_profiles(httpd, pebble):
    front = CaProxy(pebble)
    front.profiles = LE_PROFILES
    front.refuse_profiles = {"classic"}
    try:
        httpd.write_config(_config(httpd, pebble, front, SECTIONS))
        rc, out = httpd.configtest()
        assert rc == 0, out
        httpd.start()
        mand = wait_for_pebble_cert(httpd, ["mand.test"])
        wait_for_pebble_cert(httpd, ["dns.test"])
        harness.wait_for(lambda: status(httpd, "127.0.0.1")["state"] == "valid", 60,
                         "the IP certificate")

        # What the CA front saw in each newOrder.
        assert front.profiles_of("mand.test") == ["tlsserver"], front.profile_log
        assert front.profiles_of("dns.test") == [None], front.profile_log
        assert front.profiles_of("127.0.0.1") == ["shortlived"], front.profile_log
        assert "127.0.0.1: the profile \"shortlived\" is requested" in httpd.log_text()

        # The status shows each certificate's profile and real lifetime.
        for name, profile in (("mand.test", "tlsserver"), ("127.0.0.1", "shortlived"),
                              ("dns.test", None)):
            harvest = lambda: status(httpd, name)["certificates"]   # noqa: E731
            harness.wait_for(lambda: harvest() and harvest()[0].get("profile") == profile, 15,
                             f"profile {profile} of {name} in the status: {harvest()}")
            cert = harvest()[0]
            assert cert["lifetime_seconds"] == cert["not_after_epoch"] - cert["not_before_epoch"]
            assert cert["lifetime"], cert
        listing = subprocess.run([str(A2ACME), "--store", str(Path(httpd.root) / "acme"), "list"],
                                 capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
        row = next(l for l in listing.stdout.splitlines() if l.startswith("mand.test"))
        assert " tlsserver " in row, listing.stdout
        assert "PROFILE" in listing.stdout and "LIFETIME" in listing.stdout

        # Errors name the CA, the profile and what is offered; no order for a profile unknown.
        msg = _wait_error(httpd, "unknown.test", "nosuch")
        assert front.directory_url in msg and all(p in msg for p in LE_PROFILES), msg
        assert front.profiles_of("unknown.test") == [], front.profile_log
        msg = _wait_error(httpd, "refused.test", "invalidProfile")
        assert 'refused the profile "classic"' in msg and front.directory_url in msg, msg
        assert front.profile_refused, front.profile_log
        msg = _wait_error(httpd, "nooffer.test", "shortlived mandatory")
        assert pebble.directory_url in msg and "offers no profiles" in msg, msg
        # Not mandatory at a CA without profiles: issued with the CA's default, said once.
        wait_for_pebble_cert(httpd, ["optional.test"])
        assert status(httpd, "optional.test")["certificates"][0]["profile"] is None
        note = (f"optional.test: ACMEProfile tlsserver: the CA {pebble.directory_url} offers no "
                "profiles; ordering without one")
        assert httpd.log_text().count(note) == 1, httpd.log_text()[-3000:]

        # configtest, with the directory the worker cached: an unknown name is refused at once.
        good = httpd.conf_path.read_text()
        httpd.write_config(_config(httpd, pebble, front,
                                   dict(SECTIONS, **{"mand.test": "ACMEProfile tlsclient"})))
        rc, out = httpd.configtest()
        assert rc != 0 and "ACMEProfile tlsclient" in out and front.directory_url in out, out
        assert "mand.test" in out and "tlsserver" in out, out
        # The running server itself does not refuse it: it restarts and keeps serving.
        _graceful(httpd)
        assert httpd.running()
        assert serial_of(served_cert(httpd, "mand.test")) == serial_of(mand)
        httpd.conf_path.write_text(good)
        _graceful(httpd)

        # The CA stops offering tlsserver: the forced renewal fails clearly, the old certificate
        # stays in service.
        front.profiles = {k: v for k, v in LE_PROFILES.items() if k != "tlsserver"}
        res = subprocess.run([str(A2ACME), "--store", str(Path(httpd.root) / "acme"), "renew",
                              "mand.test"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        msg = _wait_error(httpd, "mand.test", "tlsserver")
        assert "does not know this profile" in msg and "classic, shortlived" in msg, msg
        assert serial_of(served_cert(httpd, "mand.test")) == serial_of(mand)
        assert front.profiles_of("mand.test") == ["tlsserver"], front.profile_log
        assert httpd.running()
    finally:
        front.stop()
