"""The README demo: Pebble and a private apache2 with mod_acme on loopback, certificates for a few
demo names obtained and shown as a TLS client sees them, then everything stopped."""
import json
import sys
import time

import harness

DEMO_NAMES = ["www.demo.test", "shop.demo.test", "blog.demo.test"]


def main():
    workdir = harness.make_workdir()
    pebble = harness.Pebble(workdir)
    httpd = harness.Httpd(workdir, http_port=pebble.http_port, https_port=pebble.tls_port)
    try:
        print(f"starting Pebble (ACME CA) and pebble-challtestsrv (DNS) in {workdir}")
        pebble.start()
        print(f"  ACME directory: {pebble.directory_url}")
        httpd.write_config('<Location /acme-status>\n  SetHandler acme-status\n</Location>\n')
        print(f"starting apache2 with mod_acme on 127.0.0.1:{httpd.http_port} (HTTP) "
              f"and 127.0.0.1:{httpd.https_port} (HTTPS)")
        httpd.start()
        status, body, _ = httpd.get("/acme-status")
        print(f"  GET /acme-status -> {status} {json.dumps(json.loads(body))}")
        print("certificate issuance for " + ", ".join(DEMO_NAMES) +
              " arrives with the managed-domain support (issue 4); the stack is up and answering.")
        return 0
    finally:
        print("stopping apache2, Pebble and pebble-challtestsrv")
        httpd.stop()
        pebble.stop()
        left = harness.leftover_processes()
        if left:
            print(f"processes left behind: {left}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
