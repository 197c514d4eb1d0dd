#!/bin/sh
# mod_acme certificate API client (docs/api.md): curl + openssl, nothing else.
#   acme-api-client.sh URL CSR-FILE [HMAC-KEY-FILE] > fullchain.pem
# URL is the <Location> with SetHandler acme-api; the CSR is PEM or DER from openssl req.
# Exit 0 with the chain on stdout; else the server's answer on stderr. Polls a 202 every 5 s.
set -eu
url=${1%/}/certificates; csr=$2; key=${3:-}; out=$(mktemp); trap 'rm -f "$out"' EXIT
call() {   # METHOD URL [BODY-FILE]
    path=$(printf '%s' "$2" | sed -E 's|^https?://[^/]*||; s|\?.*||'); set -- "$1" "$2" "${3:-/dev/null}"
    if [ -n "$key" ]; then ts=$(date +%s)
        sig=$( { printf '%s\n%s\n%s\n' "$1" "$path" "$ts"; cat "$3"; } |
               openssl dgst -sha256 -hmac "$(tr -d ' \n\r\t' < "$key")" | sed 's/^.* //')
        set -- "$@" -H "X-ACME-Timestamp: $ts" -H "X-ACME-Signature: $sig"; fi
    b=$3; m=$1; u=$2; shift 3
    curl -sS -o "$out" -D - -X "$m" --data-binary "@$b" -H 'Content-Type: application/pkcs10' "$@" "$u"
}
loc=$(call POST "$url" "$csr" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
while grep -q '"state": "\(queued\|processing\)"' "$out"; do
    sleep 5; call GET "$loc" > /dev/null; done
if grep -q 'BEGIN CERTIFICATE' "$out"; then cat "$out"; else cat "$out" >&2; exit 1; fi
