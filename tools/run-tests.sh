#!/bin/sh
# run-tests.sh: run test binaries, automake style.
#
#   sh tools/run-tests.sh dir name ...
#
# runs dir/test_<name> for each name (under $RUN_WRAPPER, e.g. valgrind,
# when set), each bounded by $TEST_TIMEOUT seconds.  exit 0 is PASS, 77 is
# SKIP (the binary cannot run here: no io_uring), anything else FAIL; a
# failing binary's output is shown.  the last line is always
# "N passed, N failed, N skipped"; the exit status is 1 if any failed.
# each binary's output goes to $TEST_LOG_DIR/test_<name>.log (default: dir).

set -u

dir=${1:?usage: run-tests.sh dir name ...}
shift
timeout=${TEST_TIMEOUT:-600}
logdir=${TEST_LOG_DIR:-$dir}
passed=0 failed=0 skipped=0

for name in "$@"
do
  bin=$dir/test_$name
  log=$logdir/test_$name.log
  if [ ! -x "$bin" ]
  then
    echo "FAIL: $name (no $bin)"
    failed=$((failed + 1))
    continue
  fi
  # shellcheck disable=SC2086 # RUN_WRAPPER is a command line
  timeout -k 10 "$timeout" ${RUN_WRAPPER:-} "$bin" >"$log" 2>&1 </dev/null
  rc=$?
  case $rc in
    0)
      echo "PASS: $name"
      passed=$((passed + 1)) ;;
    77)
      echo "SKIP: $name"
      skipped=$((skipped + 1)) ;;
    124|137)
      cat "$log"
      echo "FAIL: $name (timed out after ${timeout}s)"
      failed=$((failed + 1)) ;;
    *)
      cat "$log"
      echo "FAIL: $name (exit $rc)"
      failed=$((failed + 1)) ;;
  esac
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
