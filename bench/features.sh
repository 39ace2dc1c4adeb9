#!/bin/sh
# bench/features.sh BUILD_DIR - what each optional io_uring feature is worth
#
# Builds BUILD_DIR/bench/bench-hooks: bench.c + hooks.c + tests/fakekernel.c
# linked with BUILD_DIR/libev.a (the product, from make), then runs a few
# workloads with one feature taken away at a time by the tests' fake kernel
# (it rejects the setup flag, or hides the feature bit), interleaved, R
# times (5). Results, as the median
# CPU time (user+sys, both processes for pingpong: less disturbed by other
# load than wall time) relative to "all features" (above 1.00: the feature
# helps), go to BUILD_DIR/bench/features.md and features.tsv. A feature the
# backend does not use gives the same ring as "all" (see the ring lines at
# the end): its column is a measure of the noise.
# Environment: CC (cc), R, QUICK=1 (R=1, fewer workloads).

set -u

B=${1:-build}
OUT=$B/bench
CC=${CC:-cc}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then R=${R:-1}; else R=${R:-5}; fi
here=$(cd "$(dirname "$0")" && pwd)
BIN=$OUT/bench-hooks

[ -f "$B/libev.a" ] || { echo "features.sh: $B/libev.a missing (run make first)" >&2; exit 1; }
mkdir -p "$OUT"

# relinked every time: the library changes under us while tuning
if ! $CC -O2 -g -I"$B/libev" -I"$here/.." -I"$here/../tests" -o "$BIN" \
       "$here/bench.c" "$here/hooks.c" "$here/../tests/fakekernel.c" "$B/libev.a" -lm -ldl; then
  echo "features.sh: cannot build $BIN" >&2
  exit 1
fi

# name | env (hooks.c) ; setup flags, feature bits from ev_iouring_abi.h.
# only what the backend uses: it asks for no DEFER_TASKRUN (note n) and
# registers nothing, so those columns would measure noise
variants () {
  cat <<'EOF'
all|
-coop_taskrun|BENCH_NOSETUP=0x300
-no_sqarray|BENCH_NOSETUP=0x10000
-submit_all|BENCH_NOSETUP=0x80
-ext_arg|BENCH_NOFEAT=0x100
-cqe_skip|BENCH_NOFEAT=0x800
-no_iowait|BENCH_NOFEAT=0x20000
EOF
}

# metric (w wall, c cpu) | args | rounds
workloads () {
  cat <<'EOF'
c|-w chain -n 100 -a 1 -W 1000|40
c|-w chain -n 1000 -a 100 -W 1000|40
c|-w churn -n 1000 -a 100|3000
c|-w timers -n 1000 -a 100|20000
c|-w poll0 -n 10|100000
c|-w idle -n 10|200
c|-w pingpong -k socketpair|10000
EOF
}

TSV=$OUT/features.tsv
MD=$OUT/features.md
printf 'variant\trep\tmetric\tworkload\tparams\tvalue_us\n' >"$TSV"

# what each variant really got
: >"$OUT/features.setup"
variants | while IFS='|' read -r name envs; do
  # shellcheck disable=SC2086
  line=$(env BENCH_RING=1 $envs "$BIN" -b 128 -w poll0 -n 1 -i 1 2>&1 >/dev/null | head -1)
  printf '%s\t%s\n' "$name" "$line" >>"$OUT/features.setup"
done

workloads | while IFS='|' read -r metric args rounds; do
  [ "$QUICK" = 1 ] && case $args in *chain*1000*|*timers*) continue ;; esac
  rep=1
  while [ "$rep" -le "$R" ]; do
    variants | while IFS='|' read -r name envs; do
      # shellcheck disable=SC2086
      env $envs timeout 30 "$BIN" -b 128 $args -i "$rounds" </dev/null 2>/dev/null | head -1 |
        awk -F '\t' -v n="$name" -v r="$rep" -v m="$metric" 'BEGIN { OFS = "\t" }
          { print n, r, m, $1, $2, (m == "c" ? $7 : $6) / $4 * 1e6 }' >>"$TSV"
    done
    rep=$((rep + 1))
  done
done

{
  echo "# io_uring features: each taken away in turn (the tests' fake kernel), R=$R, $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Median CPU time per iteration relative to \"all\"; above 1.00 means the run got"
  echo "slower without the feature, so the feature helps. A column whose ring line below"
  echo "equals the \"all\" line measures only noise."
  echo
  awk -F '\t' '
    function med (s,   a, n, i, j, t) {
      n = split (substr (s, 2), a, " ")
      for (i = 2; i <= n; ++i) for (j = i; j > 1 && a [j - 1] + 0 > a [j] + 0; --j) { t = a [j]; a [j] = a [j - 1]; a [j - 1] = t }
      return n % 2 ? a [(n + 1) / 2] : (a [n / 2] + a [n / 2 + 1]) / 2
    }
    NR == 1 { next }
    {
      k = $4 " " $5
      if (!(k in sk)) { sk [k] = 1; ko [++nk] = k }
      if (!($1 in sv)) { sv [$1] = 1; vo [++nv] = $1 }
      v [k, $1] = v [k, $1] " " $6
    }
    END {
      printf "| workload | all (us) |"
      for (j = 2; j <= nv; ++j) printf " %s |", vo [j]
      printf "\n|---|--:|"
      for (j = 2; j <= nv; ++j) printf "--:|"
      printf "\n"
      for (i = 1; i <= nk; ++i) {
        base = med (v [ko [i], "all"])
        printf "| %s | %.3f |", ko [i], base
        for (j = 2; j <= nv; ++j)
          printf " %s |", ((ko [i], vo [j]) in v && base > 0) ? sprintf ("%.2f", med (v [ko [i], vo [j]]) / base) : "-"
        printf "\n"
      }
    }' "$TSV"
  echo
  echo "Ring each variant got (BENCH_RING=1):"
  echo
  sed 's/^/    /' "$OUT/features.setup"
} >"$MD"

echo "features.sh: wrote $MD" >&2
