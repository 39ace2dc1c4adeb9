#!/bin/bash
#
# tests/deb/run.sh BUILD_DIR
#
# installs the packages of make deb (BUILD_DIR/deb/libev4_*.deb and
# libev-dev_*.deb) over Debian's on this system with apt-get, checks them,
# and puts Debian's packages back, whatever happened in between (trap).
#
#   1. Debian's libev4 and three reverse dependencies (nghttp2-server,
#      hitch, python3-gevent) are installed first when absent, with nghttp2's
#      h2load; the set of installed packages is recorded.
#   2. apt-get install ./libev4_*.deb ./libev-dev_*.deb: apt must plan no
#      removal (checked on a simulation before the real run), and afterwards
#      every package installed before still is.
#   3. dpkg -L libev4 lists libev.so.4, ldd /usr/sbin/nghttpd resolves
#      libev.so.4 to that packaged file, and dpkg --verify finds it intact.
#   4. nghttpd (Debian's, no LD_LIBRARY_PATH) serves h2load with
#      LIBEV_FLAGS=128: every request succeeds, and the process holds an
#      anon_inode:[io_uring] fd and maps the packaged file; started without
#      LIBEV_FLAGS it holds an epoll fd and no ring (the backend is opt-in).
#   5. apt-get install --allow-downgrades libev4=<Debian's version>
#      libev-dev=<Debian's version> (libev-dev is removed again when it was
#      not installed before), then: Debian's version, dpkg --verify clean,
#      nghttpd resolves to a libev.so.4 without our backend.
#
# run as root on Debian (12).  exit status: 0 passed, 1 failed, 77 cannot
# run here (not root, no apt-get, packages not installable, io_uring
# disabled for step 4).  Every process runs under timeout (1).

[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

set -u

PROG=${0##*/}
REQUESTS=${DEB_CHECK_REQUESTS:-20000}
FAILED=0
DEV_BEFORE=
SKIPPED=
INSTALLED_OURS=
W=

say ()  { echo "$PROG: $*"; }
fail () { echo "FAIL: $*"; FAILED=1; }
pass () { echo "ok: $*"; }
die ()  { echo "$PROG: $*" >&2; exit 1; }
skip () { echo "$PROG: SKIP: $*" >&2; exit 77; }

[ $# -eq 1 ] && [ -d "$1" ] || die "usage: $PROG BUILD_DIR"
B=$(cd "$1" && pwd -P)
D=$B/deb

[ "$(id -u)" = 0 ] || skip "installing packages needs root"
command -v apt-get > /dev/null 2>&1 && command -v dpkg > /dev/null 2>&1 \
  || skip "not a Debian system (no apt-get)"

ARCH=$(dpkg --print-architecture)
[ -f "$D/debian-version" ] || die "$D/debian-version missing (run make deb)"
STOCK=$(cat "$D/debian-version")
set -- "$D"/libev4_*_"$ARCH".deb
[ $# -eq 1 ] && [ -f "$1" ] || die "expected one libev4_*_$ARCH.deb in $D (run make deb)"
DEB_LIB=$1
set -- "$D"/libev-dev_*_"$ARCH".deb
[ $# -eq 1 ] && [ -f "$1" ] || die "expected one libev-dev_*_$ARCH.deb in $D (run make deb)"
DEB_DEV=$1
OURS=$(dpkg-deb -f "$DEB_LIB" Version)
[ "$(dpkg-deb -f "$DEB_DEV" Version)" = "$OURS" ] || die "$DEB_LIB and $DEB_DEV differ in version"
say "ours $OURS, Debian's $STOCK"

export DEBIAN_FRONTEND=noninteractive
# wait for another apt-get instead of failing on its lock
APT="apt-get -y -q -o DPkg::Lock::Timeout=300"

# installed_version PKG: its version when installed, else nothing
installed_version ()
{
  dpkg-query -W -f '${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null \
    | awk '$1 == "ii" { print $2 }'
}

# apt_install ARGS...: apt-get install, no service started meanwhile
apt_install ()
{
  local rcd='' rc
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    rcd=1
  fi
  $APT install "$@" >> "$W/apt.log" 2>&1
  rc=$?
  [ -z "$rcd" ] || rm -f /usr/sbin/policy-rc.d
  return $rc
}

# libev_of PROG: the libev.so.4 ld.so resolves for PROG, symlinks resolved
libev_of ()
{
  local f
  f=$(ldd "$1" 2>/dev/null | awk '$1 == "libev.so.4" { print $3 }')
  [ -n "$f" ] && readlink -f "$f"
}

W=$(mktemp -d /tmp/ev-deb.XXXXXX) || die "mktemp failed"
BG_PIDS=

#############################################################################
# 5. restore, on every exit

restore ()
{
  local rc=$? p v lib
  trap - EXIT INT TERM
  for p in $BG_PIDS; do
    kill "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ -n "$INSTALLED_OURS" ]; then
    say "restoring Debian's libev4 $STOCK"
    set -- "libev4=$STOCK"
    [ -z "$(installed_version libev-dev)" ] || set -- "$@" "libev-dev=$STOCK"
    apt_install --allow-downgrades "$@" || fail "apt-get install --allow-downgrades $* failed (see $W/apt.log)"
    if [ -z "$DEV_BEFORE" ] && [ -n "$(installed_version libev-dev)" ]; then
      $APT remove libev-dev >> "$W/apt.log" 2>&1 || fail "apt-get remove libev-dev failed"
    fi
    v=$(installed_version libev4)
    if [ "$v" = "$STOCK" ] && dpkg --verify libev4 > "$W/verify.stock" 2>&1 && [ ! -s "$W/verify.stock" ]; then
      pass "libev4 $v is back, dpkg --verify clean"
    else
      fail "libev4 is '$v' after the restore, not $STOCK ($(cat "$W/verify.stock"))"
    fi
    [ "$(installed_version libev-dev)" = "$DEV_BEFORE" ] \
      || fail "libev-dev is '$(installed_version libev-dev)', was '$DEV_BEFORE'"
    lib=$(libev_of /usr/sbin/nghttpd)
    if [ -n "$lib" ] && ! grep -aq LIBEV_IOURING_VERBOSE "$lib"; then
      pass "nghttpd resolves libev.so.4 to $lib, Debian's again"
    else
      fail "after the restore nghttpd resolves libev.so.4 to '$lib', which has our backend"
    fi
  fi
  if [ $rc -eq 0 ] && [ "$FAILED" -ne 0 ]; then
    rc=1
  fi
  if [ $rc -eq 0 ] && [ -n "$SKIPPED" ]; then
    say "SKIP: $SKIPPED"
    rc=77
  fi
  if [ "$FAILED" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$W"
  else
    say "logs kept in $W"
  fi
  [ $rc -ne 0 ] || say "all passed"
  exit $rc
}
trap restore EXIT
trap 'exit 1' INT TERM

#############################################################################
# 1. Debian's libev4 and its reverse dependencies

need=
[ "$(installed_version libev4)" = "$STOCK" ] || need="$need libev4=$STOCK"
for p in nghttp2-server nghttp2-client hitch python3-gevent; do
  [ -n "$(installed_version "$p")" ] || need="$need $p"
done
if [ -n "$need" ]; then
  say "installing$need"
  $APT update -qq >> "$W/apt.log" 2>&1
  # shellcheck disable=SC2086 # one word per package
  apt_install --no-install-recommends --allow-downgrades $need \
    || skip "apt-get install$need failed (see $W/apt.log)"
fi
v=$(installed_version libev4)
[ "$v" = "$STOCK" ] || die "libev4 is $v, not Debian's $STOCK"
DEV_BEFORE=$(installed_version libev-dev)
[ -z "$DEV_BEFORE" ] || [ "$DEV_BEFORE" = "$STOCK" ] || die "libev-dev is $DEV_BEFORE, not Debian's $STOCK"
dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package} ${Version}\n' \
  | awk '$1 == "ii" { print $2, $3 }' | sort > "$W/before"
RDEPS=$(apt-cache rdepends --installed libev4 2>/dev/null | awk 'NR > 2 { print $1 }' | sort -u | tr '\n' ' ' | sed 's/ $//')
say "installed reverse dependencies of libev4: $RDEPS"

# the way back must exist before we go: apt must know Debian's version
if ! apt-cache show "libev4=$STOCK" "libev-dev=$STOCK" > /dev/null 2>&1; then
  $APT update -qq >> "$W/apt.log" 2>&1
  apt-cache show "libev4=$STOCK" "libev-dev=$STOCK" > /dev/null 2>&1 \
    || skip "apt knows no libev4/libev-dev $STOCK to restore; not installing ours"
fi

#############################################################################
# 2. our packages over Debian's

$APT install -s "$DEB_LIB" "$DEB_DEV" > "$W/simulate.log" 2>&1 \
  || { cat "$W/simulate.log"; die "apt-get install -s failed"; }
if grep -q '^Remv ' "$W/simulate.log"; then
  fail "apt-get would remove: $(grep '^Remv ' "$W/simulate.log" | awk '{ print $2 }' | tr '\n' ' ')"
  exit 1
fi
pass "apt-get plans no removal: $(grep -c '^Inst ' "$W/simulate.log") packages to install"

INSTALLED_OURS=1
say "apt-get install $DEB_LIB $DEB_DEV"
apt_install "$DEB_LIB" "$DEB_DEV" || { tail -n 20 "$W/apt.log"; fail "apt-get install of our packages failed"; exit 1; }
[ "$(installed_version libev4)" = "$OURS" ] && [ "$(installed_version libev-dev)" = "$OURS" ] \
  || { fail "libev4/libev-dev are not at $OURS after apt-get install"; exit 1; }
pass "libev4 and libev-dev $OURS installed"

dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' | awk '$1 == "ii" { print $2 }' | sort > "$W/after"
gone=$(awk '{ print $1 }' "$W/before" | comm -23 - "$W/after" | tr '\n' ' ')
if [ -n "$gone" ]; then
  fail "packages removed: $gone"
else
  pass "no package removed ($(wc -l < "$W/after") installed; reverse dependencies: $RDEPS)"
fi
for p in nghttp2-server hitch python3-gevent; do
  [ -n "$(installed_version "$p")" ] || fail "$p is no longer installed"
done

#############################################################################
# 3. the packaged file, as dpkg and ld.so see it

PKGLIB=$(dpkg -L libev4 | grep '/libev\.so\.4$' | head -n 1)
if [ -n "$PKGLIB" ]; then
  pass "dpkg -L libev4 lists $PKGLIB"
else
  fail "dpkg -L libev4 lists no libev.so.4"
fi
REAL=$(readlink -f "$PKGLIB")
LIB=$(libev_of /usr/sbin/nghttpd)
if [ -n "$LIB" ] && [ "$LIB" = "$REAL" ]; then
  pass "ldd /usr/sbin/nghttpd: libev.so.4 => $LIB"
else
  fail "ldd /usr/sbin/nghttpd resolves libev.so.4 to '$LIB', not the packaged $REAL"
fi
owner=$(dpkg -S "$REAL" 2>/dev/null | cut -d: -f1)
[ "$owner" = libev4 ] || fail "dpkg -S $REAL: '$owner', not libev4"
if dpkg --verify libev4 > "$W/verify.ours" 2>&1 && [ ! -s "$W/verify.ours" ] \
   && grep -aq LIBEV_IOURING_VERBOSE "$REAL"; then
  pass "dpkg --verify libev4 clean, $REAL has our backend"
else
  fail "$REAL is not our packaged file: $(cat "$W/verify.ours")"
fi

#############################################################################
# 4. Debian's nghttpd on the package, LIBEV_FLAGS=128 and unset

free_port ()
{
  local port hex
  while :; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    hex=$(printf ':%04X ' "$port")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q "$hex" || { echo "$port"; return; }
  done
}

# server_pid WRAPPER: the pid of timeout (1)'s child, once it exists
server_pid ()
{
  local c
  for _ in $(seq 50); do
    c=$(cat /proc/"$1"/task/*/children 2>/dev/null | awk '{ print $1 }')
    [ -n "$c" ] && { echo "$c"; return 0; }
    sleep 0.1
  done
  return 1
}

wait_listen ()
{
  local hex
  hex=$(printf ':%04X 00000000:0000 0A' "$1")
  for _ in $(seq 100); do
    grep -q "$hex" /proc/net/tcp && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# nghttpd_round NAME FLAGS: nghttpd with LIBEV_FLAGS=FLAGS (- for unset),
# h2load against it; prints "rings polls" of the server, seen mid-run
nghttpd_round ()
{
  local name=$1 flags=$2 port t s fds rings polls line
  port=$(free_port)
  if [ "$flags" = - ]; then
    env -u LIBEV_FLAGS LIBEV_IOURING_VERBOSE=1 timeout 120 \
      nghttpd --no-tls -a 127.0.0.1 -d "$W/www" "$port" > "$W/$name.out" 2> "$W/$name.err" &
  else
    env LIBEV_FLAGS="$flags" LIBEV_IOURING_VERBOSE=1 timeout 120 \
      nghttpd --no-tls -a 127.0.0.1 -d "$W/www" "$port" > "$W/$name.out" 2> "$W/$name.err" &
  fi
  t=$!
  BG_PIDS="$BG_PIDS $t"
  s=$(server_pid "$t") || { fail "$name: nghttpd did not start: $(head -n 3 "$W/$name.err")"; return 1; }
  wait_listen "$port" "$s" || { fail "$name: nghttpd not listening on $port: $(head -n 3 "$W/$name.err")"; return 1; }
  timeout 120 h2load -n "$REQUESTS" -c 10 -m 10 "http://127.0.0.1:$port/small.bin" > "$W/$name.h2load" 2>&1 &
  BG_PIDS="$BG_PIDS $!"
  sleep 0.3
  fds=$(ls -l /proc/"$s"/fd 2>/dev/null)
  rings=$(printf '%s\n' "$fds" | grep -c 'anon_inode:\[io_uring\]')
  polls=$(printf '%s\n' "$fds" | grep -c 'anon_inode:\[eventpoll\]')
  grep -q " $REAL\$" /proc/"$s"/maps || fail "$name: nghttpd[$s] does not map $REAL"
  wait $! || fail "$name: h2load exit status $?"
  line=$(grep '^requests:' "$W/$name.h2load")
  case $line in
    "requests: $REQUESTS total, $REQUESTS started, $REQUESTS done, $REQUESTS succeeded, 0 failed, 0 errored"*) ;;
    *) fail "$name: h2load: ${line:-no result}" ;;
  esac
  kill -TERM "$s" 2>/dev/null
  wait "$t" 2>/dev/null
  if grep -aqE 'Assertion|\(libev\)|Aborted|Segmentation' "$W/$name.err"; then
    fail "$name: $(head -n 3 "$W/$name.err")"
  fi
  echo "$rings $polls $(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$W/$name.h2load")" > "$W/$name.fds"
}

mkdir -p "$W/www"
head -c 1024 /dev/urandom > "$W/www/small.bin"

if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 2 ]; then
  SKIPPED="io_uring disabled (kernel.io_uring_disabled=2): nghttpd not run on it"
else
  if nghttpd_round uring 128; then
    read -r rings polls rps < "$W/uring.fds"
    if [ "$rings" -gt 0 ] && grep -aq '^libev: io_uring ring fd' "$W/uring.err"; then
      pass "LIBEV_FLAGS=128: nghttpd on $REAL served $REQUESTS requests (${rps%.*} req/s) with an anon_inode:[io_uring] fd"
    else
      fail "LIBEV_FLAGS=128: nghttpd has $rings io_uring fds, $polls epoll fds; $(head -n 2 "$W/uring.err")"
    fi
  fi
fi
if nghttpd_round default -; then
  read -r rings polls rps < "$W/default.fds"
  if [ "$rings" -eq 0 ] && [ "$polls" -gt 0 ]; then
    pass "LIBEV_FLAGS unset: nghttpd served $REQUESTS requests (${rps%.*} req/s) on epoll, no ring"
  else
    fail "LIBEV_FLAGS unset: nghttpd has $rings io_uring fds, $polls epoll fds (the backend must stay opt-in)"
  fi
fi

exit 0
