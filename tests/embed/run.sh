#!/bin/sh
#
# tests/embed/run.sh BUILD_DIR
#
# embeds libev the ev.pod way (#define EV_STANDALONE 1, #include "ev.c")
# from the patched tree BUILD_DIR/libev, which holds ev_iouring.c and
# ev_iouring_abi.h next to ev.c, and runs an io_uring loop in each
# configuration: EV_MULTIPLICITY 0 and 1, EV_FEATURES 0 with just epoll and
# io_uring, every feature, EV_RECOMMEND_IOURING; each one built with gcc
# and clang, as C and as C++ (-x c++).  Binaries go to BUILD_DIR/embed/.
#
# a configuration fails when it does not build, when the program fails
# (see embed.c), or when the compiler warns about ev_iouring.c or
# ev_iouring_abi.h with -Wall -Wextra (-Wunused-value excepted: it is
# libev's assert idiom).  exit status: 0 passed, 1 failed, 77 nothing ran
# (no compiler, or io_uring unusable here).

PROG=${0##*/}
SRCDIR=$(cd "$(dirname "$0")" && pwd -P)

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: $PROG BUILD_DIR" >&2
  exit 1
fi

B=$(cd "$1" && pwd -P)
LIBEV=$B/libev
OUT=$B/embed

for f in ev.c ev.h ev_vars.h ev_wrap.h ev_epoll.c ev_iouring.c ev_iouring_abi.h; do
  if [ ! -f "$LIBEV/$f" ]; then
    echo "$PROG: $LIBEV/$f missing (run make first)" >&2
    exit 1
  fi
done

mkdir -p "$OUT" || exit 1
rm -f "$OUT/results"

# name:flags
CONFIGS="
m0-min:-DEV_MULTIPLICITY=0
m1-min:-DEV_MULTIPLICITY=1
m0-full:-DEV_MULTIPLICITY=0 -DEMBED_FULL=1
m1-full:-DEV_MULTIPLICITY=1 -DEMBED_FULL=1
m1-recommend:-DEV_MULTIPLICITY=1 -DEV_RECOMMEND_IOURING=1
"

# name:compiler driver:language
COMPILERS="
gcc:gcc:c
g++:g++:c++
clang:clang:c
clang++:clang++:c++
"

ran=0
printf '%-8s %-13s %s\n' compiler config result

for comp in $COMPILERS; do
  cname=${comp%%:*}
  rest=${comp#*:}
  driver=${rest%%:*}
  lang=${rest#*:}
  if ! command -v "$driver" > /dev/null 2>&1; then
    printf '%-8s %-13s %s\n' "$cname" - "SKIP (no $driver)"
    continue
  fi
  ran=1

  echo "$CONFIGS" | while IFS=: read -r name flags; do
    [ -n "$name" ] || continue
    bin=$OUT/embed-$cname-$name
    log=$bin.log
    # shellcheck disable=SC2086
    if ! "$driver" -x "$lang" -O2 -g -Wall -Wextra $flags -I"$LIBEV" \
           "$SRCDIR/embed.c" -x none -o "$bin" -lm > "$log" 2>&1; then
      printf '%-8s %-13s %s\n' "$cname" "$name" "FAIL (build, see $log)"
      echo fail >> "$OUT/results"
      continue
    fi
    warn=$(grep -E 'ev_iouring(_abi\.h|\.c):[0-9]+:[0-9]+: warning' "$log" \
             | grep -v -- '-Wunused-value' | sort -u)
    timeout 30 "$bin" >> "$log" 2>&1
    rc=$?
    if [ $rc -eq 77 ]; then
      printf '%-8s %-13s %s\n' "$cname" "$name" "SKIP (no io_uring)"
      echo skip >> "$OUT/results"
    elif [ $rc -ne 0 ]; then
      printf '%-8s %-13s %s\n' "$cname" "$name" "FAIL (exit $rc: $(tail -n 1 "$log"))"
      echo fail >> "$OUT/results"
    elif [ -n "$warn" ]; then
      printf '%-8s %-13s %s\n' "$cname" "$name" "FAIL (warnings)"
      echo "$warn" | sed 's/^/    /'
      echo fail >> "$OUT/results"
    else
      printf '%-8s %-13s %s\n' "$cname" "$name" ok
      echo pass >> "$OUT/results"
    fi
  done
done

[ "$ran" -eq 1 ] || { echo "$PROG: SKIP: no compiler"; exit 77; }
pass=$(grep -c '^pass' "$OUT/results" 2>/dev/null)
failed=$(grep -c '^fail' "$OUT/results" 2>/dev/null)
skipped=$(grep -c '^skip' "$OUT/results" 2>/dev/null)
echo "$PROG: ${pass:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
[ "${failed:-0}" -eq 0 ] || exit 1
[ "${pass:-0}" -gt 0 ] || exit 77
exit 0
