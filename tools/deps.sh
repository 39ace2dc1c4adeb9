#!/bin/sh
# deps.sh: make sure the tools and -dev packages a make target needs exist.
#
#   sh tools/deps.sh [tool ...] [pc:module ...]
#
# a tool is a command looked up in PATH, pc:module a pkg-config module
# ($PKG_CONFIG, default pkg-config).  when something is missing and we run
# as root on a system with apt-get, the Debian packages are installed;
# otherwise we stop and print the command to run.  DEPS_NO_RECOMMENDS=1
# installs without the packages' recommends (qemu's would bring a GUI).

set -eu

PKG_CONFIG=${PKG_CONFIG:-pkg-config}

# Debian package providing a tool or a pkg-config module
package ()
{
  case $1 in
    pc:cmocka)   echo libcmocka-dev ;;
    pc:liburing) echo liburing-dev ;;
    pc:*)        echo "${1#pc:}-dev" ;;
    cc|gcc)      echo gcc ;;
    c++|g++)     echo g++ ;;
    clang|clang++) echo clang ;;
    pkg-config)  echo pkg-config ;;
    valgrind)    echo valgrind ;;
    quilt)       echo quilt ;;
    strace)      echo strace ;;
    patch)       echo patch ;;
    git)         echo git ;;
    podchecker)  echo perl ;;
    sha256sum)   echo coreutils ;;
    setpriv|prlimit) echo util-linux ;;
    dpkg-source|dpkg-buildpackage|dpkg-parsechangelog|dpkg-checkbuilddeps) echo dpkg-dev ;;
    dh)          echo debhelper ;;
    lintian)     echo lintian ;;
    qemu-system-x86_64) echo qemu-system-x86 ;;
    busybox)     echo busybox-static ;;
    nghttpd)     echo nghttp2-server ;;
    h2load)      echo nghttp2-client ;;
    ss-server|ss-tunnel) echo shadowsocks-libev ;;
    dpkg-deb)    echo dpkg ;;
    *)           echo "$1" ;;
  esac
}

present ()
{
  case $1 in
    pc:*) command -v "$PKG_CONFIG" >/dev/null 2>&1 && "$PKG_CONFIG" --exists "${1#pc:}" ;;
    *)    command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=
for need in "$@"
do
  if ! present "$need"
  then
    pkg=$(package "$need")
    case " $missing " in
      *" $pkg "*) ;;
      *) missing="$missing $pkg" ;;
    esac
    # a pkg-config module also needs pkg-config itself
    case $need in
      pc:*) present pkg-config || case " $missing " in *" pkg-config "*) ;; *) missing="$missing pkg-config" ;; esac ;;
    esac
  fi
done

[ -z "$missing" ] && exit 0
missing=${missing# }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
then
  echo "installing $missing with apt-get"
  DEBIAN_FRONTEND=noninteractive
  export DEBIAN_FRONTEND
  apt-get update -qq
  # shellcheck disable=SC2086 # word splitting wanted
  apt-get install -y -qq ${DEPS_NO_RECOMMENDS:+--no-install-recommends} $missing
  exit 0
fi

echo "missing: $missing" >&2
if command -v apt-get >/dev/null 2>&1
then
  echo "run: sudo apt-get install -y $missing" >&2
else
  echo "install the packages providing: $*" >&2
fi
exit 1
