#!/bin/sh
# make check: the core (src/) never includes httpd's headers, so that libacmecore, a2acme, the
# unit tests and the fuzzers build and run without httpd. Only mod_acme.c and httpd/ may.
top=$(cd "$(dirname "$0")/.." && pwd)
found=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](httpd|http_[a-z_]+|ap_[a-z_]+|apr_optional_hooks|mod_[a-z_]+|util_[a-z_]+|mpm_[a-z_]+|scoreboard|unixd)\.h[>"]' \
        "$top"/src/*.c "$top"/src/*.h)
if [ -n "$found" ]; then
    echo "httpd headers included by core files in src/ (move the code to httpd/ or keep httpd out):"
    echo "$found"
    exit 1
fi
echo "src/: no httpd header included ($(ls "$top"/src/*.[ch] | wc -l) files)"
