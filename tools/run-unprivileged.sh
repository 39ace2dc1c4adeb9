#!/bin/sh
# run-unprivileged.sh: run the test binaries as an unprivileged user with
# Debian's default limits, the way most programs using libev run.
#
#   sh tools/run-unprivileged.sh dir name ...
#
# as root: copies dir/test_<name> for each name (and ev_iouring_abi.h, which
# test_abi reads) to a fresh mktemp -d directory that the user can read
# (the build tree may sit where it cannot, e.g. under /root), and runs
# tools/run-tests.sh there as $UNPRIV_USER:$UNPRIV_GROUP (nobody:nogroup)
# with no supplementary groups, under
#   RLIMIT_MEMLOCK  $UNPRIV_MEMLOCK (8388608, Debian's 8 MiB), soft and hard
#   RLIMIT_NOFILE   soft $UNPRIV_NOFILE (1024), hard $UNPRIV_NOFILE_HARD
#                   (1048576), or the current hard limit if we may not raise it
# (setpriv and prlimit, from util-linux).  the logs go to the directory's
# log/; it is removed when every test passed and KEEP is unset.
#
# not root: we cannot change user, so the tests run in place as this user
# with this user's limits (printed), like make check.
#
# io_uring charges RLIMIT_MEMLOCK per user, not per process: anything else
# running as the same user at the same time shares the 8 MiB.
#
# exit status: 0 every test passed or skipped, 1 a test failed or the
# setup did; the last line is run-tests.sh's "N passed, N failed, N skipped".

set -eu

dir=${1:?usage: run-unprivileged.sh dir name ...}
shift
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(dirname "$here")
user=${UNPRIV_USER:-nobody}
group=${UNPRIV_GROUP:-nogroup}
memlock=${UNPRIV_MEMLOCK:-8388608}
nofile=${UNPRIV_NOFILE:-1024}
nofile_hard=${UNPRIV_NOFILE_HARD:-1048576}

# soft and hard limits of this shell, as "memlock S:H, nofile S:H"
limits ()
{
  prlimit --pid $$ --noheadings --raw --output RESOURCE,SOFT,HARD --memlock --nofile \
    | awk '{ printf "%s%s %s:%s", (NR > 1 ? ", " : ""), tolower ($1), $2, $3 }'
}

if [ "$(id -u)" != 0 ]
then
  echo "check-unprivileged: not root, running as $(id -un) with its own limits: $(limits)"
  exec sh "$here/run-tests.sh" "$dir" "$@"
fi

if ! id -u "$user" >/dev/null 2>&1 || ! getent group "$group" >/dev/null 2>&1
then
  echo "check-unprivileged: no user $user or group $group" >&2
  exit 1
fi

# raising a hard limit needs CAP_SYS_RESOURCE (and fs.nr_open): a
# container may lack it, then the current hard limit stays
if ! prlimit --nofile="$nofile:$nofile_hard" true 2>/dev/null
then
  nofile_hard=$(prlimit --pid $$ --noheadings --raw --output HARD --nofile)
  echo "check-unprivileged: cannot raise the nofile hard limit to ${UNPRIV_NOFILE_HARD:-1048576}, keeping $nofile_hard"
fi
if ! prlimit --memlock="$memlock:$memlock" true 2>/dev/null
then
  echo "check-unprivileged: cannot set memlock to $memlock" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ev_iouring-unpriv.XXXXXX")
mkdir "$work/bin" "$work/log"
for name in "$@"
do
  if [ -e "$dir/test_$name" ]
  then
    cp "$dir/test_$name" "$work/bin/"
  fi
done
cp "$srcdir/ev_iouring_abi.h" "$here/run-tests.sh" "$work/bin/"
chmod 755 "$work" "$work/bin"
chown "$user:$group" "$work/log"

# shellcheck disable=SC2016 # $1 is for the inner shell
if ! setpriv --reuid="$user" --regid="$group" --clear-groups \
       sh -c 'test -r "$1/bin/run-tests.sh" && test -w "$1/log"' sh "$work"
then
  echo "check-unprivileged: $user cannot use $work (TMPDIR=${TMPDIR:-})" >&2
  rm -rf "$work"
  exit 1
fi

echo "check-unprivileged: as $user:$group, memlock $memlock, nofile $nofile:$nofile_hard, in $work"
rc=0
(
  cd "$work/bin"
  TEST_LOG_DIR=$work/log TEST_ABI_HEADER=$work/bin/ev_iouring_abi.h \
    prlimit --memlock="$memlock:$memlock" --nofile="$nofile:$nofile_hard" \
    setpriv --reuid="$user" --regid="$group" --clear-groups \
    sh "$work/bin/run-tests.sh" "$work/bin" "$@"
) || rc=$?

if [ "$rc" = 0 ] && [ -z "${KEEP:-}" ]
then
  rm -rf "$work"
else
  echo "check-unprivileged: logs in $work/log"
fi
exit "$rc"
