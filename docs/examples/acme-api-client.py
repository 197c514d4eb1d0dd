#!/usr/bin/python3
"""A client of mod_acme's certificate API (docs/api.md), Python standard library only.

  acme-api-client.py https://www.example.org/acme-api req.csr > fullchain.pem
  acme-api-client.py --key-file /etc/acme-api.key --wait 0 URL req.csr --out chain.pem

Sends the CSR (PEM or DER, from `openssl req`), signs the request with HMAC-SHA256 when a key
file is given, and polls the Location the server answers with 202 until the chain is there.
Exit status: 0 chain written, 1 refused or failed (the server's reason on stderr), 2 usage.
"""
import argparse
import hashlib
import hmac
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def sign(key, method, path, body):
    """The X-ACME-Timestamp and X-ACME-Signature headers for one request."""
    stamp = str(int(time.time()))
    msg = f"{method}\n{path}\n{stamp}\n".encode() + body
    return {"X-ACME-Timestamp": stamp,
            "X-ACME-Signature": hmac.new(key, msg, hashlib.sha256).hexdigest()}


def call(url, method, body, key, context, source=None):
    headers = {"Content-Type": "application/pkcs10"} if body else {}
    if key:
        headers.update(sign(key, method, urllib.parse.urlsplit(url).path, body or b""))
    req = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=700, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="the API's base URL (the <Location> with SetHandler acme-api)")
    ap.add_argument("csr", help="CSR file, PEM or DER")
    ap.add_argument("--key-file", help="HMAC key file (ACMEApiAuth hmac)")
    ap.add_argument("--wait", type=int, help="seconds the server may wait before 202")
    ap.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
    ap.add_argument("--timeout", type=float, default=600, help="give up after this long")
    ap.add_argument("--cafile", help="CA file for the server's certificate")
    ap.add_argument("--out", help="write the chain here (default: standard output)")
    args = ap.parse_args(argv)
    key = open(args.key_file, "rb").read().strip() if args.key_file else None
    body = open(args.csr, "rb").read()
    context = ssl.create_default_context(cafile=args.cafile)
    url = args.url.rstrip("/") + "/certificates"
    status, headers, data = call(url + (f"?wait={args.wait}" if args.wait is not None else ""),
                                 "POST", body, key, context)
    deadline = time.monotonic() + args.timeout
    while status in (200, 202) and not data.startswith(b"-----BEGIN"):
        state = json.loads(data or b"{}")
        if state.get("state") == "invalid" or time.monotonic() > deadline:
            break
        url = headers.get("Location") or url
        time.sleep(max(args.poll, 1.0))     # a signed poll needs a new timestamp
        status, headers, data = call(url, "GET", b"", key, context)
    if status in (200, 201) and data.startswith(b"-----BEGIN"):
        if args.out:
            with open(args.out, "wb") as f:
                f.write(data)
        else:
            sys.stdout.buffer.write(data)
        return 0
    sys.stderr.write(f"acme-api-client: HTTP {status}: {data.decode(errors='replace')}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
