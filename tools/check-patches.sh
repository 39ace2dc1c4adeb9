#!/bin/sh
# check-patches.sh: patches/ applies three ways and builds after each patch.
#
#   CC=cc sh tools/check-patches.sh B srcdir
#
# the pristine tree $B/libev-4.33 is patched with patch -p1, with git am in
# a scratch git repository and with quilt push; after every single patch
# ev.c is compiled (-DHAVE_CONFIG_H, config.h from $B/libev: the series does
# not touch configure).  our files go in when the tree first needs them:
# ev_iouring_abi.h once ev.c includes it, our ev_iouring.c once ev_vars.h
# holds its state (before that, 4.33's own ev_iouring.c is built).  at the
# end the three trees must be identical.  the patch files themselves are
# checked for the project's conventions (STYLE.md section 8).

set -u

B=${1:?usage: check-patches.sh B srcdir}
srcdir=${2:?usage: check-patches.sh B srcdir}
CC=${CC:-cc}
W=$B/check-patches
P=$srcdir/patches
fail=0

rm -rf "$W"
mkdir -p "$W/ours"
B=$(cd "$B" && pwd)
W=$B/check-patches
# one snapshot of our files for all three runs
cp "$srcdir/ev_iouring.c" "$srcdir/ev_iouring_abi.h" "$W/ours/"

say () { echo "check-patches: $*"; }
bad () { echo "FAIL: $*"; fail=1; }

# 1. the series file and the patch files agree, and each patch looks right
for f in "$P"/*.patch
do
  grep -qxF "$(basename "$f")" "$P/series" || bad "$(basename "$f") is not in series"
done

while read -r p
do
  f=$P/$p
  [ -f "$f" ] || { bad "series names $p, which does not exist"; continue; }
  head -1 "$f" | grep -q '^From 0\{40\} ' || bad "$p: not git format-patch --zero-commit output"
  subject=$(sed -n 's/^Subject: \(\[PATCH[^]]*\] \)\{0,1\}//p' "$f" | head -1)
  # format-patch folds long subjects: join the continuation line
  cont=$(awk '/^Subject:/ { s = 1; next } s && /^ / { sub (/^ /, ""); print; exit } { s = 0 }' "$f")
  [ -n "$cont" ] && subject="$subject $cont"
  echo "$subject" | grep -q '^[^ :][^:]*: [a-z]' || bad "$p: subject is not 'file-or-area: imperative summary': $subject"
  [ "${#subject}" -le 72 ] || bad "$p: subject longer than 72 characters: $subject"
  grep -q '^Signed-off-by: ' "$f" || bad "$p: no Signed-off-by"
  grep -q '^Forwarded: ' "$f" || bad "$p: no Forwarded: (DEP-3)"
  ! grep -q '^-- $' "$f" || bad "$p: has a signature (use --no-signature)"
done <"$P/series"

# 2. apply three ways, building after each patch
files_in ()
{
  t=$1
  if grep -q '^# *include "ev_iouring_abi.h"' "$t/ev.c" && [ ! -f "$t/ev_iouring_abi.h" ]
  then
    cp "$W/ours/ev_iouring_abi.h" "$t/"
  fi
  if grep -qF 'VARx(char *, iouring_fork_guard)' "$t/ev_vars.h" && ! cmp -s "$W/ours/ev_iouring.c" "$t/ev_iouring.c"
  then
    cp "$W/ours/ev_iouring.c" "$t/"
  fi
}

build_step ()
{
  how=$1 t=$2 p=$3
  files_in "$t"
  cp "$B/libev/config.h" "$t/config.h"
  # shellcheck disable=SC2086 # CC may carry flags
  if (cd "$t" && $CC -DHAVE_CONFIG_H -I. -O0 -c -o /dev/null ev.c) >"$W/$how.log" 2>&1
  then
    echo "ok: $how: $p builds"
  else
    bad "$how: ev.c does not build after $p"
    grep -E 'error' "$W/$how.log" | head -20 | sed 's/^/    /'
  fi
  if [ -f "$t/ev.pod" ] && command -v podchecker >/dev/null 2>&1 && ! podchecker "$t/ev.pod" >/dev/null 2>&1
  then
    bad "$how: ev.pod has pod errors after $p"
  fi
  rm -f "$t/config.h"
}

fresh ()
{
  rm -rf "${W:?}/${1:?}"
  cp -R "$B/libev-4.33" "$W/$1"
  rm -f "$W/$1/.pristine"
}

fresh patch
while read -r p
do
  if patch -d "$W/patch" -p1 --batch --forward --quiet <"$P/$p" >"$W/patch.apply.log" 2>&1
  then
    build_step patch "$W/patch" "$p"
  else
    bad "patch -p1: $p does not apply"
    sed 's/^/    /' "$W/patch.apply.log"
    break
  fi
done <"$P/series"

fresh git-am
(
  cd "$W/git-am" \
    && git init -q \
    && git add -A \
    && git -c user.name=check -c user.email=check@invalid commit -q -m 'libev 4.33'
) || bad "git: cannot import the pristine tree"
while read -r p
do
  if (cd "$W/git-am" && git -c user.name=check -c user.email=check@invalid am -q --keep-cr "$P/$p") >"$W/git-am.apply.log" 2>&1
  then
    # our files must not show up as changes git am would stumble on
    build_step git-am "$W/git-am" "$p"
    (cd "$W/git-am" && git checkout -q -- . 2>/dev/null && git clean -q -f ev_iouring_abi.h 2>/dev/null) || true
  else
    bad "git am: $p does not apply"
    sed 's/^/    /' "$W/git-am.apply.log"
    break
  fi
done <"$P/series"
files_in "$W/git-am"

fresh quilt
while read -r p
do
  if (cd "$W/quilt" && QUILT_PATCHES="$P" QUILT_PC=.pc quilt --quiltrc=- push -q) >"$W/quilt.apply.log" 2>&1
  then
    build_step quilt "$W/quilt" "$p"
  else
    bad "quilt push: $p does not apply"
    sed 's/^/    /' "$W/quilt.apply.log"
    break
  fi
done <"$P/series"

# 3. the three results are the same tree
if diff -r -x .git -x .pc "$W/patch" "$W/git-am" >"$W/diff.log" 2>&1 \
   && diff -r -x .git -x .pc "$W/patch" "$W/quilt" >>"$W/diff.log" 2>&1
then
  echo "ok: patch -p1, git am and quilt give the same tree"
else
  bad "patch -p1, git am and quilt give different trees"
  head -40 "$W/diff.log" | sed 's/^/    /'
fi

[ "$fail" = 0 ] && say "$(wc -l <"$P/series") patches apply three ways and build at each step"
exit $fail
