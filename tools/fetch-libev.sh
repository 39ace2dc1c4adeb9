#!/bin/sh
# fetch-libev.sh: put a pristine libev 4.33 tree into $B/libev-4.33.
#
#   sh tools/fetch-libev.sh B
#   sh tools/fetch-libev.sh --debian-source B
#
# sources, first that works:
#   1. LIBEV_SRC=dir        an unpacked libev-4.33 tree, copied as it is
#   2. LIBEV_TARBALL=file   a libev-4.33.tar.gz (Debian's libev_4.33.orig.tar.gz
#                           is the same file)
#   3. $B/dl/libev_4.33.orig.tar.gz left by an earlier run
#   4. apt-get source --download-only libev, through a private apt
#      configuration under $B/apt (nothing under /etc/apt changes; works
#      without root)
#   5. the upstream tarball, with curl or wget
# every tarball must have the sha256 below, anything else is refused.
#
# --debian-source: make sure $B/dl also holds Debian's whole source package
# (libev_4.33-N.dsc, .debian.tar.xz and the orig tarball), through the same
# private apt configuration (4.), for make deb; $B/libev-4.33 is left alone.
# exit status: 0 done, 1 failed.

set -eu

DEBIAN_SOURCE=
if [ "${1:-}" = --debian-source ]
then
  DEBIAN_SOURCE=1
  shift
fi
B=${1:?usage: fetch-libev.sh [--debian-source] builddir}
VERSION=4.33
SHA256=507eb7b8d1015fbec5b935f34ebed15bf346bed04a11ab82b8eee848c4205aea
URL=http://dist.schmorp.de/libev/Attic/libev-$VERSION.tar.gz
DEST=$B/libev-$VERSION
DL=$B/dl
TARBALL=$DL/libev_$VERSION.orig.tar.gz

say () { echo "fetch-libev: $*" >&2; }
die () { say "$*"; exit 1; }

sha_ok ()
{
  sum=$(sha256sum "$1" | cut -d ' ' -f 1)
  [ "$sum" = "$SHA256" ] && return 0
  say "$1: sha256 $sum"
  say "expected $SHA256 (libev $VERSION); refusing it"
  return 1
}

unpack ()
{
  rm -rf "$DEST" "$DEST.tmp"
  mkdir -p "$DEST.tmp"
  tar -xzf "$1" -C "$DEST.tmp"
  [ -f "$DEST.tmp/libev-$VERSION/ev.c" ] || die "$1 does not contain libev-$VERSION/"
  mv "$DEST.tmp/libev-$VERSION" "$DEST"
  rmdir "$DEST.tmp"
  say "pristine libev $VERSION from $2"
}

from_apt ()
{
  command -v apt-get >/dev/null 2>&1 || return 1
  # shellcheck disable=SC2046 # "uri suite key", split on purpose
  set -- $(sh "$(dirname "$0")/apt-mirror.sh")
  [ $# -eq 3 ] || { say "no Debian mirror found in /etc/apt"; return 1; }
  uri=$1 suite=$2 key=$3
  A=$(cd "$B" && pwd)/apt
  rm -rf "$A"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/src"
  if [ "$key" != - ]
  then
    echo "deb-src [signed-by=$key] $uri $suite main" > "$A/sources.list"
  else
    echo "deb-src $uri $suite main" > "$A/sources.list"
  fi
  say "apt-get source libev from $uri $suite"
  set -- -o Dir::Etc::SourceList="$A/sources.list" \
         -o Dir::Etc::SourceParts=/dev/null \
         -o Dir::State::Lists="$A/lists" \
         -o Dir::Cache="$A/cache" \
         -o Debug::NoLocking=1
  # as root apt would hand the download to the _apt user, who may not be
  # able to enter $B; it would then warn and download as root anyway
  [ "$(id -u)" = 0 ] && set -- "$@" -o APT::Sandbox::User=root
  apt-get -qq "$@" update >"$A/log" 2>&1 || { cat "$A/log" >&2; return 1; }
  (cd "$A/src" && apt-get -qq "$@" source --download-only libev) >>"$A/log" 2>&1 \
    || { cat "$A/log" >&2; return 1; }
  [ -f "$A/src/libev_$VERSION.orig.tar.gz" ] \
    || { say "apt-get source did not give libev_$VERSION.orig.tar.gz:"; ls "$A/src" >&2; return 1; }
  sha_ok "$A/src/libev_$VERSION.orig.tar.gz" || exit 1
  # the .dsc and Debian's packaging stay next to the tarball, for make deb
  for f in "$A"/src/libev_*
  do
    mv "$f" "$DL/"
  done
}

from_upstream ()
{
  say "downloading $URL"
  if command -v curl >/dev/null 2>&1
  then
    curl -fsSL -o "$TARBALL.part" "$URL" || return 1
  elif command -v wget >/dev/null 2>&1
  then
    wget -q -O "$TARBALL.part" "$URL" || return 1
  else
    say "neither curl nor wget"
    return 1
  fi
  sha_ok "$TARBALL.part" || { rm -f "$TARBALL.part"; exit 1; }
  mv "$TARBALL.part" "$TARBALL"
}

mkdir -p "$DL"

if [ -n "$DEBIAN_SOURCE" ]
then
  set -- "$DL"/libev_"$VERSION"-*.dsc
  [ -f "$1" ] && [ -f "$TARBALL" ] && sha_ok "$TARBALL" && exit 0
  from_apt || die "could not get Debian's libev source package with apt-get source"
  set -- "$DL"/libev_"$VERSION"-*.dsc
  [ -f "$1" ] || die "apt-get source gave no libev_$VERSION-*.dsc"
  say "Debian's libev source package: $(basename "$1")"
  exit 0
fi

if [ -n "${LIBEV_SRC:-}" ]
then
  [ -f "$LIBEV_SRC/ev.c" ] && [ -f "$LIBEV_SRC/ev_vars.h" ] \
    || die "LIBEV_SRC=$LIBEV_SRC is not a libev source tree"
  grep -q '^#define EV_VERSION_MINOR 33$' "$LIBEV_SRC/ev.h" \
    || die "LIBEV_SRC=$LIBEV_SRC is not libev $VERSION"
  rm -rf "$DEST"
  cp -R "$LIBEV_SRC" "$DEST"
  chmod -R u+w "$DEST"
  say "pristine libev $VERSION copied from $LIBEV_SRC"
  exit 0
fi

if [ -n "${LIBEV_TARBALL:-}" ]
then
  sha_ok "$LIBEV_TARBALL" || exit 1
  unpack "$LIBEV_TARBALL" "$LIBEV_TARBALL"
  exit 0
fi

if [ -f "$TARBALL" ] && sha_ok "$TARBALL"
then
  unpack "$TARBALL" "$TARBALL"
  exit 0
fi
rm -f "$TARBALL"

if from_apt
then
  unpack "$TARBALL" "Debian's libev source package"
  exit 0
fi
say "apt-get source failed, trying upstream"

if from_upstream
then
  unpack "$TARBALL" "$URL"
  exit 0
fi

die "could not get libev $VERSION; pass LIBEV_SRC=dir or LIBEV_TARBALL=file"
