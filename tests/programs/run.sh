#!/bin/bash
#
# tests/programs/run.sh BUILD_DIR
#
# real libev programs on BUILD_DIR/libev.so.4: Debian's nghttpd, h2load,
# nghttp, nghttpx, hitch, gdnsd (DNS over UDP and TCP) and shadowsocks-libev
# (ss-server, ss-local and ss-tunnel: a SOCKS5 proxy over many short TCP
# connections, and a UDP relay) are run with LD_LIBRARY_PATH=BUILD_DIR and
# LIBEV_FLAGS=128 (io_uring) or 4 (epoll, the reference), on loopback only.
# python3-gevent ignores LIBEV_FLAGS (it names its backends itself): its
# WSGI server runs with GEVENT_BACKEND=linux_iouring or epoll instead.
#
# a scenario passes when every request succeeded (h2load's own counters),
# every DNS answer is the zone's (kdig, directly and through ss-tunnel),
# downloads are bit-exact (sha256), no process aborted or logged a libev
# error, and every process under test was seen, through /proc/PID/maps and
# /proc/PID/fd, to run BUILD_DIR's libev with an io_uring ring (128) or
# with no ring at all (4).  a client too quick to be sampled is judged by
# what ld.so loaded (LD_DEBUG=libs) and by the backend's verbose line.
# the summary's "server us/req" is the on-cpu time of the server's (or
# proxy's) process tree during the first h2load run, per request; for
# gdnsd, per TCP query (its UDP path does not use libev); for shadowsocks,
# ss-local's and ss-server's per proxied connection.
#
# exit status: 0 all passed, 1 a failure, 77 cannot run here (tools missing
# and not installable, io_uring disabled).  Every process runs under
# timeout (1); the whole script takes about a minute and a half on two
# busy cores.
#
# environment knobs:
#   H2LOAD_REQUESTS  requests per h2load run on the small file (100000)
#   DNS_QUERIES      UDP queries sent to gdnsd, a multiple of 200 (4000);
#                    a quarter as many go over TCP
#   SS_CONNECTIONS   SOCKS5 connections through ss-local/ss-server (500)
#   GEVENT_REQUESTS  HTTP/1.1 requests to gevent's WSGI server (10000)
#   SCENARIOS        which to run, of: symbols linked nghttpd nghttpx hitch
#                    gdnsd shadowsocks gevent (all)
#   KEEP=1           keep the work directory (logs) even when all passed
#   LIBEV_PROGRAMS_VERBOSE_RE  extended regex matching the backend's
#                    LIBEV_IOURING_VERBOSE setup line (never a failure)
#   LIBEV_PROGRAMS_FALLBACK_RE extended regex matching its epoll fallback
#                    line (a failure: the backend was not the one in use)

# make check-programs runs us with sh: this script needs bash (RANDOM, local)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

set -u

PROG=${0##*/}
H2LOAD_REQUESTS=${H2LOAD_REQUESTS:-100000}
DNS_QUERIES=${DNS_QUERIES:-4000}
SS_CONNECTIONS=${SS_CONNECTIONS:-500}
GEVENT_REQUESTS=${GEVENT_REQUESTS:-10000}
SCENARIOS=${SCENARIOS:-symbols linked nghttpd nghttpx hitch gdnsd shadowsocks gevent}
# Debian's python, the one python3-gevent is installed for
DEB_PYTHON=/usr/bin/python3
CLIENT_TIMEOUT=120
SERVER_TIMEOUT=600
VERBOSE_RE=${LIBEV_PROGRAMS_VERBOSE_RE:-'^libev: io_uring ring fd'}
FALLBACK_RE=${LIBEV_PROGRAMS_FALLBACK_RE:-'io_?uring.*(fall(ing|s)? ?back|switch(ing|es)? to epoll)'}
CRASH_RE='Assertion|\(libev\)|Aborted|Segmentation fault|terminated by signal|exited abnormally|AddressSanitizer|runtime error:'

die ()
{
  echo "$PROG: $*" >&2
  exit 1
}

skip ()
{
  echo "$PROG: SKIP: $*" >&2
  exit 77
}

[ $# -eq 1 ] || die "usage: $PROG BUILD_DIR"
[ -d "$1" ] || die "$1: no such directory"
B=$(cd "$1" && pwd -P)
[ -e "$B/libev.so.4" ] || die "$B/libev.so.4 missing (run make first)"
# the file processes must map: BUILD_DIR/libev.so.4, symlinks resolved
OURS=$(readlink -f "$B/libev.so.4")

#############################################################################
# tools

# command -> Debian package
need_pkgs=
need ()
{
  command -v "$1" >/dev/null 2>&1 || need_pkgs="$need_pkgs $2"
}

need nghttpd   nghttp2-server
need nghttp    nghttp2-client
need h2load    nghttp2-client
need nghttpx   nghttp2-proxy
need hitch     hitch
need gdnsd     gdnsd
need kdig      knot-dnsutils
need ss-server shadowsocks-libev
need ss-local  shadowsocks-libev
need ss-tunnel shadowsocks-libev
need curl      curl
need python3   python3
"$DEB_PYTHON" -c 'import gevent' > /dev/null 2>&1 || need_pkgs="$need_pkgs python3-gevent"
need openssl   openssl
need nm        binutils
need ldd       libc-bin
need readelf   binutils
need timeout   coreutils
need sha256sum coreutils
sys_lib=$(ls /usr/lib/*/libev.so.4 /lib/*/libev.so.4 2>/dev/null | head -n 1)
[ -n "$sys_lib" ] || need_pkgs="$need_pkgs libev4"

if [ -n "$need_pkgs" ]; then
  need_pkgs=$(echo $need_pkgs | tr ' ' '\n' | sort -u | tr '\n' ' ')
  cmd="apt-get update && apt-get install -y --no-install-recommends $need_pkgs"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    skip "missing packages; install them with: $cmd"
  fi
  echo "$PROG: installing $need_pkgs"
  # keep the packages' services (nghttpx, hitch) from being started
  rcd=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    rcd=1
  fi
  DEBIAN_FRONTEND=noninteractive sh -c "$cmd" >/dev/null 2>&1
  rc=$?
  [ -z "$rcd" ] || rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || skip "apt-get failed; run: $cmd"
  sys_lib=$(ls /usr/lib/*/libev.so.4 /lib/*/libev.so.4 2>/dev/null | head -n 1)
  for c in nghttpd nghttp h2load nghttpx hitch gdnsd kdig ss-server ss-local ss-tunnel curl python3 \
           openssl nm ldd readelf timeout sha256sum; do
    command -v "$c" >/dev/null 2>&1 || skip "$c still missing after apt-get (PATH=$PATH)"
  done
  [ -n "$sys_lib" ] || skip "Debian's libev.so.4 still missing after apt-get"
  "$DEB_PYTHON" -c 'import gevent' > /dev/null 2>&1 || skip "$DEB_PYTHON cannot import gevent after apt-get"
fi

case $(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0) in
  2) skip "io_uring disabled (kernel.io_uring_disabled=2)" ;;
esac

#############################################################################
# work directory, process bookkeeping

W=$(mktemp -d /tmp/ev-programs.XXXXXX) || die "mktemp failed"
BG_PIDS=
FAILED=0

cleanup ()
{
  local p
  for p in $BG_PIDS; do
    kill "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "$FAILED" -eq 0 ] && [ -z "${KEEP:-}" ]; then
    rm -rf "$W"
  else
    echo "$PROG: logs kept in $W"
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail ()
{
  echo "FAIL: $*"
  FAILED=1
  SC_FAIL="$SC_FAIL $*;"
}

# free_port: a loopback port nobody uses now, for TCP or UDP, and we have
# not handed out (callers use $(free_port): the record is a file)
free_port ()
{
  local port hex
  while :; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    hex=$(printf ':%04X ' "$port")
    ! grep -qx "$port" "$W/ports.used" 2>/dev/null || continue
    if ! cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | grep -q "$hex"; then
      echo "$port" >> "$W/ports.used"
      echo "$port"
      return
    fi
  done
}

# wait_listen PORT PID: until PORT is in LISTEN state (10 s at most)
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

# descendants PID: every process below PID, recursively
descendants ()
{
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

# sample ROOT: "pid comm libev-path io_uring-fds epoll-fds" per process
# below ROOT (the timeout (1) wrapper itself is left out)
sample ()
{
  local p comm lib fds
  for p in $(descendants "$1"); do
    comm=$(cat /proc/"$p"/comm 2>/dev/null) || continue
    [ "$comm" != timeout ] || continue
    lib=$(grep -m 1 -o '/[^ ]*libev\.so[^ ]*' /proc/"$p"/maps 2>/dev/null)
    fds=$(ls -l /proc/"$p"/fd 2>/dev/null)
    echo "$p $comm ${lib:--}" \
      "$(printf '%s\n' "$fds" | grep -c 'anon_inode:\[io_uring\]')" \
      "$(printf '%s\n' "$fds" | grep -c 'anon_inode:\[eventpoll\]')"
  done
}

# monitor ROOT FILE: sample ROOT every 50 ms while it lives
monitor ()
{
  while kill -0 "$1" 2>/dev/null; do
    sample "$1" >> "$2"
    sleep 0.05
  done
}

# launch NAME FLAGS TIMEOUT CMD...: run CMD in the background on our
# library, LAUNCHED is the pid of its timeout wrapper, NAME.procs the samples
launch ()
{
  local name=$1 flags=$2 t=$3
  shift 3
  env LD_LIBRARY_PATH="$B" LIBEV_FLAGS="$flags" LIBEV_IOURING_VERBOSE=1 \
    LD_DEBUG=libs LD_DEBUG_OUTPUT="$W/$name.ld" \
    timeout "$t" "$@" > "${LAUNCH_OUT:-$W/$name.out}" 2> "$W/$name.err" &
  LAUNCHED=$!
  BG_PIDS="$BG_PIDS $LAUNCHED"
  monitor "$LAUNCHED" "$W/$name.procs" &
  BG_PIDS="$BG_PIDS $!"
  echo "$name: LIBEV_FLAGS=$flags $*" > "$W/$name.cmd"
}

# check_procs NAME FLAGS [FINAL]: judge the samples of NAME; FINAL is a
# file with the last sample of a server taken just before it was stopped
check_procs ()
{
  local name=$1 flags=$2 final=${3:-} verdict libs lib rings procs
  verdict=$(awk -v B="$B/" -v R="$OURS" -v flags="$flags" -v final="$final" '
    FNR == NR && final != "" && FILENAME == final {
      fin [$1] = $4; next
    }
    {
      pid = $1; comm [pid] = $2
      if ($3 == "-") ;
      else if ($3 == R) ours [pid] = 1
      else other [pid] = $3
      if ($4 > ur [pid]) ur [pid] = $4
      if ($5 > ep [pid]) ep [pid] = $5
    }
    END {
      n = 0; rings = 0; polls = 0; bad = ""
      for (pid in comm) {
        n++
        if (pid in other)
          bad = bad sprintf (" %s[%s] maps %s;", comm [pid], pid, other [pid])
        else if (!(pid in ours))
          continue
        rings += ur [pid]; polls += ep [pid]
        if (flags == 128 && ep [pid] > 0 && ur [pid] == 0)
          bad = bad sprintf (" %s[%s] polls with epoll, no io_uring;", comm [pid], pid)
        if (flags == 4 && ur [pid] > 0)
          bad = bad sprintf (" %s[%s] has an io_uring fd;", comm [pid], pid)
        if (final != "" && ur [pid] > 0 && (pid in fin) && fin [pid] == 0)
          bad = bad sprintf (" %s[%s] lost its io_uring fd;", comm [pid], pid)
        seen++
        if (ur [pid] > 0 || ep [pid] > 0) looped++
      }
      if (!looped && bad == "") { print "UNSEEN"; exit }
      if (!seen) bad = bad " no process seen mapping " B "libev.so.4;"
      else if (flags == 128 && !rings) bad = bad " no io_uring fd seen;"
      else if (flags == 4 && !polls) bad = bad " no epoll fd seen;"
      if (bad != "") print "BAD" bad
      else print "OK", seen, rings, polls
    }' ${final:+"$final"} "$W/$name.procs" 2>/dev/null)
  # what ld.so loaded (LD_DEBUG=libs): BUILD_DIR's libev and nothing else
  libs=$(cat "$W/$name".ld.* 2>/dev/null \
           | sed -n 's/.*calling init: \(.*libev\.so[^ ]*\).*/\1/p' | sort -u)
  for lib in $libs; do
    case $lib in
      "$B/libev.so.4"|"$OURS") ;;
      *) fail "$name: ld.so loaded $lib" ;;
    esac
  done
  [ -n "$libs" ] || fail "$name: ld.so never loaded a libev"

  # a client that came and went between two samples: ld.so said which
  # library it loaded, the backend's verbose line says whether it made a ring
  if [ "$verdict" = UNSEEN ]; then
    rings=$(grep -acE "$VERBOSE_RE" "$W/$name.err")
    procs=$(grep -l 'calling init: .*libev\.so' "$W/$name".ld.* 2>/dev/null | wc -l)
    if [ "$flags" = 128 ] && [ "$rings" -gt 0 ] && [ "$procs" -gt 0 ]; then
      verdict="OK $procs $rings 0"
    elif [ "$flags" = 4 ] && [ "$rings" -eq 0 ] && [ "$procs" -gt 0 ]; then
      verdict="OK $procs 0 $procs"
    fi
    SC_FAST=$((SC_FAST + 1))
  fi

  case $verdict in
    BAD*)
      fail "$name: ${verdict#BAD }"
      SC_PBAD="$SC_PBAD, ${name##*.} BAD" ;;
    OK*)
      set -- $verdict
      SC_PROCS=$((SC_PROCS + $2)) SC_RINGS=$((SC_RINGS + $3)) SC_POLLS=$((SC_POLLS + $4)) ;;
    *)
      fail "$name: never seen running"
      SC_PBAD="$SC_PBAD, ${name##*.} unseen" ;;
  esac
}

# check_log NAME: no abort, no libev error, no fallback in NAME's output
check_log ()
{
  local lines
  lines=$(cat "$W/$1.out" "$W/$1.err" 2>/dev/null | grep -avE "$VERBOSE_RE" \
            | grep -aE "$CRASH_RE" | head -n 3)
  [ -z "$lines" ] || fail "$1: $(echo $lines)"
  lines=$(cat "$W/$1.err" 2>/dev/null | grep -aiE "$FALLBACK_RE" | head -n 1)
  [ -z "$lines" ] || fail "$1: backend fell back: $lines"
}

# finish_client NAME: wait for a client, check its status, log and procs
finish_client ()
{
  local name=$1 flags=$2 pid=$3 rc
  wait "$pid"
  rc=$?
  [ $rc -eq 0 ] || fail "$name: exit status $rc"
  check_log "$name"
  check_procs "$name" "$flags"
}

# stop_server NAME FLAGS PID: last sample, SIGTERM, then judge it
stop_server ()
{
  local name=$1 flags=$2 pid=$3 p rc
  sample "$pid" > "$W/$name.final"
  cat "$W/$name.final" >> "$W/$name.procs"
  for p in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    kill -TERM "$p" 2>/dev/null
  done
  wait "$pid"
  rc=$?
  # 143: killed by our SIGTERM; 124 would be timeout (1) expiring
  [ $rc -eq 0 ] || [ $rc -eq 143 ] || fail "$name: exit status $rc"
  check_log "$name"
  check_procs "$name" "$flags" "$W/$name.final"
}

# start_server NAME FLAGS PORT CMD...
start_server ()
{
  local name=$1 flags=$2 port=$3
  shift 3
  launch "$name" "$flags" "$SERVER_TIMEOUT" "$@"
  if ! wait_listen "$port" "$LAUNCHED"; then
    fail "$name: not listening on $port"
    sed -n 1,5p "$W/$name.err"
    return 1
  fi
}

# tree_cpu_ns ROOT: on-cpu time of every thread below ROOT, in ns
tree_cpu_ns ()
{
  local p
  for p in $(descendants "$1"); do
    cat /proc/"$p"/task/*/schedstat 2>/dev/null
  done | awk '{ ns += $1 } END { printf "%.0f\n", ns }'
}

# h2load_run NAME FLAGS N URL [OPTIONS]: h2load, all N requests must succeed
h2load_run ()
{
  local name=$1 flags=$2 n=$3 url=$4 line rps cpu0=
  shift 4
  [ -z "$SC_CPU_ROOT" ] || cpu0=$(tree_cpu_ns "$SC_CPU_ROOT")
  launch "$name" "$flags" "$CLIENT_TIMEOUT" \
    h2load -n "$n" -c 20 -m 10 "$@" "$url"
  finish_client "$name" "$flags" "$LAUNCHED"
  # the server's cpu time per request, steadier than req/s on a busy machine
  if [ -n "$cpu0" ] && [ -z "$SC_CPU" ]; then
    SC_CPU=$(( ($(tree_cpu_ns "$SC_CPU_ROOT") - cpu0) / n ))
    SC_CPU=$((SC_CPU / 1000)).$(printf '%02d' $((SC_CPU % 1000 / 10)))
  fi
  line=$(grep -a '^requests:' "$W/$name.out")
  case $line in
    "requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored"*)
      SC_OK=$((SC_OK + n)) ;;
    *)
      fail "$name: ${line:-no result}"
      # shellcheck disable=SC2046 # split the counters into words
      set -- $(echo "$line" | tr -cs '0-9' ' ')
      SC_OK=$((SC_OK + ${4:-0}))
      SC_BAD=$((SC_BAD + n - ${4:-0})) ;;
  esac
  grep -aq "^status codes: $n 2xx" "$W/$name.out" \
    || fail "$name: $(grep -a '^status codes' "$W/$name.out")"
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$W/$name.out")
  [ -n "$SC_RPS" ] || SC_RPS=${rps%.*}
}

# fetch NAME FLAGS URL FILE: nghttp downloads URL, compared with FILE; the
# reader starts late so that nghttp lives long enough to be sampled
fetch ()
{
  local name=$1 flags=$2 url=$3 file=$4 reader want got
  mkfifo "$W/$name.fifo" || { fail "$name: mkfifo"; return; }
  { sleep 0.3; sha256sum; } < "$W/$name.fifo" > "$W/$name.sum" &
  reader=$!
  BG_PIDS="$BG_PIDS $reader"
  LAUNCH_OUT=$W/$name.fifo launch "$name" "$flags" "$CLIENT_TIMEOUT" nghttp "$url"
  finish_client "$name" "$flags" "$LAUNCHED"
  wait "$reader"
  want=$(sha256sum < "$file")
  got=$(cat "$W/$name.sum")
  if [ "$want" = "$got" ]; then
    SC_OK=$((SC_OK + 1))
  else
    SC_BAD=$((SC_BAD + 1))
    fail "$name: sha256 of ${url##*/} differs"
  fi
}

#############################################################################
# scenarios

printf '%s\n' "program|server|client|ok|failed|req/s|server us/req|processes (io_uring/epoll fds)|result" \
  > "$W/summary"

scenario_begin ()
{
  SC_NAME=$1 SC_SRV=$2 SC_CLI=$3
  SC_OK=0 SC_BAD=0 SC_RPS='' SC_FAIL='' SC_PROCS=0 SC_PBAD=0 SC_RINGS=0 SC_POLLS=0 SC_NOTE='' SC_FAST=0 SC_CPU='' SC_CPU_ROOT=''
  echo "== $SC_NAME: server LIBEV_FLAGS=$SC_SRV, client LIBEV_FLAGS=$SC_CLI"
}

scenario_end ()
{
  local res=ok
  [ -z "$SC_FAIL" ] || res=FAIL
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$SC_NAME" "$(bk "$SC_SRV")" "$(bk "$SC_CLI")" \
    "$SC_OK" "$SC_BAD" "${SC_RPS:--}" "${SC_CPU:--}" \
    "${SC_NOTE:-$SC_PROCS ($SC_RINGS/$SC_POLLS)${SC_PBAD#0}$(fast_note)}" "$res" >> "$W/summary"
}

fast_note ()
{
  [ "$SC_FAST" -eq 0 ] || echo ", $SC_FAST by ld.so+verbose line"
}

bk ()
{
  case $1 in
    128) echo io_uring ;;
    4)   echo epoll ;;
    -)   echo - ;;
    *)   echo "$1" ;;
  esac
}

# symbols: same exported ev_/event_ set and SONAME as Debian's libev4
check_symbols ()
{
  local ours theirs
  scenario_begin "symbols" - -
  syms ()
  {
    nm -D --defined-only "$1" | awk '$3 !~ /^_/ {
        t = ($2 ~ /[TtWwi]/) ? "func" : "object"; print $3, t }' | sort -u
  }
  syms "$B/libev.so.4" > "$W/syms.ours"
  syms "$sys_lib" > "$W/syms.debian"
  if ! diff -u "$W/syms.debian" "$W/syms.ours" > "$W/syms.diff"; then
    fail "symbols differ from $sys_lib: $(grep '^[-+][^-+]' "$W/syms.diff" | head -n 5 | tr '\n' ' ')"
  fi
  ours=$(readelf -d "$B/libev.so.4" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  theirs=$(readelf -d "$sys_lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ -n "$ours" ] && [ "$ours" = "$theirs" ] \
    || fail "SONAME '$ours', Debian has '$theirs'"
  SC_OK=$(wc -l < "$W/syms.ours")
  SC_NOTE="$(grep -c '^ev_' "$W/syms.ours") ev_ + $(grep -c '^event_' "$W/syms.ours") event_ symbols, SONAME $ours"
  scenario_end
}

# files served: small (h2load), medium (h2load, flow control), big (nghttp)
make_docroot ()
{
  mkdir -p "$W/www"
  head -c 1024 /dev/urandom > "$W/www/small.bin"
  head -c 65536 /dev/urandom > "$W/www/medium.bin"
  head -c 8388608 /dev/urandom > "$W/www/big.bin"
}

# a self-signed certificate for hitch
make_cert ()
{
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$W/key.pem" -out "$W/cert.pem" > "$W/openssl.log" 2>&1 \
    || die "openssl req failed: $(cat "$W/openssl.log")"
  cat "$W/key.pem" "$W/cert.pem" > "$W/hitch.pem"
}

# nghttpd served to h2load and nghttp, server and client backends SRV CLI
scenario_nghttpd ()
{
  local srv=$1 cli=$2 port tag s
  tag=nghttpd.$srv.$cli
  scenario_begin "nghttpd + h2load/nghttp" "$srv" "$cli"
  port=$(free_port)
  if start_server "$tag.nghttpd" "$srv" "$port" \
       nghttpd --no-tls -a 127.0.0.1 -d "$W/www" "$port"; then
    s=$LAUNCHED
    SC_CPU_ROOT=$s
    h2load_run "$tag.h2load" "$cli" "$H2LOAD_REQUESTS" "http://127.0.0.1:$port/small.bin"
    h2load_run "$tag.h2load-medium" "$cli" 2000 "http://127.0.0.1:$port/medium.bin"
    fetch "$tag.nghttp" "$cli" "http://127.0.0.1:$port/big.bin" "$W/www/big.bin"
    stop_server "$tag.nghttpd" "$srv" "$s"
  fi
  scenario_end
}

# nghttpx (master + worker process, 2 worker threads) in front of nghttpd
scenario_nghttpx ()
{
  local f=$1 port port2 tag s x
  tag=nghttpx.$f
  scenario_begin "nghttpx -> nghttpd" "$f" "$f"
  port=$(free_port)
  port2=$(free_port)
  if start_server "$tag.nghttpd" "$f" "$port2" \
       nghttpd --no-tls -a 127.0.0.1 -d "$W/www" "$port2"; then
    s=$LAUNCHED
    if start_server "$tag.nghttpx" "$f" "$port" \
         nghttpx --conf=/dev/null --workers=2 \
           "--frontend=127.0.0.1,$port;no-tls" \
           "--backend=127.0.0.1,$port2;;proto=h2"; then
      x=$LAUNCHED
      SC_CPU_ROOT=$x
      h2load_run "$tag.h2load" "$f" "$H2LOAD_REQUESTS" "http://127.0.0.1:$port/small.bin"
      fetch "$tag.nghttp" "$f" "http://127.0.0.1:$port/big.bin" "$W/www/big.bin"
      stop_server "$tag.nghttpx" "$f" "$x"
    fi
    stop_server "$tag.nghttpd" "$f" "$s"
  fi
  scenario_end
}

# hitch (master + 2 worker processes) terminating TLS in front of nghttpd
scenario_hitch ()
{
  local f=$1 port port2 tag s h user=
  tag=hitch.$f
  scenario_begin "hitch (TLS) -> nghttpd" "$f" "$f"
  # hitch refuses to run its workers as root
  [ "$(id -u)" -ne 0 ] || user=--user=nobody
  port=$(free_port)
  port2=$(free_port)
  if start_server "$tag.nghttpd" "$f" "$port2" \
       nghttpd --no-tls -a 127.0.0.1 -d "$W/www" "$port2"; then
    s=$LAUNCHED
    if start_server "$tag.hitch" "$f" "$port" \
         hitch $user --workers=2 --alpn-protos=h2,http/1.1 \
           "--frontend=[127.0.0.1]:$port" "--backend=[127.0.0.1]:$port2" \
           "$W/hitch.pem"; then
      h=$LAUNCHED
      SC_CPU_ROOT=$h
      h2load_run "$tag.h2load" "$f" "$H2LOAD_REQUESTS" "https://127.0.0.1:$port/small.bin"
      fetch "$tag.nghttp" "$f" "https://127.0.0.1:$port/big.bin" "$W/www/big.bin"
      stop_server "$tag.hitch" "$f" "$h"
    fi
    stop_server "$tag.nghttpd" "$f" "$s"
  fi
  scenario_end
}

# an authoritative zone of DNS_NAMES A records, the kdig arguments that ask
# for each of them once, and the answers in that order
DNS_NAMES=200
make_zone ()
{
  local i
  mkdir -p "$W/zones"
  {
    echo '$TTL 300'
    echo '@ SOA ns1 hostmaster 1 7200 1800 259200 300'
    echo '@ NS ns1'
    echo '@ NS ns2'
    echo 'ns1 A 192.0.2.1'
    echo 'ns2 A 192.0.2.2'
    for i in $(seq "$DNS_NAMES"); do
      echo "h$i A 10.1.$((i / 256)).$((i % 256))"
    done
  } > "$W/zones/example.test"
  DNS_ARGS=
  for i in $(seq "$DNS_NAMES"); do
    DNS_ARGS="$DNS_ARGS h$i.example.test"
    echo "10.1.$((i / 256)).$((i % 256))"
  done > "$W/dns.expected"
}

# gdnsd_conf DIR PORT: a configuration directory for gdnsd on 127.0.0.1:PORT
gdnsd_conf ()
{
  mkdir -p "$1"
  cp -R "$W/zones" "$1/"
  cat > "$1/config" <<EOC
options => {
  listen => [ 127.0.0.1:$2 ]
  run_dir => $1/run
  state_dir => $1/state
  udp_threads => 2
  tcp_threads => 2
}
EOC
}

# dns_round NAME PORT [KDIG OPTIONS]: kdig asks for every name of the zone
# once (UDP unless +tcp), every answer must be the zone's
dns_round ()
{
  local name=$1 port=$2 bad
  shift 2
  # shellcheck disable=SC2086 # DNS_ARGS: one word per name
  timeout "$CLIENT_TIMEOUT" kdig @127.0.0.1 -p "$port" +short +time=2 +retry=2 "$@" $DNS_ARGS \
    > "$W/$name.dns" 2>> "$W/$name.dnserr"
  bad=$(grep -cvxFf "$W/$name.dns" "$W/dns.expected")
  SC_OK=$((SC_OK + DNS_NAMES - bad))
  if [ "$bad" -ne 0 ]; then
    SC_BAD=$((SC_BAD + bad))
    fail "$name: $bad of $DNS_NAMES answers missing or wrong ($(head -n 1 "$W/$name.dnserr"))"
  fi
}

# us_per NS N: NS nanoseconds per N, in microseconds with two decimals
us_per ()
{
  local v=$(( $1 / $2 ))
  echo "$((v / 1000)).$(printf '%02d' $((v % 1000 / 10)))"
}

# per_sec N NS: N events in NS nanoseconds, per second
per_sec ()
{
  echo $(( $1 * 1000000000 / ($2 > 0 ? $2 : 1) ))
}

# gdnsd (2 UDP + 2 TCP listener threads) asked by kdig over UDP and TCP.
# gdnsd's UDP threads wait in their own ppoll (2) loop, not through libev:
# libev runs its main thread and its TCP threads (3 loops).  So the
# figure is taken over TCP, one connection per query (kdig +tcp)
scenario_gdnsd ()
{
  local f=$1 port tag s i cpu0 t0 n
  tag=gdnsd.$f
  scenario_begin "gdnsd (DNS over UDP, TCP) + kdig" "$f" -
  port=$(free_port)
  gdnsd_conf "$W/$tag" "$port"
  if start_server "$tag.gdnsd" "$f" "$port" gdnsd -c "$W/$tag" start; then
    s=$LAUNCHED
    n=$(( DNS_QUERIES / DNS_NAMES ))
    [ "$n" -gt 0 ] || n=1
    for i in $(seq "$n"); do
      dns_round "$tag.udp$i" "$port"
    done
    n=$(( (n + 3) / 4 ))
    cpu0=$(tree_cpu_ns "$s")
    t0=$(date +%s%N)
    for i in $(seq "$n"); do
      dns_round "$tag.tcp$i" "$port" +tcp
    done
    SC_CPU=$(us_per $(( $(tree_cpu_ns "$s") - cpu0 )) $((n * DNS_NAMES)))
    SC_RPS=$(per_sec $((n * DNS_NAMES)) $(( $(date +%s%N) - t0 )))
    stop_server "$tag.gdnsd" "$f" "$s"
  fi
  scenario_end
}

# shadowsocks-libev: curl through ss-local (SOCKS5) and ss-server to an
# HTTP/1.0 origin, one new connection per request, bodies checked by
# sha256; kdig through ss-tunnel, over the UDP relay and over TCP.  The
# origins (python3's http.server, a gdnsd on Debian's libev) are not judged
scenario_shadowsocks ()
{
  local f=$1 tag hport dport sport lport tport o g s l t cpu0 t0 n i urls=''
  local ss_opts="-k ev-iouring-test -m chacha20-ietf-poly1305"
  tag=ss.$f
  scenario_begin "shadowsocks: ss-local -> ss-server, ss-tunnel (UDP)" "$f" "$f"
  hport=$(free_port) dport=$(free_port) sport=$(free_port) lport=$(free_port) tport=$(free_port)
  (cd "$W/www" && exec timeout "$SERVER_TIMEOUT" python3 -m http.server -b 127.0.0.1 "$hport") \
    > "$W/$tag.origin.log" 2>&1 &
  o=$!
  gdnsd_conf "$W/$tag.dns" "$dport"
  env -u LIBEV_FLAGS timeout "$SERVER_TIMEOUT" gdnsd -c "$W/$tag.dns" start > "$W/$tag.dns.log" 2>&1 &
  g=$!
  BG_PIDS="$BG_PIDS $o $g"
  if ! wait_listen "$hport" "$o" || ! wait_listen "$dport" "$g"; then
    fail "$tag: origin servers did not start: $(tail -n 2 "$W/$tag.origin.log" "$W/$tag.dns.log")"
    scenario_end
    return
  fi
  # shellcheck disable=SC2086 # ss_opts: words
  if start_server "$tag.ss-server" "$f" "$sport" ss-server -s 127.0.0.1 -p "$sport" -u $ss_opts; then
    s=$LAUNCHED
    # shellcheck disable=SC2086
    if start_server "$tag.ss-local" "$f" "$lport" ss-local -s 127.0.0.1 -p "$sport" -l "$lport" $ss_opts; then
      l=$LAUNCHED
      # shellcheck disable=SC2086
      if start_server "$tag.ss-tunnel" "$f" "$tport" \
           ss-tunnel -s 127.0.0.1 -p "$sport" -l "$tport" -L "127.0.0.1:$dport" -u $ss_opts; then
        t=$LAUNCHED
        n=$SS_CONNECTIONS
        for i in $(seq "$n"); do
          urls="$urls http://127.0.0.1:$hport/small.bin"
        done
        for i in $(seq "$n"); do
          cat "$W/www/small.bin"
        done | sha256sum > "$W/$tag.want"
        cpu0=$(( $(tree_cpu_ns "$s") + $(tree_cpu_ns "$l") ))
        t0=$(date +%s%N)
        # shellcheck disable=SC2086 # urls: one word per request
        timeout "$CLIENT_TIMEOUT" curl -sS --socks5-hostname "127.0.0.1:$lport" \
          -w '%{stderr}%{http_code} %{num_connects}\n' $urls 2> "$W/$tag.curl.w" | sha256sum > "$W/$tag.got"
        SC_CPU=$(us_per $(( $(tree_cpu_ns "$s") + $(tree_cpu_ns "$l") - cpu0 )) "$n")
        SC_RPS=$(per_sec "$n" $(( $(date +%s%N) - t0 )))
        i=$(grep -cx '200 1' "$W/$tag.curl.w")
        SC_OK=$((SC_OK + i))
        if [ "$i" -ne "$n" ] || ! cmp -s "$W/$tag.want" "$W/$tag.got"; then
          SC_BAD=$((SC_BAD + n - i))
          fail "$tag: $i of $n requests were 200 on a new connection; bodies $(cmp -s "$W/$tag.want" "$W/$tag.got" && echo equal || echo differ)"
        fi
        timeout "$CLIENT_TIMEOUT" curl -sS --socks5-hostname "127.0.0.1:$lport" \
          "http://127.0.0.1:$hport/big.bin" 2> "$W/$tag.curl-big.err" | sha256sum > "$W/$tag.big"
        if [ "$(sha256sum < "$W/www/big.bin")" = "$(cat "$W/$tag.big")" ]; then
          SC_OK=$((SC_OK + 1))
        else
          SC_BAD=$((SC_BAD + 1))
          fail "$tag: sha256 of big.bin through SOCKS5 differs ($(head -n 1 "$W/$tag.curl-big.err"))"
        fi
        dns_round "$tag.udp" "$tport"
        dns_round "$tag.tcp" "$tport" +tcp
        stop_server "$tag.ss-tunnel" "$f" "$t"
      fi
      stop_server "$tag.ss-local" "$f" "$l"
    fi
    stop_server "$tag.ss-server" "$f" "$s"
  fi
  scenario_end
}

# python3-gevent's WSGI server (pywsgi; gevent's libev loop, greenlets)
# serving the docroot over HTTP/1.1 to h2load --h1 and curl
make_gevent_server ()
{
  cat > "$W/gevent_server.py" <<'EOP'
import os
import sys

import gevent
from gevent.pywsgi import WSGIServer

port, root = int(sys.argv[1]), sys.argv[2]

def app(env, start):
    try:
        with open(os.path.join(root, os.path.basename(env['PATH_INFO'])), 'rb') as f:
            data = f.read()
    except OSError:
        start('404 Not Found', [('Content-Length', '0')])
        return [b'']
    start('200 OK', [('Content-Type', 'application/octet-stream'),
                     ('Content-Length', str(len(data)))])
    return [data]

sys.stderr.write('gevent %s: libev backend %s\n'
                 % (gevent.__version__, gevent.get_hub().loop.backend))
sys.stderr.flush()
WSGIServer(('127.0.0.1', port), app, log=None).serve_forever()
EOP
}

# gevent's own backend names: GEVENT_BACKEND, since it ignores LIBEV_FLAGS
scenario_gevent ()
{
  local f=$1 port tag s gb=epoll
  [ "$f" != 128 ] || gb=linux_iouring
  tag=gevent.$f
  scenario_begin "gevent pywsgi + h2load --h1/curl" "$f" "$f"
  port=$(free_port)
  if start_server "$tag.gevent" "$f" "$port" \
       env GEVENT_BACKEND=$gb "$DEB_PYTHON" "$W/gevent_server.py" "$port" "$W/www"; then
    s=$LAUNCHED
    SC_CPU_ROOT=$s
    h2load_run "$tag.h2load" "$f" "$GEVENT_REQUESTS" "http://127.0.0.1:$port/small.bin" --h1
    timeout "$CLIENT_TIMEOUT" curl -sS "http://127.0.0.1:$port/big.bin" 2> "$W/$tag.curl.err" \
      | sha256sum > "$W/$tag.big"
    if [ "$(sha256sum < "$W/www/big.bin")" = "$(cat "$W/$tag.big")" ]; then
      SC_OK=$((SC_OK + 1))
    else
      SC_BAD=$((SC_BAD + 1))
      fail "$tag: sha256 of big.bin differs ($(head -n 1 "$W/$tag.curl.err"))"
    fi
    stop_server "$tag.gevent" "$f" "$s"
    grep -q "libev backend $gb\$" "$W/$tag.gevent.err" \
      || fail "$tag: gevent did not say it runs on $gb: $(grep -m 1 'libev backend' "$W/$tag.gevent.err")"
  fi
  scenario_end
}

print_summary ()
{
  echo
  echo "libev: $B/libev.so.4 (reference: $sys_lib)"
  awk -F'|' '
    { for (i = 1; i <= NF; i++) { c [NR, i] = $i; if (length ($i) > w [i]) w [i] = length ($i) } }
    END {
      for (r = 1; r <= NR; r++) {
        line = ""
        for (i = 1; i <= NF; i++) line = line sprintf ("%-" w [i] "s  ", c [r, i])
        sub (/ +$/, "", line); print line
      }
    }' "$W/summary"
}

# the programs must be dynamically linked against libev.so.4 at all
check_linked ()
{
  local prog linked=
  scenario_begin "linked with libev.so.4" - -
  for prog in nghttpd nghttp h2load nghttpx hitch gdnsd ss-server ss-local ss-tunnel; do
    if ldd "$(command -v "$prog")" 2>/dev/null | grep -q 'libev\.so\.4 '; then
      linked="$linked $prog"
      SC_OK=$((SC_OK + 1))
    else
      fail "$prog is not linked with libev.so.4"
      SC_BAD=$((SC_BAD + 1))
    fi
  done
  SC_NOTE="ldd:$linked"
  scenario_end
}

chmod 755 "$W"
make_docroot
make_cert
make_zone
make_gevent_server
# hitch drops to nobody, which must read nothing of ours after that, but
# keep the work directory traversable for the libraries' sake
chmod 644 "$W/hitch.pem"

# wanted NAME: NAME is in SCENARIOS
wanted ()
{
  case " $SCENARIOS " in *" $1 "*) return 0 ;; esac
  return 1
}

! wanted symbols || check_symbols
! wanted linked || check_linked
if wanted nghttpd; then
  for pair in "128 128" "128 4" "4 128" "4 4"; do
    scenario_nghttpd $pair
  done
fi
for sc in nghttpx hitch gdnsd shadowsocks gevent; do
  if wanted "$sc"; then
    for f in 128 4; do
      "scenario_$sc" "$f"
    done
  fi
done

print_summary
if [ "$FAILED" -ne 0 ]; then
  echo "$PROG: FAILED"
  exit 1
fi
echo "$PROG: all passed"
exit 0
