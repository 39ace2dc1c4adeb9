#!/bin/sh
# bench/plot.sh BUILD_DIR - BUILD_DIR/bench/chain.png from results.tsv:
# time per chain run against the number of pipes (a=100 active, 1000 writes,
# EVRUN_NOWAIT, no timers) for ours, epoll and 4.33's io_uring, loop phase
# and setup phase side by side. Medians over the repetitions; a variant that
# hung or aborted at some n has no point there.

set -u

B=${1:-build}
OUT=$B/bench
TSV=$OUT/results.tsv
A=${PLOT_A:-100}
here=$(cd "$(dirname "$0")" && pwd)

[ -s "$TSV" ] || { echo "plot.sh: $TSV missing: run make bench first" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 || { echo "plot.sh: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 1; }

# n, then loop-phase medians ours epoll orig, then setup-phase medians
awk -F '\t' -v a="$A" '
  function med (s,   x, n, i, j, t) {
    if (s == "") return "NaN"
    n = split (substr (s, 2), x, " ")
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && x [j - 1] + 0 > x [j] + 0; --j) { t = x [j]; x [j] = x [j - 1]; x [j - 1] = t }
    return n % 2 ? x [(n + 1) / 2] : (x [n / 2] + x [n / 2 + 1]) / 2
  }
  $3 == "ok" && ($4 == "chain" || $4 == "chain-setup") && $5 ~ ("^n=[0-9]+,a=" a ",w=1000,nowait,timers=0$") {
    split ($5, p, /[=,]/); n = p [2] + 0; ns [n] = 1
    v [n, $4, $1] = v [n, $4, $1] " " $11
  }
  END {
    for (n in ns) {
      printf "%d", n
      split ("chain chain-setup", ph, " ")
      for (i = 1; i <= 2; ++i)
        printf " %s %s %s", med (v [n, ph [i], "ours"]), med (v [n, ph [i], "epoll"]), med (v [n, ph [i], "orig"])
      printf "\n"
    }
  }' "$TSV" | sort -n >"$OUT/chain.dat"

[ -s "$OUT/chain.dat" ] || { echo "plot.sh: no a=$A chain results in $TSV" >&2; exit 1; }

# 4.33 hangs or aborts on this workload: say so instead of an empty line
orig_ok=$(awk '$4 != "NaN" || $7 != "NaN" { f = 1 } END { print f + 0 }' "$OUT/chain.dat")

gnuplot -e "datafile='$OUT/chain.dat'; outfile='$OUT/chain.png'; active='$A'; orig_ok=$orig_ok" "$here/plot.gp" &&
  echo "plot.sh: wrote $OUT/chain.png" >&2
