#!/bin/sh
# bench/udp.sh BUILD_DIR R - shadowsocks-libev's UDP relay (ss-tunnel -u ->
# ss-server -u -> an echo origin), both Debian's libev programs, on three
# libevs, as bench/server.sh runs nghttpd:
#   ours   LD_LIBRARY_PATH=BUILD_DIR (our libev.so.4), LIBEV_FLAGS=128
#   epoll  LD_LIBRARY_PATH=BUILD_DIR, LIBEV_FLAGS=4
#   orig   Debian's libev.so.4 (4.33, no Debian patches), LIBEV_FLAGS=128
# bench/udp.py sends UDP_N datagrams of 64 bytes (20000; 5000 with QUICK=1)
# to ss-tunnel, UDP_WINDOW (8) in flight, and checks every echoed reply; the
# origin is bench/udp.py too, outside the figure. The figure is the on-CPU
# time of ss-server and ss-tunnel together (/proc/PID/task/*/schedstat
# around the client's run) per datagram round trip; both processes are
# started afresh for every run. UDP_IDLE=seconds (0) lets them sit idle
# before the client starts: our backend moves a poll idle for 0.4 - 0.8 s
# to its epoll set (ev_iouring.c, note l), so UDP_IDLE=1 measures the
# relays' sockets served from there.
# Prints "variant rep status dgram_per_s backend cpu_us_per_dgram
# ss_server_us ss_tunnel_us retransmits" lines (tab-separated); the backend
# is read from both processes' /proc/PID/fd ([io_uring] or [eventpoll]).
# Missing programs are installed with tools/deps.sh when root; otherwise,
# and when that fails, exits 77 (skip). Exit 1: BUILD_DIR/libev.so.4 missing.

set -u

B=${1:-build}
R=${2:-3}
OUT=$B/bench
N=${UDP_N:-20000}
[ "${QUICK:-0}" = 1 ] && N=${UDP_N:-5000}
WIN=${UDP_WINDOW:-8}
IDLE=${UDP_IDLE:-0}
SS_OPTS="-k ev-iouring-bench -m chacha20-ietf-poly1305"

here=$(cd "$(dirname "$0")" && pwd)

if ! command -v ss-server >/dev/null 2>&1 || ! command -v ss-tunnel >/dev/null 2>&1 ||
   ! command -v python3 >/dev/null 2>&1; then
  # installing shadowsocks-libev starts its service unless policy-rc.d says no
  rcd=
  if [ "$(id -u)" = 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && rcd=1
  fi
  sh "$here/../tools/deps.sh" ss-server ss-tunnel python3 >&2
  rc=$?
  [ -z "$rcd" ] || rm -f /usr/sbin/policy-rc.d
  if [ $rc -ne 0 ]; then
    echo "udp.sh: ss-server/ss-tunnel/python3 not installed (apt-get install shadowsocks-libev python3): skipped" >&2
    exit 77
  fi
fi

LIB=$(cd "$B" && pwd)
[ -e "$LIB/libev.so.4" ] || { echo "udp.sh: $LIB/libev.so.4 missing" >&2; exit 1; }
mkdir -p "$OUT"

# a loopback port no TCP or UDP socket uses, from $1 upwards
free_port () {
  p=$1
  while cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null |
        awk -v h="$(printf ':%04X' "$p")" 'index ($2, h) == length ($2) - 4 { f = 1 } END { exit !f }'; do
    p=$((p + 1))
  done
  echo "$p"
}

# a UDP socket is bound to port $1
bound () {
  awk -v h="$(printf ':%04X' "$1")" 'index ($2, h) == length ($2) - 4 { f = 1 } END { exit !f }' \
    /proc/net/udp /proc/net/udp6 2>/dev/null
}

backend_of () {
  ls -l "/proc/$1/fd" 2>/dev/null | awk '
    /io_uring/  { u = 1 } /eventpoll/ { e = 1 }
    END { print (u ? "io_uring" : (e ? "epoll" : "unknown")) }'
}

# nanoseconds on CPU of every thread of a process
oncpu_ns () {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}

# below the ephemeral ports (32768 - 60999), which the relays' own sockets take
OPORT=$(free_port $((22000 + $$ % 10000)))
SPORT=$(free_port $((OPORT + 1)))
TPORT=$(free_port $((SPORT + 1)))

timeout 600 python3 "$here/udp.py" echo "$OPORT" 2>"$OUT/udp-echo.err" &
epid=$!
trap 'kill "$epid" 2>/dev/null' EXIT
trap 'exit 1' INT TERM

i=0
while ! bound "$OPORT"; do
  i=$((i + 1))
  if [ $i -gt 50 ] || ! kill -0 "$epid" 2>/dev/null; then
    echo "udp.sh: the echo origin did not start: $(tail -n 2 "$OUT/udp-echo.err")" >&2
    exit 1
  fi
  sleep 0.1
done

# microseconds per datagram between two oncpu_ns readings
us () {
  awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / n / 1000 }'
}

# stop the relays, wait until their ports are free: 4.33's backend exits
# with polls armed on its ring, and the kernel closes those sockets a few
# ms after the process is gone (6.18), so the next run's bind would fail
stop () {
  kill "$1" "$2" 2>/dev/null
  wait "$1" 2>/dev/null
  wait "$2" 2>/dev/null
  i=0
  while { bound "$SPORT" || bound "$TPORT"; } && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}

one () {
  v=$1 rep=$2

  case $v in
    ours)  set -- env LD_LIBRARY_PATH="$LIB" LIBEV_FLAGS=128 ;;
    epoll) set -- env LD_LIBRARY_PATH="$LIB" LIBEV_FLAGS=4 ;;
    orig)  set -- env LIBEV_FLAGS=128 ;;
  esac

  # shellcheck disable=SC2086 # SS_OPTS: words
  timeout 120 "$@" ss-server -s 127.0.0.1 -p "$SPORT" -u $SS_OPTS >/dev/null 2>"$OUT/ss-server.err" &
  ts=$!
  # shellcheck disable=SC2086
  timeout 120 "$@" ss-tunnel -s 127.0.0.1 -p "$SPORT" -l "$TPORT" -L "127.0.0.1:$OPORT" -u $SS_OPTS \
    >/dev/null 2>"$OUT/ss-tunnel.err" &
  tt=$!

  i=0
  while ! bound "$SPORT" || ! bound "$TPORT"; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 "$ts" 2>/dev/null || ! kill -0 "$tt" 2>/dev/null; then
      printf '%s\t%s\tfailed\t-\t-\t-\t-\t-\t-\n' "$v" "$rep"
      echo "udp.sh: $v: the relays did not start: $(tail -qn 1 "$OUT/ss-server.err" "$OUT/ss-tunnel.err")" >&2
      ss -uanp 2>/dev/null | grep -E ":($SPORT|$TPORT) " >&2
      stop "$ts" "$tt"
      return
    fi
    sleep 0.1
  done

  spid=$(pgrep -P "$ts" ss-server | head -1)
  tpid=$(pgrep -P "$tt" ss-tunnel | head -1)
  if [ -z "$spid" ] || [ -z "$tpid" ]; then
    printf '%s\t%s\tfailed\t-\t-\t-\t-\t-\t-\n' "$v" "$rep"
    echo "udp.sh: $v: ss-server ${spid:-gone}, ss-tunnel ${tpid:-gone}" >&2
    stop "$ts" "$tt"
    return
  fi
  bs=$(backend_of "${spid:-0}")
  bt=$(backend_of "${tpid:-0}")
  be=$bs
  [ "$bs" = "$bt" ] || be="ss-server:$bs,ss-tunnel:$bt"

  sleep "$IDLE"
  s0=$(oncpu_ns "${spid:-0}")
  t0=$(oncpu_ns "${tpid:-0}")
  out=$(timeout 90 python3 "$here/udp.py" client "$TPORT" "$N" "$WIN" 2>&1)
  rc=$?
  s1=$(oncpu_ns "${spid:-0}")
  t1=$(oncpu_ns "${tpid:-0}")

  cpd=$(awk -v a="$s0" -v b="$s1" -v c="$t0" -v d="$t1" -v n="$N" \
    'BEGIN { printf "%.3f", (b - a + d - c) / n / 1000 }')
  dps=$(echo "$out" | awk -v n="$N" '$1 == "replies" && $8 > 0 { printf "%.0f", n / $8 }')
  rtx=$(echo "$out" | awk '$1 == "replies" { print $4 }')

  # a relay that died under load (4.33 aborts) shows as a dead pid
  if ! kill -0 "$ts" 2>/dev/null || ! kill -0 "$tt" 2>/dev/null; then
    st=aborted
  elif [ $rc -ne 0 ] || [ -z "$dps" ]; then
    st=failed
    echo "udp.sh: $v: $out" >&2
  else
    st=ok
  fi

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$rep" "$st" "${dps:--}" "$be" "$cpd" \
    "$(us "$s0" "$s1")" "$(us "$t0" "$t1")" "${rtx:--}"

  stop "$ts" "$tt"
}

rep=1
while [ "$rep" -le "$R" ]; do
  case $((rep % 3)) in
    1) order="epoll ours orig" ;;
    2) order="ours orig epoll" ;;
    0) order="orig epoll ours" ;;
  esac

  for v in $order; do
    one "$v" "$rep"
  done

  rep=$((rep + 1))
done
