#!/usr/bin/env bash
# Builds the libFuzzer harnesses test/fuzz/fuzz_*.c into build/fuzz/ (or $ACME_FUZZ_DIR) with
# Debian's clang: the httpd-free core sources are compiled with coverage instrumentation and
# ASan/UBSan into one archive, each harness links what it needs from it. A harness that
# #includes a core .c file (to reach a static parser) takes precedence over the archive member.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${ACME_FUZZ_DIR:-$top/build/fuzz}
CC=${CC_FUZZ:-clang}
mkdir -p "$out/obj"

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cflags="-std=c99 -g -O1 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wno-unused-parameter -Werror $san
  $(apr-1-config --cflags --cppflags --includes) $(apu-1-config --includes)
  $(pkg-config --cflags openssl libcurl jansson) -I$top/src"
libs="$(pkg-config --libs openssl libcurl jansson) $(apu-1-config --link-ld --libs)
  $(apr-1-config --link-ld --libs)"

# The core: every src/*.c that needs neither httpd nor a main() of its own.
core=()
for f in "$top"/src/*.c; do
  grep -q '^#include <httpd.h>\|^int main(' "$f" && continue
  core+=("$f")
done

objs=()
for f in "${core[@]}"; do
  o="$out/obj/$(basename "${f%.c}").o"
  if [ ! -f "$o" ] || [ "$f" -nt "$o" ] || [ "$0" -nt "$o" ] \
     || [ -n "$(find "$top/src" -name '*.h' -newer "$o" -print -quit)" ]; then
    # shellcheck disable=SC2086
    $CC $cflags -fsanitize=fuzzer-no-link -c "$f" -o "$o"
  fi
  objs+=("$o")
done
rm -f "$out/libacmecore-fuzz.a"
ar rcs "$out/libacmecore-fuzz.a" "${objs[@]}"

for h in "$top"/test/fuzz/fuzz_*.c; do
  name=$(basename "${h%.c}")
  # shellcheck disable=SC2086
  $CC $cflags -fsanitize=fuzzer "$h" "$out/libacmecore-fuzz.a" $libs -o "$out/$name"
  echo "built $out/$name"
done
