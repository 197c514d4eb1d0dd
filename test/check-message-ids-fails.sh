#!/bin/sh
# make check: test/check-message-ids.py must fail on each kind of mistake it exists for. Each
# case copies the sources and docs/messages.md to a scratch tree, breaks one thing there and
# expects the check to fail naming it.
top=$(cd "$(dirname "$0")/.." && pwd)
check="$top/test/check-message-ids.py"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0

fresh() {
    rm -rf "$scratch/t" && mkdir -p "$scratch/t/docs" "$scratch/t/test"
    cp -R "$top/src" "$top/httpd" "$scratch/t/" && cp "$top/mod_acme.c" "$scratch/t/"
    cp "$top/docs/messages.md" "$scratch/t/docs/"
}

expect_fail() {   # what, pattern the output must hold
    out=$(ACME_MSGID_TOP="$scratch/t" python3 "$check" 2>&1)
    if [ $? -eq 0 ] || ! printf '%s\n' "$out" | grep -q -- "$2"; then
        echo "FAIL: not caught: $1"; printf '%s\n' "$out" | tail -3; failed=1
    else
        echo "ok: caught: $1"
    fi
}

fresh
ACME_MSGID_TOP="$scratch/t" python3 "$check" >/dev/null || { echo "FAIL: clean copy fails"; failed=1; }

fresh   # a worker line without an ID
sed -i 's/"ACME00428: %s: requesting/"%s: requesting/' "$scratch/t/src/acme_worker_order.c"
expect_fail "worker log call without ID" "acme_worker_order.c:[0-9]*: log call without a message ID"

fresh   # an httpd line without an ID
sed -i 's/"ACME00309: mod_acme: %s: new "/"mod_acme: %s: new "/' "$scratch/t/httpd/acme_supervise.c"
expect_fail "ap_log_error without ID" "acme_supervise.c:[0-9]*: log call without a message ID"

fresh   # two messages with one ID
sed -i 's/"ACME00429: /"ACME00428: /' "$scratch/t/src/acme_worker_order.c"
expect_fail "two messages sharing an ID" "ACME00428 is used by 2 messages"

fresh   # an ID macro used by a second message
sed -i 's/ACME_PERSIST_MSG_WATCH, item/ACME_PERSIST_MSG_CHECK, item/' \
    "$scratch/t/src/acme_worker_persist.c"
expect_fail "an ID macro used twice" "ACME01601 is used by 2 messages"

fresh   # an ID the page does not list
sed -i '/^| `ACME00430` |/d' "$scratch/t/docs/messages.md"
expect_fail "ID missing from docs/messages.md" "ACME00430 .* is not in docs/messages.md"

fresh   # a listed ID no code uses
echo '| `ACME08999` | info | nothing | none |' >> "$scratch/t/docs/messages.md"
expect_fail "ID only in docs/messages.md" "lists ACME08999, which no code uses"

fresh   # an old-style ID
sed -i 's/"ACME01501"/"ACME1501"/' "$scratch/t/src/acme_account.h"
expect_fail "old-style ID" "old-style message ID ACME1501"

fresh   # an httpd file that logs without APLOG_USE_MODULE(acme)
sed -i '/^APLOG_USE_MODULE(acme);$/d' "$scratch/t/httpd/acme_serve_metrics.c"
expect_fail "logging without APLOG_USE_MODULE" "acme_serve_metrics.c: logs without APLOG_USE_MODULE"

exit $failed
