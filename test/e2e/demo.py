"""The README demo: Pebble and a private apache2 with mod_acme on loopback, certificates for a few
demo names obtained by mod_acme and shown as a TLS client sees them, then everything stopped."""
import re
import sys
import time

import harness
from acme_site import site_config, served_cert, is_pebble_cert

DEMO_DOMAINS = [["www.demo.test", "demo.test"], ["shop.demo.test"], ["blog.demo.test"]]


def describe(text):
    """subject, SANs, issuer and notAfter of `openssl x509 -text` output."""
    def grab(pattern):
        m = re.search(pattern, text)
        return m.group(1).strip() if m else "?"
    return {
        "subject": grab(r"Subject: (.*)"),
        "names": grab(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)"),
        "issuer": grab(r"Issuer: (.*)"),
        "not after": grab(r"Not After : (.*)"),
    }


def main():
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
    try:
        print(f"starting Pebble (a test ACME CA) and pebble-challtestsrv (its DNS) in {workdir}")
        pebble.start()
        print(f"  ACME directory: {pebble.directory_url}")
        httpd.write_config(site_config(httpd, pebble, DEMO_DOMAINS))
        print(f"starting apache2 with mod_acme: HTTP 127.0.0.1:{httpd.http_port}, "
              f"HTTPS 127.0.0.1:{httpd.https_port}; managed domains:")
        for names in DEMO_DOMAINS:
            print("  ACMEDomain " + " ".join(names))
        start = time.monotonic()
        httpd.start()
        pending = {names[0]: names for names in DEMO_DOMAINS}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for first, names in list(pending.items()):
                text = served_cert(httpd, first)
                if is_pebble_cert(text, names):
                    info = describe(text)
                    print(f"\n{first}: served {time.monotonic() - start:.1f} s after start")
                    for key, value in info.items():
                        print(f"  {key:10} {value}")
                    del pending[first]
            time.sleep(0.2)
        if pending:
            print("not issued within 60 s: " + ", ".join(pending), file=sys.stderr)
            print(httpd.log_text()[-3000:], file=sys.stderr)
            return 1
        print("\nmod_acme log lines:")
        for line in httpd.log_text().splitlines():
            if "[acme:notice]" in line:
                print("  " + line.split("] ", 3)[-1])
        return 0
    finally:
        print("\nstopping apache2, Pebble and pebble-challtestsrv")
        httpd.stop()
        pebble.stop()
        left = harness.leftover_processes()
        if left:
            print(f"processes left behind: {left}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
