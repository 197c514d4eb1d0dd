"""configtest refuses every bad use of mod_acme's directives with file, line and a clear reason,
and accepts the configurations an admin is meant to write."""
import re

import pytest

import harness

# Placeholders filled per test: @HTTPS@ the private httpd's HTTPS port, @WORK@ its work directory.
VHOST = """<VirtualHost 127.0.0.1:@HTTPS@>
  ServerName {name}
  {aliases}
  SSLEngine on
  {body}
</VirtualHost>
"""


def ssl_vhost(name, aliases=(), body=""):
    return VHOST.format(name=name, aliases=f"ServerAlias {' '.join(aliases)}" if aliases else "",
                        body=body)


LONG_LABEL = "a" * 64
LONG_NAME = ".".join(["b" * 60] * 5)     # 304 characters

# (id, configuration, the offending line as written, a fragment of the reason)
BAD = [
    # --- ACMEDomain names
    ("name-empty-label", "ACMEDomain a..test\n", "ACMEDomain a..test", "empty label"),
    ("name-leading-dot", "ACMEDomain .a.test\n", "ACMEDomain .a.test", "empty label"),
    ("name-leading-hyphen", "ACMEDomain -a.test\n", "ACMEDomain -a.test", "starts with '-'"),
    ("name-trailing-hyphen", "ACMEDomain a-.test\n", "ACMEDomain a-.test", "ends with '-'"),
    ("name-64-char-label", f"ACMEDomain {LONG_LABEL}.test\n", f"ACMEDomain {LONG_LABEL}.test",
     "at most 63"),
    ("name-too-long", f"ACMEDomain {LONG_NAME}\n", f"ACMEDomain {LONG_NAME}", "at most 253"),
    ("name-underscore", "ACMEDomain a_b.test\n", "ACMEDomain a_b.test", "contains '_'"),
    ("name-double-wildcard", "ACMEDomain *.*.x.test\n", "ACMEDomain *.*.x.test",
     "wildcard is allowed only as the whole first label"),
    ("name-partial-wildcard", "ACMEDomain a*.x.test\n", "ACMEDomain a*.x.test",
     "wildcard is allowed only as the whole first label"),
    ("name-non-ascii", "ACMEDomain bücher.test\n", "ACMEDomain bücher.test", "A-label"),
    ("name-trailing-garbage", "ACMEDomain a.test!\n", "ACMEDomain a.test!", "contains '!'"),
    ("name-path", "ACMEDomain a.test/x\n", "ACMEDomain a.test/x", "contains '/'"),
    ("name-port", "ACMEDomain a.test:443\n", "ACMEDomain a.test:443", "without a port"),
    ("name-single-label", "ACMEDomain localhost\n", "ACMEDomain localhost", "at least two labels"),
    ("name-numeric-tld", "ACMEDomain a.123\n", "ACMEDomain a.123", "all digits"),
    ("name-reserved-dashes", "ACMEDomain ab--c.test\n", "ACMEDomain ab--c.test", "reserved"),
    ("name-second-bad", "ACMEDomain good.test bad_.test\n", "ACMEDomain good.test bad_.test",
     "'bad_.test'"),
    ("ip-leading-zero", "ACMEDomain 192.168.01.1\n", "ACMEDomain 192.168.01.1", "leading zero"),
    ("ip-unspecified", "ACMEDomain 0.0.0.0\n", "ACMEDomain 0.0.0.0", "unspecified"),
    ("ip-v4-mapped", "ACMEDomain ::ffff:192.0.2.1\n", "ACMEDomain ::ffff:192.0.2.1",
     "name the IPv4 address '192.0.2.1'"),
    ("ip-zone-id", "ACMEDomain fe80::1%eth0\n", "ACMEDomain fe80::1%eth0", "zone id"),
    ("section-bad-name", "<ACMEDomain a..test>\n</ACMEDomain>\n", "<ACMEDomain a..test>",
     "empty label"),
    # --- where ACMEDomain may stand, and what it needs
    ("name-in-two-domains",
     ssl_vhost("a.test", ["b.test", "c.test"])
     + "ACMEDomain a.test b.test\nACMEDomain c.test b.test\n",
     "ACMEDomain c.test b.test", "b.test is already managed by ACMEDomain a.test"),
    ("name-on-no-vhost", "ACMEDomain lonely.test\n", "ACMEDomain lonely.test",
     "no SSL virtual host (SSLEngine on) has ServerName or ServerAlias lonely.test"),
    ("name-on-plain-http-vhost",
     "<VirtualHost 127.0.0.1:@HTTPS@>\n  ServerName plain.test\n</VirtualHost>\n"
     "ACMEDomain plain.test\n", "ACMEDomain plain.test",
     "no SSL virtual host (SSLEngine on) has ServerName or ServerAlias plain.test"),
    ("one-name-not-served", ssl_vhost("a.test") + "ACMEDomain a.test other.test\n",
     "ACMEDomain a.test other.test", "ServerAlias other.test"),
    ("vhost-ssl-off",
     "<VirtualHost 127.0.0.1:@HTTPS@>\n  ServerName off.test\n  SSLEngine off\n  ACMEDomain\n"
     "</VirtualHost>\n", "ACMEDomain", "no SSL virtual host"),
    ("no-names-outside-vhost", "ACMEDomain\n", "ACMEDomain",
     "needs at least one name (outside a <VirtualHost>"),
    ("section-without-names", "<ACMEDomain>\n</ACMEDomain>\n", "<ACMEDomain>",
     "needs at least one name"),
    ("vhost-alias-invalid", ssl_vhost("a.test", ["a_b.test"], "ACMEDomain"), "ACMEDomain",
     "ServerAlias a_b.test"),
    # A ServerAlias pattern is part of the vhost's names: *.x is a wildcard (dns-01 needed),
    # other patterns cannot be certified.
    ("vhost-wild-alias-needs-dns01", ssl_vhost("vw.test", ["*.vw.test"], "ACMEDomain"),
     "ACMEDomain", "*.vw.test is a wildcard name"),
    ("vhost-alias-pattern", ssl_vhost("vp.test", ["www.v?.test"], "ACMEDomain"), "ACMEDomain",
     "ServerAlias www.v?.test"),
    ("vhost-domain-and-explicit", ssl_vhost("v.test", body="ACMEDomain") + "ACMEDomain v.test\n",
     "ACMEDomain v.test", "already managed"),
    ("vhost-without-servername",
     "<VirtualHost 127.0.0.1:@HTTPS@>\n  SSLEngine on\n  ACMEDomain\n</VirtualHost>\n",
     "ACMEDomain", "ServerName"),
    ("nested-section", "<ACMEDomain a.test>\n<ACMEDomain b.test>\n</ACMEDomain>\n</ACMEDomain>\n",
     "<ACMEDomain b.test>", "cannot be nested"),
    ("domain-in-section", "<ACMEDomain a.test>\nACMEDomain b.test\n</ACMEDomain>\n",
     "ACMEDomain b.test", "cannot be used inside <ACMEDomain>"),
    ("domain-in-directory", "<Directory />\nACMEDomain a.test\n</Directory>\n",
     "ACMEDomain a.test", "not allowed in <Directory>"),
    # --- server-wide settings
    ("storedir-in-section", "<ACMEDomain a.test>\nACMEStoreDir /tmp/acme\n</ACMEDomain>\n",
     "ACMEStoreDir /tmp/acme", "applies to the whole server"),
    ("storedir-in-vhost", ssl_vhost("a.test", body="ACMEStoreDir /tmp/acme"),
     "ACMEStoreDir /tmp/acme", "cannot occur within <VirtualHost>"),
    ("parallel-in-section", "<ACMEDomain a.test>\nACMEParallelOrders 4\n</ACMEDomain>\n",
     "ACMEParallelOrders 4", "applies to the whole server"),
    ("interval-in-section", "<ACMEDomain a.test>\nACMECheckInterval 1h\n</ACMEDomain>\n",
     "ACMECheckInterval 1h", "applies to the whole server"),
    ("autorestart-in-section", "<ACMEDomain a.test>\nACMEAutoRestart off\n</ACMEDomain>\n",
     "ACMEAutoRestart off", "applies to the whole server"),
    ("activation-too-long", "ACMEActivationInterval 2d\n", "ACMEActivationInterval 2d",
     "at most 24h"),
    ("activation-mode-word", "ACMEActivation later\n", "ACMEActivation later",
     "use 'hot' (serve new certificates without a restart) or 'restart'"),
    ("activation-word", "ACMEActivationInterval later\n", "ACMEActivationInterval later",
     "not a duration"),
    ("activation-in-section", "<ACMEDomain a.test>\nACMEActivationInterval 1m\n</ACMEDomain>\n",
     "ACMEActivationInterval 1m", "applies to the whole server"),
    ("autorestart-maybe", "ACMEAutoRestart maybe\n", "ACMEAutoRestart maybe", "On or Off"),
    ("parallel-0", "ACMEParallelOrders 0\n", "ACMEParallelOrders 0", "whole number from 1 to 256"),
    ("parallel-257", "ACMEParallelOrders 257\n", "ACMEParallelOrders 257",
     "whole number from 1 to 256"),
    ("parallel-word", "ACMEParallelOrders many\n", "ACMEParallelOrders many",
     "whole number from 1 to 256"),
    ("interval-10s", "ACMECheckInterval 10s\n", "ACMECheckInterval 10s", "use 1m to 7d"),
    ("interval-30d", "ACMECheckInterval 30d\n", "ACMECheckInterval 30d", "use 1m to 7d"),
    ("interval-no-unit", "ACMECheckInterval 12\n", "ACMECheckInterval 12", "no unit"),
    ("interval-word", "ACMECheckInterval often\n", "ACMECheckInterval often", "not a duration"),
    ("interval-repeated-unit", "ACMECheckInterval 1h1h\n", "ACMECheckInterval 1h1h",
     "repeats a unit"),
    # --- per-domain policy
    ("agreement-maybe", "ACMEAgreement maybe\n", "ACMEAgreement maybe",
     "the only value is 'accepted'"),
    ("keys-unknown", "ACMEPrivateKeys ed25519\n", "ACMEPrivateKeys ed25519",
     "unsupported key type 'ed25519'"),
    ("keys-rsa1024-in-section", "<ACMEDomain a.test>\nACMEPrivateKeys rsa1024\n</ACMEDomain>\n",
     "ACMEPrivateKeys rsa1024", "unsupported key type 'rsa1024'"),
    ("keys-two-ec", "ACMEPrivateKeys secp256r1 secp384r1\n", "ACMEPrivateKeys secp256r1 secp384r1",
     "second EC key"),
    ("keys-two-rsa", "ACMEPrivateKeys rsa2048 rsa4096\n", "ACMEPrivateKeys rsa2048 rsa4096",
     "second RSA key"),
    ("keys-none", "ACMEPrivateKeys\n", "ACMEPrivateKeys", "one or two key types"),
    ("challenge-unknown", "ACMEChallenges foo-01\n", "ACMEChallenges foo-01",
     "unknown challenge type 'foo-01'"),
    ("challenge-twice", "ACMEChallenges http-01 HTTP-01\n", "ACMEChallenges http-01 HTTP-01",
     "listed twice"),
    ("challenge-none", "ACMEChallenges\n", "ACMEChallenges", "at least one challenge type"),
    ("challenge-persist-ip", "ACMEChallenges dns-persist-01\nACMEDomain 192.0.2.7\n",
     "ACMEDomain 192.0.2.7", "which dns-persist-01 does not validate"),
    ("ca-ftp", "ACMECertificateAuthority ftp://ca.test/directory\n",
     "ACMECertificateAuthority ftp://ca.test/directory", "https:// URL of an ACME directory"),
    ("ca-http", "ACMECertificateAuthority http://ca.test/directory\n",
     "ACMECertificateAuthority http://ca.test/directory", "https:// URL of an ACME directory"),
    ("ca-bad-second", "ACMECertificateAuthority letsencrypt ftp://x.test/d\n",
     "ACMECertificateAuthority letsencrypt ftp://x.test/d", "'ftp://x.test/d'"),
    ("ca-none", "ACMECertificateAuthority\n", "ACMECertificateAuthority",
     "needs 'letsencrypt', 'letsencrypt-staging' or the https:// URL"),
    ("ca-certificate-missing", "ACMECACertificate @WORK@/no-such-ca.pem\n",
     "ACMECACertificate @WORK@/no-such-ca.pem", "cannot read"),
    ("eab-key-file-missing", "ACMEExternalAccountBinding kid-1 @WORK@/no-such-eab.key\n",
     "ACMEExternalAccountBinding kid-1 @WORK@/no-such-eab.key", "cannot be read"),
    ("eab-without-key-file", "ACMEExternalAccountBinding kid-1\n",
     "ACMEExternalAccountBinding kid-1", "needs the key id the CA gave you and the file"),
    ("preferred-chain-too-long", f"ACMEPreferredChain {'X' * 65}\n",
     f"ACMEPreferredChain {'X' * 65}", "at most 64 characters"),
    ("profile-bad-name", "ACMEProfile short/lived\n", "ACMEProfile short/lived",
     "needs the name of a profile the CA offers"),
    ("profile-bad-flag", "ACMEProfile shortlived required\n", "ACMEProfile shortlived required",
     "can only be 'mandatory'"),
    ("proxy-no-scheme", "ACMEProxy proxy.test:3128\n", "ACMEProxy proxy.test:3128",
     "has no scheme: write http://host:port"),
    ("proxy-ftp", "ACMEProxy ftp://proxy.test:21\n", "ACMEProxy ftp://proxy.test:21",
     "write http://, https://, socks5:// or socks5h://"),
    ("proxy-no-host", "ACMEProxy http://:3128\n", "ACMEProxy http://:3128", "names no host"),
    ("proxy-bad-port-redacted", "ACMEProxy http://u:pw@proxy.test:99999\n",
     "ACMEProxy http://u:pw@proxy.test:99999",
     "'http://***@proxy.test:99999' has a port that is not a number from 1 to 65535"),
    ("proxy-bad-ca", "ACMEProxy http://proxy.test:3128 ftp://ca.test/dir\n",
     "ACMEProxy http://proxy.test:3128 ftp://ca.test/dir", "names the CA the proxy is for"),
    ("renew-negative", "ACMERenewWindow -5%\n", "ACMERenewWindow -5%", "negative"),
    ("renew-zero", "ACMERenewWindow 0\n", "ACMERenewWindow 0", "no unit"),
    ("renew-zero-percent", "ACMERenewWindow 0%\n", "ACMERenewWindow 0%", "more than 0%"),
    ("renew-zero-days", "ACMERenewWindow 0d\n", "ACMERenewWindow 0d", "positive duration"),
    ("renew-150-percent", "ACMERenewWindow 150%\n", "ACMERenewWindow 150%", "less than 100%"),
    ("renew-no-unit", "ACMERenewWindow 90\n", "ACMERenewWindow 90", "no unit"),
    ("renew-word", "ACMERenewWindow soon\n", "ACMERenewWindow soon",
     "neither 'auto', a percentage"),
    ("contact-no-at", "ACMEContactEmail admin.example.org\n", "ACMEContactEmail admin.example.org",
     "not a plain e-mail address"),
    ("contact-two-at", "ACMEContactEmail a@b@example.org\n", "ACMEContactEmail a@b@example.org",
     "not a plain e-mail address"),
    ("contact-bad-domain", "ACMEContactEmail admin@localhost\n", "ACMEContactEmail admin@localhost",
     "not a plain e-mail address"),
    ("contact-in-location", "<Location />\nACMEContactEmail a@example.org\n</Location>\n",
     "ACMEContactEmail a@example.org", "not allowed in <Location>"),
    ("members-sometimes", "ACMEMembers sometimes\n", "ACMEMembers sometimes",
     "use 'auto'"),
    # --- dns-01 (issue 6)
    ("dns01-missing-program", "ACMEDns01Command /nonexistent/acme-hook setup\n",
     "ACMEDns01Command /nonexistent/acme-hook setup", "No such file or directory"),
    ("dns01-relative-program", "ACMEDns01Command acme-hook\n", "ACMEDns01Command acme-hook",
     "not an absolute path"),
    ("dns01-timeout-0", "ACMEDns01Timeout 0s\n", "ACMEDns01Timeout 0s", "use 1s to 1h"),
    ("dns01-propagation-word", "ACMEDns01Propagation soon\n", "ACMEDns01Propagation soon",
     "ACMEDns01Propagation"),
    ("dns01-propagation-check-host", "ACMEDns01Propagation check ns1.example.org\n",
     "ACMEDns01Propagation check ns1.example.org", "not an IPv4 address"),
    # --- renewal policy (issue 7)
    ("renewal-info-maybe", "ACMERenewalInfo maybe\n", "ACMERenewalInfo maybe", "On or Off"),
    ("renewal-info-in-section", "<ACMEDomain a.test>\nACMERenewalInfo off\n</ACMEDomain>\n",
     "ACMERenewalInfo off", "applies to the whole server"),
    ("warn-window-word", "ACMEWarnWindow soon\n", "ACMEWarnWindow soon", "ACMEWarnWindow"),
    ("warn-window-150", "ACMEWarnWindow 150%\n", "ACMEWarnWindow 150%", "ACMEWarnWindow"),
    ("notify-relative-program", "ACMENotifyCommand notify.sh\n", "ACMENotifyCommand notify.sh",
     "not an absolute path"),
    # --- ACMEExport (issue 17)
    ("export-relative-dir", "ACMEExport certs haproxy\n", "ACMEExport certs haproxy",
     "must be an absolute path"),
    ("export-unknown-format", "ACMEExport @WORK@/exp pkcs12\n", "ACMEExport @WORK@/exp pkcs12",
     "unknown format 'pkcs12'"),
    ("export-no-format", "ACMEExport @WORK@/exp\n", "ACMEExport @WORK@/exp",
     "needs a directory and a format"),
    ("export-no-such-user", "ACMEExport @WORK@/exp haproxy owner=nosuchuser17:root\n",
     "ACMEExport @WORK@/exp haproxy owner=nosuchuser17:root", "there is no user 'nosuchuser17'"),
    ("export-no-such-group", "ACMEExport @WORK@/exp split owner=root:nosuchgroup17\n",
     "ACMEExport @WORK@/exp split owner=root:nosuchgroup17", "there is no group 'nosuchgroup17'"),
    ("export-owner-no-group", "ACMEExport @WORK@/exp split owner=root\n",
     "ACMEExport @WORK@/exp split owner=root", "needs user:group"),
    ("export-mode-others-read", "ACMEExport @WORK@/exp txsni mode=0644\n",
     "ACMEExport @WORK@/exp txsni mode=0644", "gives others access to private keys"),
    ("export-mode-group-write", "ACMEExport @WORK@/exp txsni mode=0660\n",
     "ACMEExport @WORK@/exp txsni mode=0660", "lets the group write"),
    ("export-mode-not-octal", "ACMEExport @WORK@/exp txsni mode=rw\n",
     "ACMEExport @WORK@/exp txsni mode=rw", "not an octal file mode"),
    ("export-unknown-option", "ACMEExport @WORK@/exp txsni user=root\n",
     "ACMEExport @WORK@/exp txsni user=root", "unknown option 'user=root'"),
    ("export-not-a-directory", "ACMEExport @WORK@/httpd/conf/httpd.conf haproxy\n",
     "ACMEExport @WORK@/httpd/conf/httpd.conf haproxy", "is not a directory"),
    ("export-same-dir-two-formats",
     "ACMEExport @WORK@/exp haproxy\nACMEExport @WORK@/exp split\n",
     "ACMEExport @WORK@/exp split", "already an export directory"),
    ("export-in-vhost", ssl_vhost("a.test", body="ACMEExport /tmp/exp haproxy"),
     "ACMEExport /tmp/exp haproxy", "cannot occur within <VirtualHost>"),
    # --- certificate API (issue 17)
    ("api-client-no-name", "<ACMEApiClient>\n</ACMEApiClient>\n", "<ACMEApiClient>",
     "needs one name"),
    ("api-client-bad-name", "<ACMEApiClient a/b>\n</ACMEApiClient>\n", "<ACMEApiClient a/b>",
     "not a client name"),
    ("api-client-no-auth", "ACMEDomain a.test\n<ACMEApiClient panel>\nACMEApiAllow a.test\n"
     "</ACMEApiClient>\n", "<ACMEApiClient panel>", "has no ACMEApiAuth"),
    ("api-client-no-allow", "ACMEDomain a.test\n<ACMEApiClient panel>\n"
     "ACMEApiAuth ip 127.0.0.1\n</ACMEApiClient>\n", "<ACMEApiClient panel>", "allows no names"),
    ("api-auth-outside-block", "ACMEApiAuth ip 127.0.0.1\n", "ACMEApiAuth ip 127.0.0.1",
     "belongs inside an <ACMEApiClient"),
    ("api-auth-bad-ip", "<ACMEApiClient p>\nACMEApiAuth ip 300.1.2.3\n</ACMEApiClient>\n",
     "ACMEApiAuth ip 300.1.2.3", "not an IP address or network"),
    ("api-auth-hmac-missing", "<ACMEApiClient p>\nACMEApiAuth hmac @WORK@/no-such.key\n"
     "</ACMEApiClient>\n", "ACMEApiAuth hmac @WORK@/no-such.key", "openssl rand -hex 32"),
    ("api-auth-unknown", "<ACMEApiClient p>\nACMEApiAuth password x\n</ACMEApiClient>\n",
     "ACMEApiAuth password x", "'ip ADDRESS|NETWORK...', 'hmac KEY-FILE' or 'user NAME...'"),
    ("api-allow-bad-pattern", "<ACMEApiClient p>\nACMEApiAllow a*.example.org\n"
     "</ACMEApiClient>\n", "ACMEApiAllow a*.example.org", "whole first label"),
    ("api-wait-word", "ACMEApiWait soon\n", "ACMEApiWait soon", "not a wait of 0 to 10 minutes"),
    ("api-rate-no-period", "ACMEApiRate 10\n", "ACMEApiRate 10", "e.g. 10/1h"),
    # --- the cluster (issue 16); key file permissions and length: test_cluster.py
    ("cluster-no-port", "ACMECluster etcd http://127.0.0.1\n", "ACMECluster etcd http://127.0.0.1",
     "needs a host and a port"),
    ("cluster-no-scheme", "ACMECluster etcd 127.0.0.1:2379\n", "ACMECluster etcd 127.0.0.1:2379",
     "is no etcd endpoint"),
    ("cluster-no-key", "ACMECluster etcd http://127.0.0.1:2379\n",
     "ACMECluster etcd http://127.0.0.1:2379", "a cluster needs ACMEClusterKey"),
    ("cluster-tls-missing", "ACMEClusterTLS @WORK@/c.pem @WORK@/k.pem @WORK@/ca.pem\n",
     "ACMEClusterTLS @WORK@/c.pem @WORK@/k.pem @WORK@/ca.pem", "is not a readable file"),
    ("cluster-key-missing", "ACMEClusterKey @WORK@/none.key\n", "ACMEClusterKey @WORK@/none.key",
     "openssl rand -base64 32"),
    ("cluster-node-bad", "ACMEClusterNode a/b\n", "ACMEClusterNode a/b",
     "only letters, digits"),
    ("api-no-domain", "<ACMEApiClient p>\nACMEApiAuth ip 127.0.0.1\nACMEApiAllow a.test\n"
     "</ACMEApiClient>\n", "<ACMEApiClient p>", "add an ACMEDomain"),
    ("ondemand-outside-vhost", "ACMEOnDemand on\n", "ACMEOnDemand on",
     "belongs in the <VirtualHost> that catches the names"),
    ("ondemand-ask-ftp", "ACMEOnDemandAsk ftp://127.0.0.1/x\n", "ACMEOnDemandAsk ftp://127.0.0.1/x",
     "is not an http:// or https:// URL"),
    ("ondemand-wait-word", "ACMEOnDemandWait soon\n", "ACMEOnDemandWait soon",
     "not a wait of 0 to 60 seconds"),
    ("ondemand-rate-word", "ACMEOnDemandRate lots\n", "ACMEOnDemandRate lots",
     "expected COUNT/PERIOD"),
    ("ondemand-max-negative", "ACMEOnDemandMax -1\n", "ACMEOnDemandMax -1",
     "not a number of domains"),
]


def fill(text, httpd):
    return text.replace("@HTTPS@", str(httpd.https_port)).replace("@WORK@", str(httpd.workdir))


def line_number(conf_path, line):
    """1-based number of the first configuration line that is exactly `line` (stripped)."""
    for i, text in enumerate(conf_path.read_text().splitlines(), 1):
        if text.strip() == line:
            return i
    raise ValueError(f"{line!r} not in {conf_path}")


def names_line(out, n, conf):
    """httpd's "Syntax error on line N of FILE:", or mod_acme's "(ACMEDomain x, line N of FILE)"
    and "ACMEDomain without names (line N of FILE)"."""
    conf = re.escape(str(conf))
    return (re.search(rf"Syntax error on line {n} of {conf}:", out)
            or re.search(rf"^(ACME\d{{5}}: )?mod_acme: .*\bline {n} of {conf}\)", out, re.M))


def test_table_covers_every_directive():
    source = (harness.REPO / "httpd" / "acme_config.c").read_text()
    directives = set(re.findall(r'AP_INIT_\w+\("<?(ACME\w+)"', source))
    assert directives, "no directives found in httpd/acme_config.c"
    used = {m for _, conf, _, _ in BAD for m in re.findall(r"<?(ACME\w+)", conf)}
    assert directives <= used, f"no bad usage for {sorted(directives - used)}"
    assert len(BAD) >= 34


@pytest.mark.parametrize("conf,line,reason", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_usage_fails_configtest(httpd_alone, conf, line, reason):
    conf_path = httpd_alone.write_config(fill(conf, httpd_alone))
    line = fill(line, httpd_alone)
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    assert "Syntax OK" not in out, out
    n = line_number(conf_path, line)
    assert names_line(out, n, conf_path), f"line {n} of {conf_path} not named:\n{out}"
    assert fill(reason, httpd_alone) in out, out


def test_same_name_in_two_vhosts_names_both_lines(httpd_alone):
    conf = (ssl_vhost("twice.test", body="ACMEDomain") + ssl_vhost("twice.test", body="ACMEDomain"))
    conf_path = httpd_alone.write_config(fill(conf, httpd_alone))
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    lines = [i for i, text in enumerate(conf_path.read_text().splitlines(), 1)
             if text.strip() == "ACMEDomain"]
    assert len(lines) == 2
    for n in lines:
        assert f"line {n} of {conf_path}" in out, out
    assert "twice.test is already managed" in out, out
    # The line to edit is the second declaration: the message says so and ends with it.
    assert re.search(rf"remove it from this declaration.*\(ACMEDomain twice.test, line "
                     rf"{lines[1]} of {re.escape(str(conf_path))}\)", out), out


def test_name_declared_again_after_an_include_is_flagged_where_it_was_added(httpd_alone):
    """A site file included first manages the name; the main file names it again later: the
    error stands on the main file's line (the one to remove) and names the site file's line,
    though explicit domains are collected before <VirtualHost> ones."""
    site = httpd_alone.conf_path.parent / "site-a.conf"
    site.write_text(fill(ssl_vhost("inc.test", body="ACMEDomain"), httpd_alone))
    conf_path = httpd_alone.write_config(f"Include {site}\nACMEDomain inc.test\n")
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    site_line = next(i for i, t in enumerate(site.read_text().splitlines(), 1)
                     if t.strip() == "ACMEDomain")
    main_line = line_number(conf_path, "ACMEDomain inc.test")
    assert re.search(rf"inc.test is already managed by ACMEDomain inc.test \(line {site_line} "
                     rf"of {re.escape(str(site))}\); remove it from this declaration.*"
                     rf"\(ACMEDomain inc.test, line {main_line} of "
                     rf"{re.escape(str(conf_path))}\)", out), out


def test_every_problem_is_reported_not_only_the_first(httpd_alone):
    """The whole-configuration check lists all problems in one run."""
    conf = "ACMEDomain one.test\nACMEDomain two.test\n"
    conf_path = httpd_alone.write_config(conf)
    rc, out = httpd_alone.configtest()
    assert rc != 0, out
    for name in ("one.test", "two.test"):
        n = line_number(conf_path, f"ACMEDomain {name}")
        assert names_line(out, n, conf_path), out
        assert f"ServerAlias {name}, so its certificate would never be served" in out, out


# ------------------------------------------------------------------ what must pass

GOOD = [
    ("vhost-names-match",
     ssl_vhost("www.good.test", ["good.test", "shop.good.test"])
     + "ACMEDomain good.test www.good.test shop.good.test\n"),
    ("members-auto-brings-aliases",
     ssl_vhost("m.test", ["www.m.test"]) + "ACMEMembers auto\nACMEDomain m.test\n"),
    ("members-manual",
     ssl_vhost("n.test", ["www.n.test"]) + "ACMEMembers manual\nACMEDomain n.test\n"),
    ("section-with-overrides",
     ssl_vhost("a.test", ["b.test"])
     + "<ACMEDomain a.test b.test>\n"
       "  ACMECertificateAuthority https://127.0.0.1:14000/dir letsencrypt\n"
       "  ACMECACertificate @WORK@/ca.pem\n"
       "  ACMEAgreement accepted\n"
       "  ACMEContactEmail mailto:admin@a.test\n"
       "  ACMEChallenges http-01\n"
       "  ACMEPrivateKeys secp384r1 rsa2048\n"
       "  ACMERenewWindow 33%\n"
       "  ACMEMembers manual\n"
       "</ACMEDomain>\n"),
    ("vhost-without-names", ssl_vhost("site.test", ["www.site.test"], "ACMEDomain")),
    ("vhost-with-overrides",
     ssl_vhost("o.test", body="ACMEDomain\n  ACMEPrivateKeys rsa3072\n  ACMERenewWindow 21d")),
    ("ip-literals", "ACMEDomain 192.0.2.1 [2001:db8::1]\n"),
    ("vhost-wild-alias", ssl_vhost("vw.test", ["*.vw.test"],
                                   "ACMEDns01Command /bin/true\n  ACMEDomain")),
    # A wildcard needs a way to do dns-01 (issue 6); without one configtest refuses it.
    ("wildcard", ssl_vhost("w.test", ["*.w.test"])
     + "ACMEDns01Command /bin/true\nACMEDomain w.test *.w.test\n"),
    # dns-persist-01: a standing record the admin creates; no program needed for a wildcard.
    ("wildcard-dns-persist", ssl_vhost("wp.test", ["*.wp.test"])
     + "ACMEChallenges dns-persist-01\nACMEDomain wp.test *.wp.test\n"),
    ("server-wide-settings",
     ssl_vhost("s.test")
     + "ACMEStoreDir acme-store\nACMEAutoRestart off\nACMEParallelOrders 16\n"
       "ACMECheckInterval 1d12h\nACMECertificateAuthority letsencrypt-staging\n"
       "ACMEAgreement accepted\nACMEContactEmail ops@s.test\nACMERenewWindow auto\n"
       "ACMEPrivateKeys P-256\nACMEActivationInterval 2m\nACMEDomain s.test\n"),
    ("activation-interval-zero",
     ssl_vhost("z.test") + "ACMEActivationInterval 0\nACMEDomain z.test\n"),
    ("ssl-inherited-from-main-server",
     "SSLEngine on\n<VirtualHost 127.0.0.1:@HTTPS@>\n  ServerName g.test\n</VirtualHost>\n"
     "ACMEDomain g.test\n"),
    ("trailing-dot-and-case", ssl_vhost("case.test") + "ACMEDomain CASE.test.\n"),
    ("export-every-format", ssl_vhost("ex.test") + ssl_vhost("ey.test")
     + "ACMEExport @WORK@/exp-h haproxy owner=root:root mode=0600\n"
       "ACMEExport @WORK@/exp-t txsni\nACMEDomain ex.test\n"
       "<ACMEDomain ey.test>\nACMEExport @WORK@/exp-s split mode=0640\n"
       "ACMEExport @WORK@/exp-h haproxy owner=root:root mode=0600\n</ACMEDomain>\n"),
]


@pytest.mark.parametrize("conf", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_configuration_passes_configtest(httpd_alone, conf):
    (httpd_alone.workdir / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    httpd_alone.write_config(fill(conf, httpd_alone))
    rc, out = httpd_alone.configtest()
    assert rc == 0, out
    assert "Syntax OK" in out, out
