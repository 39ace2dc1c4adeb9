#!/bin/sh
# deb.sh: replacement libev4 and libev-dev packages, built from Debian's own
# libev source package with our patches and backend added.
#
#   sh tools/deb.sh B srcdir
#
# Debian's source package (apt-get source, through fetch-libev.sh's private
# apt configuration) is unpacked into $B/deb/libev-4.33.  Our patches/ are
# appended to its debian/patches/series, followed by one generated patch
# that replaces ev_iouring.c and adds ev_iouring_abi.h; quilt must apply the
# whole series without fuzz.  A debian/changelog entry gives the version
# Debian's plus "+iouring1", which must sort above Debian's.  Then
# dpkg-buildpackage -us -uc -b, with dpkg-gensymbols at its strictest check
# level, so that any change from Debian's libev4.symbols fails the build.
# lintian must report no error (warnings are printed).  The .debs end up in
# $B/deb (libev4, libev-dev, and libev-libevent-dev, which Debian builds
# from the same source).
#
# Build dependencies are installed with apt-get build-dep when root, and
# named otherwise.  exit status: 0 built, 1 failed.

set -eu

B=${1:?usage: deb.sh B srcdir}
srcdir=${2:?usage: deb.sh B srcdir}
LOCAL_SUFFIX=${DEB_LOCAL_SUFFIX:-+iouring1}

say () { echo "deb: $*"; }
die () { echo "deb: $*" >&2; exit 1; }

srcdir=$(cd "$srcdir" && pwd)
mkdir -p "$B"
B=$(cd "$B" && pwd)
D=$B/deb

# 1. tools to unpack and build: dpkg-dev, quilt, debhelper (Debian's
#    Build-Depends are checked once the tree is unpacked)
sh "$srcdir/tools/deps.sh" dpkg-source dpkg-buildpackage quilt dh lintian \
  || die "missing tools (see above)"

# 2. Debian's source package
sh "$srcdir/tools/fetch-libev.sh" --debian-source "$B"
set -- "$B"/dl/libev_4.33-*.dsc
[ $# -eq 1 ] && [ -f "$1" ] || die "expected exactly one libev_4.33-*.dsc in $B/dl: $*"
DSC=$1

rm -rf "$D"
mkdir -p "$D"
T=$D/libev-4.33
# --no-check: no keyring for the .dsc's signature here; apt-get source
# checked its hashes against the signed Release file, and the tarball's
# sha256 is fetch-libev.sh's
dpkg-source --no-check -x "$DSC" "$T" > "$D/unpack.log" 2>&1 \
  || { cat "$D/unpack.log" >&2; die "dpkg-source -x $DSC failed"; }
# Debian's version, before our entry
DEB_VERSION=$(cd "$T" && dpkg-parsechangelog -S Version)
VERSION=$DEB_VERSION$LOCAL_SUFFIX
dpkg --compare-versions "$VERSION" gt "$DEB_VERSION" \
  || die "$VERSION does not sort above Debian's $DEB_VERSION"
say "Debian's libev $DEB_VERSION -> $VERSION"
# for make check-deb: the version that brings the stock packages back
echo "$DEB_VERSION" > "$D/debian-version"

# 3. the series: Debian's own patches (if any), then ours, then our files
mkdir -p "$T/debian/patches"
touch "$T/debian/patches/series"
while read -r p
do
  case $p in ''|'#'*) continue ;; esac
  [ ! -e "$T/debian/patches/$p" ] || die "Debian already has a patch named $p"
  cp "$srcdir/patches/$p" "$T/debian/patches/$p"
  echo "$p" >> "$T/debian/patches/series"
done < "$srcdir/patches/series"

# our ev_iouring.c and ev_iouring_abi.h, as one more patch on top of 4.33's
FILES_PATCH=ev_iouring-backend-files.patch
rm -rf "$D/files"
mkdir -p "$D/files/a" "$D/files/b"
tar -xzf "$B/dl/libev_4.33.orig.tar.gz" -C "$D/files" libev-4.33/ev_iouring.c
mv "$D/files/libev-4.33/ev_iouring.c" "$D/files/a/"
cp "$srcdir/ev_iouring.c" "$srcdir/ev_iouring_abi.h" "$D/files/b/"
{
  cat <<EOF
Description: the io_uring backend of the ev_iouring project
 Replaces libev 4.33's ev_iouring.c and adds ev_iouring_abi.h, the
 io_uring definitions it uses (ev.c includes it, see the patches before
 this one).  The backend stays opt-in: LIBEV_FLAGS=128 (io_uring only)
 or 132 (io_uring, else epoll) in a program's environment, or
 EVBACKEND_IOURING in its ev_loop_new flags.
Forwarded: no
Last-Update: $(date -u +%Y-%m-%d)
---
EOF
  # diff: 1 means "differ", as they must; 2 is trouble
  for f in ev_iouring.c ev_iouring_abi.h
  do
    rc=0
    (cd "$D/files" && diff -Nu --label "a/$f" --label "b/$f" "a/$f" "b/$f") || rc=$?
    [ $rc -eq 1 ] || die "diff of $f: exit status $rc"
  done
} > "$T/debian/patches/$FILES_PATCH"
rm -rf "$D/files"
echo "$FILES_PATCH" >> "$T/debian/patches/series"

# every patch applies, in order, without fuzz, on top of Debian's
(
  cd "$T"
  QUILT_PATCHES=debian/patches QUILT_PC=.pc quilt push -a -q --fuzz=0 > "$D/quilt.log" 2>&1
) || { cat "$D/quilt.log" >&2; die "the series does not apply to Debian's libev (see above)"; }
say "$(wc -l < "$T/debian/patches/series") patches applied with quilt"

# 4. the changelog entry: what changes for an installed system
if git -C "$srcdir" rev-parse --git-dir > /dev/null 2>&1
then
  WHEN=$(git -C "$srcdir" log -1 --format=%aD)
  REV=" (ev_iouring $(git -C "$srcdir" describe --always --dirty))"
else
  WHEN=$(date -R)
  REV=
fi
DIST=$(cd "$T" && dpkg-parsechangelog -S Distribution)
# the entry's author: DEBFULLNAME/DEBEMAIL, as dch does; the default is a
# reserved, undeliverable address (lintian wants a dot in the domain)
WHO="${DEBFULLNAME:-ev_iouring developers} <${DEBEMAIL:-ev-iouring@ev-iouring.invalid}>"
{
  cat <<EOF
libev ($VERSION) $DIST; urgency=medium

  * Local build with the io_uring backend of the ev_iouring
    project$REV.
  * New io_uring backend (EVBACKEND_IOURING, 128): replaces 4.33's
    experimental one; ev_iouring.c and ev_iouring_abi.h added as
    debian/patches/$FILES_PATCH, the changes to ev.c,
    ev_vars.h, ev_wrap.h, ev.pod and Makefile.am as the patches before it.
  * Nothing changes for installed programs until asked: the backend is
    not among the recommended ones, so every loop stays on epoll unless
    the program's environment sets LIBEV_FLAGS=128 (io_uring only) or
    132 (io_uring, else epoll), or the program asks for EVBACKEND_IOURING.
    Loops created with EVFLAG_NOENV, and setuid programs, ignore
    LIBEV_FLAGS.  LIBEV_IOURING_VERBOSE=1 prints the ring's setup.
  * Same SONAME and exported symbols as Debian's libev4 (libev4.symbols
    unchanged).  Going back: apt-get install --allow-downgrades
    libev4=$DEB_VERSION libev-dev=$DEB_VERSION.

 -- $WHO  $WHEN

EOF
  cat "$T/debian/changelog"
} > "$D/changelog.new"
mv "$D/changelog.new" "$T/debian/changelog"
[ "$(cd "$T" && dpkg-parsechangelog -S Version)" = "$VERSION" ] \
  || die "debian/changelog does not parse to $VERSION"

# 5. build dependencies
if ! (cd "$T" && dpkg-checkbuilddeps) > "$D/builddeps.log" 2>&1
then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1
  then
    say "installing the build dependencies with apt-get build-dep"
    DEBIAN_FRONTEND=noninteractive apt-get -y -qq build-dep "$T" > "$D/builddeps.log" 2>&1 \
      || { cat "$D/builddeps.log" >&2; die "apt-get build-dep failed"; }
  else
    cat "$D/builddeps.log" >&2
    die "run: sudo apt-get build-dep $T (or install what dpkg-checkbuilddeps names above)"
  fi
fi

# 6. the build; level 4: any symbol added or lost fails dpkg-gensymbols
say "dpkg-buildpackage -us -uc -b (log: $D/build.log)"
(
  cd "$T"
  DPKG_GENSYMBOLS_CHECK_LEVEL=4 DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b > "$D/build.log" 2>&1
) || { tail -n 40 "$D/build.log" >&2; die "dpkg-buildpackage failed (log: $D/build.log)"; }

ARCH=$(dpkg --print-architecture)
UV=${VERSION#*:}
CHANGES=$D/libev_${UV}_$ARCH.changes
for p in libev4 libev-dev
do
  [ -f "$D/${p}_${UV}_$ARCH.deb" ] || die "$D/${p}_${UV}_$ARCH.deb was not built"
done
[ -f "$CHANGES" ] || die "$CHANGES was not written"

# the packaged library has our backend, not 4.33's
dpkg-deb --fsys-tarfile "$D/libev4_${UV}_$ARCH.deb" | tar -xO --wildcards './usr/lib/*/libev.so.4.0.0' \
  | grep -aq LIBEV_IOURING_VERBOSE || die "libev4's libev.so.4.0.0 does not contain our backend"

# 7. lintian: errors fail, warnings are listed
rc=0
lintian --tag-display-limit 0 "$CHANGES" > "$D/lintian.log" 2>&1 || rc=$?
if [ $rc -ne 0 ] || grep -q '^E: ' "$D/lintian.log"
then
  cat "$D/lintian.log" >&2
  die "lintian reports errors (exit status $rc)"
fi
say "lintian: no errors, $(grep -c '^W: ' "$D/lintian.log") warnings"
sed -n 's/^W: /  W: /p' "$D/lintian.log"

for f in "$D"/*.deb
do
  say "$(basename "$f")"
done
