#!/bin/sh
# bench/server.sh BUILD_DIR R - nghttpd --no-tls served to h2load, both libev
# programs from Debian, on three libevs:
#   ours   LD_LIBRARY_PATH=BUILD_DIR (our libev.so.4), LIBEV_FLAGS=128
#   epoll  LD_LIBRARY_PATH=BUILD_DIR, LIBEV_FLAGS=4
#   orig   Debian's libev.so.4 (4.33, no Debian patches), LIBEV_FLAGS=128
# Prints "variant rep status req_per_s backend cpu_us_per_req" lines
# (tab-separated); the backend is read from the server's /proc/PID/fd
# ([io_uring] or [eventpoll]); the server's CPU time is the sum of its
# threads' on-CPU time (/proc/PID/task/*/schedstat) across the h2load run.
# Exits 77 when nghttpd or h2load is missing.

set -u

B=${1:-build}
R=${2:-3}
OUT=$B/bench
N=${H2LOAD_N:-30000}
[ "${QUICK:-0}" = 1 ] && N=${H2LOAD_N:-10000}

if ! command -v nghttpd >/dev/null 2>&1 || ! command -v h2load >/dev/null 2>&1; then
  echo "server.sh: nghttpd/h2load not installed (apt-get install nghttp2-server nghttp2-client): skipped" >&2
  exit 77
fi

LIB=$(cd "$B" && pwd)
[ -e "$LIB/libev.so.4" ] || { echo "server.sh: $LIB/libev.so.4 missing" >&2; exit 1; }

WWW=$OUT/www
mkdir -p "$WWW"
awk 'BEGIN { for (i = 0; i < 64; ++i) printf "%063d\n", i }' >"$WWW/index.html"

PORT=$((20000 + $$ % 20000))
URL=http://127.0.0.1:$PORT/index.html

listening () {
  hex=$(printf '%04X' "$PORT")
  awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
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

one () {
  v=$1 rep=$2

  case $v in
    ours)  set -- env LD_LIBRARY_PATH="$LIB" LIBEV_FLAGS=128 ;;
    epoll) set -- env LD_LIBRARY_PATH="$LIB" LIBEV_FLAGS=4 ;;
    orig)  set -- env LIBEV_FLAGS=128 ;;
  esac

  timeout 120 "$@" nghttpd --no-tls -a 127.0.0.1 -d "$WWW" "$PORT" >/dev/null 2>"$OUT/nghttpd.err" &
  tpid=$!

  i=0
  while ! listening; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 "$tpid" 2>/dev/null; then
      printf '%s\t%s\tfailed\t-\t-\t-\n' "$v" "$rep"
      kill "$tpid" 2>/dev/null
      wait "$tpid" 2>/dev/null
      return
    fi
    sleep 0.1
  done

  spid=$(pgrep -P "$tpid" nghttpd | head -1)
  be=$(backend_of "${spid:-0}")

  c0=$(oncpu_ns "${spid:-0}")
  out=$(timeout 60 "$@" h2load -n "$N" -c 8 -m 10 -t 1 "$URL" 2>&1)
  rc=$?
  c1=$(oncpu_ns "${spid:-0}")
  cpr=$(awk -v a="$c0" -v b="$c1" -v n="$N" 'BEGIN { printf "%.3f", (b - a) / n / 1000 }')
  rps=$(echo "$out" | sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p')
  ok=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')

  # a server that died under load (4.33 aborts) shows as a dead pid
  if ! kill -0 "$tpid" 2>/dev/null; then
    st=aborted
  elif [ $rc -ne 0 ] || [ -z "$rps" ] || [ "${ok:-0}" != "$N" ]; then
    st=failed
  else
    st=ok
  fi

  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$rep" "$st" "${rps:--}" "$be" "$cpr"

  kill "$tpid" 2>/dev/null
  wait "$tpid" 2>/dev/null
  i=0
  while listening && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
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
