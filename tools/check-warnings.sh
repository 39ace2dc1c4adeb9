#!/bin/sh
# check-warnings.sh: our code must compile without a single warning.
#
#   CC=gcc CLANG=clang sh tools/check-warnings.sh B srcdir
#
# 1. the patched ev.c (which #includes ev_iouring.c) under $CC and $CLANG,
#    as C (-std=gnu99) and as C++ (-x c++), with -DHAVE_CONFIG_H and with
#    -DEV_STANDALONE=1, at -Wall -Wextra -Wno-unused-value -O2.  libev 4.33's ev.c is not
#    -Wextra-clean itself (unused parameters, sign compares, an extern
#    initialiser), so -Werror is applied to our files only: any diagnostic
#    located in ev_iouring.c or ev_iouring_abi.h fails, and a diagnostic in
#    libev's own files fails if the pristine 4.33 tree, built the same way,
#    does not have it too (compared without line numbers).
# 2. ev_iouring_abi.h alone, as C99 and C++11, -Wall -Wextra -pedantic
#    -Werror, and freestanding (-nostdinc, only the compiler's own headers):
#    it must need nothing from libc or the kernel.

set -u

B=${1:?usage: check-warnings.sh B srcdir}
srcdir=${2:?usage: check-warnings.sh B srcdir}
CC=${CC:-cc}
CLANG=${CLANG:-clang}
W=$B/check-warnings
PATCHED=$B/libev
PRISTINE=$W/pristine
WARN="-Wall -Wextra -Wno-unused-value"
fail=0

rm -rf "$W"
mkdir -p "$W"

# the pristine tree with 4.33's own ev_iouring.c, configured like ours
cp -R "$B/libev-4.33" "$PRISTINE"
cp "$PATCHED/config.h" "$PRISTINE/config.h"

# diagnostics of one compile, as "file: kind: message" lines, sorted
diags ()
{
  grep -E '^[^ :]+:[0-9]+:[0-9]+: (warning|error):' "$1" \
    | sed -E 's|^([^ :]*/)?([^/ :]+):[0-9]+:[0-9]+: |\2: |' \
    | LC_ALL=C sort
}

compile ()
{
  # compile tag dir compiler args...
  c_tag=$1 c_dir=$2 c_cc=$3
  shift 3
  # shellcheck disable=SC2086 # WARN and cc are lists
  (cd "$c_dir" && $c_cc "$@" $WARN -O2 -I. -c -o /dev/null ev.c) >"$W/$c_tag.log" 2>&1
  echo $?
}

for cc in "$CC" "$CLANG"
do
  ccname=$(echo "$cc" | tr -c 'A-Za-z0-9\n' '_')
  for lang in c c++
  do
    case $lang in
      c)   langflags="-std=gnu99" ;;
      c++) langflags="-x c++" ;;
    esac
    for conf in config standalone
    do
      case $conf in
        config)     confflags="-DHAVE_CONFIG_H" ;;
        standalone) confflags="-DEV_STANDALONE=1" ;;
      esac
      tag=$ccname-$lang-$conf
      # shellcheck disable=SC2086
      rc=$(compile "$tag" "$PATCHED" "$cc" $langflags $confflags)
      # shellcheck disable=SC2086
      compile "$tag.pristine" "$PRISTINE" "$cc" $langflags $confflags >/dev/null
      diags "$W/$tag.pristine.log" | grep -v '^ev_iouring' >"$W/$tag.pristine.diags"

      diags "$W/$tag.log" >"$W/$tag.diags"

      ours=$(grep -E '^ev_iouring(\.c|_abi\.h): ' "$W/$tag.diags")
      grep -v -E '^ev_iouring(\.c|_abi\.h): ' "$W/$tag.diags" >"$W/$tag.libev.diags"
      new=$(LC_ALL=C comm -23 "$W/$tag.libev.diags" "$W/$tag.pristine.diags")

      if [ "$rc" != 0 ] || [ -n "$ours" ] || [ -n "$new" ]
      then
        echo "FAIL: ev.c, $cc, $lang, $conf"
        [ "$rc" != 0 ] && echo "  the compile failed (exit $rc)"
        [ -n "$ours" ] && echo "  in our files:" && grep -E -A4 'ev_iouring(\.c|_abi\.h):[0-9]+:[0-9]+: (warning|error)' "$W/$tag.log" | sed 's/^/    /'
        [ -n "$new" ] && echo "  new in libev's files (not in pristine 4.33):" && echo "$new" | sed 's/^/    /'
        fail=1
      else
        echo "ok: ev.c, $cc, $lang, $conf ($(wc -l <"$W/$tag.libev.diags") warnings of libev 4.33's own)"
      fi
    done
  done
done

# the ABI header alone
printf '#include "ev_iouring_abi.h"\nint ev_iouring_abi_check;\n' >"$W/abi.c"
for cc in "$CC" "$CLANG"
do
  inc=$($cc -print-file-name=include)
  case $cc in
    *clang*) inc=$($cc -print-resource-dir)/include ;;
  esac
  for std in "-std=c99" "-x c++ -std=c++11"
  do
    for free in hosted freestanding
    do
      case $free in
        hosted)       freeflags="" ;;
        freestanding) freeflags="-ffreestanding -nostdinc -isystem $inc" ;;
      esac
      # shellcheck disable=SC2086
      if $cc $std $freeflags -Wall -Wextra -pedantic -Werror -I"$srcdir" -c -o /dev/null "$W/abi.c" >"$W/abi.log" 2>&1
      then
        echo "ok: ev_iouring_abi.h, $cc $std, $free"
      else
        echo "FAIL: ev_iouring_abi.h, $cc $std, $free"
        sed 's/^/    /' "$W/abi.log"
        fail=1
      fi
    done
  done
done

[ "$fail" = 0 ] && echo "check-warnings: clean"
exit $fail
