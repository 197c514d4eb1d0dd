#!/usr/bin/python3
"""Test hook for ACMEDns01Command: sets and clears TXT records in pebble-challtestsrv's management
API (the DNS server Pebble resolves through) and records every call.

    dns01_hook.py <mgmt-url> <record-file> <mode> setup|teardown <fqdn> <value>

mode: ok; fail (exits 1 with a message on stderr); hang (sleeps, so the timeout kills it);
teardown-fails-once (the first teardown fails, later ones work).
Each call appends one JSON line {"argv": [...], "env": {ACME_*...}} to record-file.
"""
import json
import os
import sys
import time
import urllib.request


def post(url, path, body):
    req = urllib.request.Request(f"{url}/{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()


def main():
    url, record, mode, action, fqdn, value = sys.argv[1:7]
    with open(record, "a") as f:
        f.write(json.dumps({"argv": sys.argv[4:],
                            "env": {k: v for k, v in os.environ.items()
                                    if k.startswith("ACME_") or k in ("PATH", "HOME")}}) + "\n")
    if mode == "fail":
        print("dns01_hook: the DNS provider refused the update (test)", file=sys.stderr)
        return 1
    if mode == "hang":
        time.sleep(600)
        return 0
    if mode == "teardown-fails-once" and action == "teardown":
        flag = record + ".failed-once"
        if not os.path.exists(flag):
            open(flag, "w").close()
            print("dns01_hook: teardown failed on purpose (test)", file=sys.stderr)
            return 2
    host = fqdn.rstrip(".") + "."
    if action == "setup":
        post(url, "set-txt", {"host": host, "value": value})
    elif action == "teardown":
        post(url, "clear-txt", {"host": host})
    else:
        print(f"dns01_hook: unknown action {action}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
