"""ACMEMembers (issue 18): with `auto` (the default) a virtual host whose ServerName is managed
brings its ServerAlias names into that domain's certificate, unless another domain manages them;
with `manual` only the names listed in ACMEDomain are in it. Checked on the certificates Pebble
issued and the server serves, and in the status."""
import re

from acme_site import site_config, status, wait_for_pebble_cert


def _vhost(httpd, name, aliases=()):
    alias = f"  ServerAlias {' '.join(aliases)}\n" if aliases else ""
    return (f"<VirtualHost 127.0.0.1:{httpd.https_port}>\n  ServerName {name}\n{alias}"
            "  SSLEngine on\n</VirtualHost>\n")


def _sans(text):
    return sorted(re.findall(r"DNS:([^,\s]+)", text))


def test_members_auto_brings_aliases_and_manual_does_not(httpd, pebble):
    conf = site_config(httpd, pebble, [])
    conf += "ACMEDomain auto.test\n" + _vhost(httpd, "auto.test", ["www.auto.test"])
    conf += ("<ACMEDomain manual.test>\n  ACMEMembers manual\n</ACMEDomain>\n"
             + _vhost(httpd, "manual.test", ["www.manual.test"]))
    # shop.other.test is a domain of its own: it does not join other.test's certificate.
    conf += ("ACMEDomain shop.other.test\n" + _vhost(httpd, "shop.other.test")
             + "ACMEDomain other.test\n"
             + _vhost(httpd, "other.test", ["www.other.test", "shop.other.test"]))
    # ACMEMembers in a virtual host decides for that virtual host's aliases.
    conf += ("ACMEDomain keep.test\n"
             + _vhost(httpd, "keep.test", ["www.keep.test"]).replace(
                 "  SSLEngine on\n", "  SSLEngine on\n  ACMEMembers manual\n"))
    # ... but not over the domain's own <ACMEDomain> section.
    conf += ("<ACMEDomain own.test>\n  ACMEMembers auto\n</ACMEDomain>\n"
             + _vhost(httpd, "own.test", ["www.own.test"]).replace(
                 "  SSLEngine on\n", "  SSLEngine on\n  ACMEMembers manual\n"))
    httpd.write_config(conf)
    httpd.start()
    expected = {
        "auto.test": ["auto.test", "www.auto.test"],
        "manual.test": ["manual.test"],
        "other.test": ["other.test", "www.other.test"],
        "shop.other.test": ["shop.other.test"],
        "keep.test": ["keep.test"],
        "own.test": ["own.test", "www.own.test"],
    }
    for name, names in expected.items():
        served = wait_for_pebble_cert(httpd, [name])
        assert _sans(served) == sorted(names), (name, _sans(served))
    # The alias of the auto domain is served that certificate too.
    assert _sans(wait_for_pebble_cert(httpd, ["www.auto.test"])) == expected["auto.test"]
    names = {d["name"]: sorted(d["names"]) for d in status(httpd)["domains"]}
    assert names == {k: sorted(v) for k, v in expected.items()}, names
