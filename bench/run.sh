#!/bin/sh
# bench/run.sh BUILD_DIR - run the benchmarks, write BUILD_DIR/bench/results.{md,tsv}
#
# Three variants, interleaved (the order rotates every repetition):
#   ours   BUILD_DIR/bench/bench-ours -b 128  (this project's io_uring backend)
#   epoll  BUILD_DIR/bench/bench-ours -b 4    (same binary, epoll: the baseline)
#   orig   BUILD_DIR/bench/bench-orig -b 128  (libev 4.33 as released, its io_uring)
# Each configuration runs R times per variant; the tables give medians.
# Syscalls per loop iteration come from two extra runs per variant under
# `strace -f -c`, K and 2K rounds: (calls(2K) - calls(K)) / (loops(2K) - loops(K)),
# so setup costs cancel out. "sys" leaves out the workload's own read, write
# and getrusage calls; "all" keeps them.
# A variant that dies or hangs records "aborted" (signal), "hung" (killed
# after a timeout: max (3 s, 20 x epoll's time)) or "failed", and is not
# run again for that configuration: 4.33's backend does both.
#
# Memory (-w mem, memory.tsv): the loop's kernel memory with n = 10, 1000,
# 10000 idle fds armed, one run per variant (deterministic figures), as this
# user and, when root, again as nobody:nogroup under Debian's 8 MiB
# RLIMIT_MEMLOCK (setpriv, prlimit): root is not charged for rings.
#
# Two real programs on the same three libevs (through LD_LIBRARY_PATH and
# LIBEV_FLAGS): nghttpd served to h2load (bench/server.sh) and
# shadowsocks-libev's UDP relay (bench/udp.sh); their CPU per request.
#
# Environment: QUICK=1 (subset, R=1, under a minute), R=repetitions (5),
# NOSTRACE=1, NOSERVER=1 (skip nghttpd/h2load and the UDP relay),
# BENCH_ONLY=regex on the workload name (e.g. 'chain|churn').

set -u

B=${1:-build}
OUT=$B/bench
OURS=$OUT/bench-ours
ORIG=$OUT/bench-orig
QUICK=${QUICK:-0}
NOSTRACE=${NOSTRACE:-0}
NOSERVER=${NOSERVER:-0}
BENCH_ONLY=${BENCH_ONLY:-.}

if [ "$QUICK" = 1 ]; then R=${R:-1}; else R=${R:-5}; fi

here=$(cd "$(dirname "$0")" && pwd)

for f in "$OURS" "$ORIG"; do
  [ -x "$f" ] || { echo "run.sh: $f missing (make bench builds it)" >&2; exit 1; }
done

mkdir -p "$OUT/tmp"
TSV=$OUT/results.tsv
SYS=$OUT/syscalls.tsv
SRV=$OUT/server.tsv
MEM=$OUT/memory.tsv
UDP=$OUT/udp.tsv
MD=$OUT/results.md
LOG=$OUT/run.log

printf 'variant\trep\tstatus\tworkload\tparams\tbackend\trounds\tloops\twall_s\tcpu_s\tusec_per_round\n' >"$TSV"
printf 'variant\tworkload\tparams\tsys_per_loop\tall_per_loop\ttop_syscalls\n' >"$SYS"
printf 'variant\trep\tstatus\treq_per_s\tlibev_backend\tcpu_us_per_req\n' >"$SRV"
printf 'variant\tuser\tstatus\tworkload\tparams\tbackend\tring_bytes\tring_rss_bytes\tmemlock_bytes\tslab_bytes\tuid\n' >"$MEM"
printf 'variant\trep\tstatus\tdgram_per_s\tlibev_backend\tcpu_us_per_dgram\tss_server_us\tss_tunnel_us\tretransmits\n' >"$UDP"
: >"$LOG"

now () { date +%s.%N; }

# configurations: quick-flag | bench args | rounds | quick rounds | strace rounds K (- none)
# rounds give roughly 0.1-0.4 s per run on epoll here
configs () {
  cat <<'EOF'
Q|-w chain -n 100 -a 1 -W 1000|60|20|2
-|-w chain -n 100 -a 100 -W 1000|100|20|2
-|-w chain -n 300 -a 100 -W 1000|100|20|2
-|-w chain -n 1000 -a 1 -W 1000|40|10|2
Q|-w chain -n 1000 -a 100 -W 1000|60|10|2
-|-w chain -n 1000 -a 1000 -W 1000|60|10|2
-|-w chain -n 3000 -a 100 -W 1000|30|10|2
-|-w chain -n 9900 -a 1 -W 1000|10|4|1
Q|-w chain -n 9900 -a 100 -W 1000|10|4|1
-|-w chain -n 9900 -a 1000 -W 1000|10|4|1
-|-w chain -n 100 -a 1 -W 1000 -o|60|20|2
-|-w chain -n 100 -a 100 -W 1000 -o|100|20|2
-|-w chain -n 1000 -a 1 -W 1000 -o|40|10|2
-|-w chain -n 1000 -a 100 -W 1000 -o|60|10|2
-|-w chain -n 1000 -a 1000 -W 1000 -o|60|10|2
-|-w chain -n 9900 -a 1 -W 1000 -o|10|4|1
-|-w chain -n 9900 -a 100 -W 1000 -o|10|4|1
-|-w chain -n 9900 -a 1000 -W 1000 -o|10|4|1
-|-w chain -n 100 -a 1 -W 1000 -T|60|20|-
-|-w chain -n 100 -a 100 -W 1000 -T|100|20|-
-|-w chain -n 1000 -a 1 -W 1000 -T|40|10|-
Q|-w chain -n 1000 -a 100 -W 1000 -T|60|10|-
-|-w chain -n 1000 -a 1000 -W 1000 -T|60|10|-
-|-w chain -n 9900 -a 1 -W 1000 -T|10|4|-
-|-w chain -n 9900 -a 100 -W 1000 -T|10|4|-
-|-w chain -n 9900 -a 1000 -W 1000 -T|10|4|-
-|-w chain -n 100 -a 1 -W 1000 -o -T|60|20|-
-|-w chain -n 100 -a 100 -W 1000 -o -T|100|20|-
-|-w chain -n 1000 -a 1 -W 1000 -o -T|40|10|-
-|-w chain -n 1000 -a 100 -W 1000 -o -T|60|10|-
-|-w chain -n 1000 -a 1000 -W 1000 -o -T|60|10|-
-|-w chain -n 9900 -a 1 -W 1000 -o -T|10|4|-
-|-w chain -n 9900 -a 100 -W 1000 -o -T|10|4|-
-|-w chain -n 9900 -a 1000 -W 1000 -o -T|10|4|-
-|-w churn -n 100 -a 100|4000|1000|200
Q|-w churn -n 1000 -a 1000|400|100|20
-|-w churn -n 1000 -a 100|4000|1000|200
-|-w timers -n 1000 -a 10|40000|10000|2000
Q|-w timers -n 1000 -a 100|20000|5000|1000
-|-w timers -n 10000 -a 1000|4000|1000|200
Q|-w poll0 -n 10|100000|20000|2000
-|-w poll0 -n 1000|100000|20000|2000
Q|-w idle -n 10|200|100|50
-|-w idle -n 1000|200|100|50
Q|-w pingpong -k socketpair|20000|5000|1000
-|-w pingpong -k pipe|20000|5000|1000
Q|-w tonly -n 100|20000|5000|2000
Q|-w wchurn -n 100 -a 100|4000|1000|200
-|-w wchurn -n 1000 -a 10|20000|5000|1000
EOF
}

variant_bin () {
  case $1 in
    ours)  echo "$OURS -b 128" ;;
    epoll) echo "$OURS -b 4" ;;
    orig)  echo "$ORIG -b 128" ;;
  esac
}

# rotate the variant order every repetition
variant_order () {
  case $(($1 % 3)) in
    1) echo "epoll ours orig" ;;
    2) echo "ours orig epoll" ;;
    0) echo "orig epoll ours" ;;
  esac
}

status_of () {
  case $1 in
    0)   echo ok ;;
    2)   echo unavailable ;;
    124) echo hung ;;
    1)   echo failed ;;
    *)   if [ "$1" -gt 128 ]; then echo aborted; else echo failed; fi ;;
  esac
}

# two strace -c summaries (K and 2K rounds) and two bench outputs -> one
# syscalls.tsv line: per-loop counts of the difference, so setup cancels out
strace_diff () {
  awk -v var="$1" '
    FNR == 1 { ++file }
    file <= 2 && ($1 ~ /^-+$/ || $1 == "%" || NF < 5 || $NF == "total") { next }
    file <= 2 {
      d = (file == 1 ? -$4 : $4); total += d
      if ($NF == "read" || $NF == "write" || $NF == "getrusage") next
      sys += d; c [$NF] += d; next
    }
    { loops += (file == 3 ? -$5 : $5); if (file == 4 && FNR == 1) keys = $1 "\t" $2 }
    END {
      top = ""
      for (k = 0; k < 3; ++k) {
        best = ""; bv = 0
        for (n in c) if (c [n] > bv) { bv = c [n]; best = n }
        if (best == "" || bv / loops < 0.005) break
        top = top (top == "" ? "" : ",") sprintf ("%s:%.2f", best, loops > 0 ? bv / loops : 0)
        delete c [best]
      }
      if (loops <= 0) printf "%s\t%s\t-\t-\t-\n", var, keys
      else printf "%s\t%s\t%.2f\t%.2f\t%s\n", var, keys, sys / loops, total / loops, (top == "" ? "-" : top)
    }' "$2" "$3" "$4" "$5"
}

run_strace () {
  sv=$1 sargs=$2 k=$3
  sbin=$(variant_bin "$sv")
  t1=$OUT/tmp/st1 t2=$OUT/tmp/st2

  # shellcheck disable=SC2086
  timeout 60 strace -f -c -o "$t1.st" $sbin $sargs -i "$k" >"$t1.out" 2>>"$LOG" </dev/null || return 1
  # shellcheck disable=SC2086
  timeout 60 strace -f -c -o "$t2.st" $sbin $sargs -i $((2 * k)) >"$t2.out" 2>>"$LOG" </dev/null || return 1

  strace_diff "$sv" "$t1.st" "$t2.st" "$t1.out" "$t2.out" >>"$SYS"
}

echo "run.sh: $(date -u '+%F %T') load $(cut -d' ' -f1-3 /proc/loadavg), R=$R QUICK=$QUICK" >&2
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(now)

configs | while IFS='|' read -r quick args rounds qrounds krounds; do
  [ "$QUICK" = 1 ] && { [ "$quick" = Q ] || continue; rounds=$qrounds; }
  wl=$(echo "$args" | sed 's/.*-w \([a-z0-9]*\).*/\1/')
  echo "$wl" | grep -Eq "$BENCH_ONLY" || continue

  # shellcheck disable=SC2086
  keys=$("$OURS" -D $args)
  dead=" "
  tmo=15

  rep=1
  while [ "$rep" -le "$R" ]; do
    for v in $(variant_order "$rep"); do
      case $dead in *" $v "*) continue ;; esac
      bin=$(variant_bin "$v")
      t0=$(now)
      # shellcheck disable=SC2086
      timeout -k 2 "$tmo" $bin $args -i "$rounds" >"$OUT/tmp/out" 2>>"$LOG" </dev/null
      rc=$?
      st=$(status_of $rc)
      el=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')

      if [ "$st" = ok ]; then
        awk -v v="$v" -v r="$rep" 'BEGIN { OFS = "\t" } { print v, r, "ok", $0 }' "$OUT/tmp/out" >>"$TSV"
        # a hang costs at most 20 x epoll's whole run, at least 3 s
        [ "$v" = epoll ] && [ "$rep" = 1 ] &&
          tmo=$(awk -v e="$el" 'BEGIN { t = int (e * 20) + 1; if (t < 3) t = 3; if (t > 15) t = 15; print t }')
      else
        echo "$keys" | awk -F '\t' -v v="$v" -v r="$rep" -v s="$st" 'BEGIN { OFS = "\t" }
          { print v, r, s, $1, $2, "-", "-", "-", "-", "-", "-" }' >>"$TSV"
        echo "run.sh: $v $args: $st (exit $rc)" >&2
        dead="$dead$v "
      fi
    done
    rep=$((rep + 1))
  done

  # the timers=1 chain runs make the same syscalls as timers=0: not traced
  if [ "$NOSTRACE" != 1 ] && [ "$krounds" != - ] && command -v strace >/dev/null 2>&1; then
    for v in ours epoll orig; do
      case $dead in *" $v "*) continue ;; esac
      run_strace "$v" "$args" "$krounds" || echo "run.sh: strace $v $args failed" >&2
    done
  fi
done

# memory: ours and epoll, n idle fds armed; one run each, ~2 s (it idles 1.2 s)
mem_run () {
  mv=$1 mu=$2 mn=$3
  shift 3
  case $mv in ours) mb=128 ;; *) mb=4 ;; esac
  mkeys=$("$OURS" -D -w mem -n "$mn")
  timeout -k 2 30 "$@" -w mem -n "$mn" -b "$mb" >"$OUT/tmp/mem" 2>>"$LOG" </dev/null
  mrc=$?
  mst=$(status_of $mrc)
  if [ "$mst" = ok ]; then
    awk -v v="$mv" -v u="$mu" 'BEGIN { OFS = "\t" } { print v, u, "ok", $0 }' "$OUT/tmp/mem" >>"$MEM"
  else
    echo "$mkeys" | awk -F '\t' -v v="$mv" -v u="$mu" -v s="$mst" 'BEGIN { OFS = "\t" }
      { print v, u, s, $1, $2, "-", "-", "-", "-", "-", "-" }' >>"$MEM"
    echo "run.sh: mem $mv -n $mn as $mu: $mst (exit $mrc)" >&2
  fi
}

if echo mem | grep -Eq "$BENCH_ONLY"; then
  if [ "$QUICK" = 1 ]; then mem_ns=1000; else mem_ns="10 1000 10000"; fi
  me=$(id -un)
  # nobody needs a copy it can read: the build tree may sit under /root
  unpriv=
  if [ "$(id -u)" = 0 ] && id -u nobody >/dev/null 2>&1 && getent group nogroup >/dev/null 2>&1 &&
     command -v setpriv >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1; then
    unpriv=$(mktemp -d "${TMPDIR:-/tmp}/ev_iouring-mem.XXXXXX")
    cp "$OURS" "$unpriv/" && chmod 755 "$unpriv" "$unpriv/bench-ours" || unpriv=
  fi
  for n in $mem_ns; do
    for v in ours epoll; do
      mem_run "$v" "$me" "$n" "$OURS"
      [ -n "$unpriv" ] &&
        mem_run "$v" nobody "$n" prlimit --memlock=8388608:8388608 \
          setpriv --reuid=nobody --regid=nogroup --clear-groups "$unpriv/bench-ours"
    done
  done
  [ -n "$unpriv" ] && rm -rf "$unpriv"
fi

# a real server: nghttpd --no-tls and h2load, both libev programs
if [ "$NOSERVER" != 1 ]; then
  sh "$here/server.sh" "$B" "$R" >>"$SRV" 2>>"$LOG" || echo "run.sh: server benchmark skipped or failed (see $LOG)" >&2
  # a UDP program: ss-tunnel -u and ss-server -u relaying to an echo origin
  sh "$here/udp.sh" "$B" "$R" >>"$UDP" 2>>"$LOG" || echo "run.sh: UDP relay benchmark skipped or failed (see $LOG)" >&2
fi

T1=$(now)
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# libev io_uring benchmarks"
  echo
  echo "- date: $(date -u '+%F %T') UTC, kernel $(uname -r), $(nproc) CPUs:" \
       "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
  echo "- load average before/after: $LOAD0 / $LOAD1 (machine shared with other jobs)"
  echo "- repetitions: R=$R, QUICK=$QUICK, medians; total time $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.0f", b - a }') s"
  echo "- ours: $OURS -b 128; epoll: $OURS -b 4; orig: $ORIG -b 128 (libev 4.33 as released)"
  echo
  awk -f "$here/summary.awk" "$TSV" "$SYS" "$SRV" "$MEM" "$UDP"
} >"$MD"

rm -rf "$OUT/tmp"
echo "run.sh: wrote $MD $TSV $SYS $SRV $MEM $UDP" >&2
