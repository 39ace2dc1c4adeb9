#!/bin/sh
# check-kernel.sh: the test binaries inside Debian's own kernels, booted
# under qemu-system-x86_64 with TCG (no KVM needed).
#
#   sh tools/check-kernel.sh B SRCDIR SERIES...
#
# SERIES: 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie), 7 (sid).  For each,
# the newest cloud-amd64 kernel package of that series on the mirror that
# /etc/apt uses is fetched with apt-get download through a private apt
# configuration (B/kernels/apt; nothing under /etc/apt changes), cached
# under B/kernels/SERIES, unpacked with dpkg-deb -x, and booted with one
# initramfs: busybox, B/test/test_* and the libraries ldd names, util-linux's
# setpriv and prlimit, B/kernels/probe, and /etc/passwd with root and nobody.
# Inside, every test binary runs as root, with the limits of the user who
# runs this script (as make check would run it), then as nobody (setpriv)
# with Debian's default limits (RLIMIT_MEMLOCK 8 MiB, RLIMIT_NOFILE
# 1024:1048576);
# exit 0 is PASS, 77 SKIP, anything else FAIL (its output is shown).  The
# probe prints the kernel facts the backend depends on (features word,
# memlock charge of a ring as nobody, POLLOUT on a full pipe).
#
# environment:
#   TESTS="abi io ..."        the binaries to run (default: every B/test/test_*)
#   CHECK_KERNEL_PROGRAMS     1: one nghttpd + h2load round (LIBEV_FLAGS=128,
#                             B/libev.so.4) in every guest; 0: never; default:
#                             in the 5.10 and 6.1 guests when nghttpd and
#                             h2load are there or installable
#   KERNEL_REFRESH=1          ask the mirror again even when a kernel of the
#                             series is cached
#   KERNEL_BOOT_TIMEOUT=1800  seconds one boot may take, all tests included (6.1 as root and nobody: 833 - 900 s on 2 vCPUs under TCG)
#   KERNEL_TEST_TIMEOUT=600   seconds one test binary may take in the guest
#   KERNEL_MEM=2G KERNEL_SMP=2  the guest's size
#   KERNEL_USERS="root nobody"  who runs the binaries (one of them halves
#                             the time)
#
# output: one table per kernel (PASS/FAIL/SKIP per binary, as root and as
# nobody), then the plain line "N passed, N failed, N skipped" over all.
# exit status: 0 all passed, 1 a failure (a kernel that cannot be fetched or
# does not finish booting counts as one), 77 qemu cannot run here.

set -eu

B=${1:?usage: check-kernel.sh B SRCDIR SERIES...}
SRCDIR=${2:?usage: check-kernel.sh B SRCDIR SERIES...}
shift 2
[ $# -gt 0 ] || set -- 6.1
B=$(cd "$B" && pwd)
SRCDIR=$(cd "$SRCDIR" && pwd)
K=$B/kernels
BOOT_TIMEOUT=${KERNEL_BOOT_TIMEOUT:-1800}
TEST_TIMEOUT=${KERNEL_TEST_TIMEOUT:-600}
MEM=${KERNEL_MEM:-2G}
SMP=${KERNEL_SMP:-2}
PROGRAMS=${CHECK_KERNEL_PROGRAMS:-auto}
USERS=${KERNEL_USERS:-root nobody}
for who in $USERS
do
  case $who in root|nobody) ;; *) echo "check-kernel: KERNEL_USERS: root and/or nobody" >&2; exit 1 ;; esac
done

say () { echo "check-kernel: $*" >&2; }
die () { say "$*"; exit 1; }
skip () { say "SKIP: $*"; echo "SKIP: check-kernel ($*)"; exit 77; }

#############################################################################
# tools: qemu, busybox, apt-get, dpkg-deb, setpriv, prlimit

DEPS_NO_RECOMMENDS=1 sh "$SRCDIR/tools/deps.sh" qemu-system-x86_64 busybox setpriv prlimit \
  apt-get dpkg-deb ldd timeout >&2 || skip "qemu or busybox missing and not installable"
qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg \
  || skip "qemu-system-x86_64 has no TCG accelerator"

if [ "$PROGRAMS" != 0 ]
then
  if ! DEPS_NO_RECOMMENDS=1 sh "$SRCDIR/tools/deps.sh" nghttpd h2load >&2
  then
    [ "$PROGRAMS" = 1 ] && die "CHECK_KERNEL_PROGRAMS=1 but nghttpd or h2load missing"
    say "no nghttpd/h2load: the program round is left out"
    PROGRAMS=0
  fi
fi

[ -x "$B/kernels/probe" ] || die "$B/kernels/probe missing (make check-kernel builds it)"
[ -e "$B/libev.so.4" ] || die "$B/libev.so.4 missing (make lib)"

if [ -n "${TESTS:-}" ]
then
  names=$TESTS
else
  names=$(cd "$B/test" && ls test_* 2>/dev/null | sed -n 's/^test_\([a-z0-9_]*\)$/\1/p' | tr '\n' ' ')
fi
for n in $names
do
  [ -x "$B/test/test_$n" ] || die "$B/test/test_$n missing (make tests)"
done
[ -n "$names" ] || die "no test binaries in $B/test (make tests)"

#############################################################################
# kernels: series -> suite and package name pattern

suite_of ()
{
  case $1 in
    5.10) echo bullseye ;;
    6.1)  echo bookworm ;;
    6.12) echo trixie ;;
    7)    echo sid ;;
    *)    return 1 ;;
  esac
}

# extended regexes, best first: the unsigned image (one kernel, no
# signature), then the signed one
packages_re ()
{
  case $1 in
    5.10) echo '^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$' ;;
    6.1)  echo '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' ;;
    6.12) echo '^linux-image-6\.12\.[0-9]+\+deb13-cloud-amd64-unsigned$' ;;
    7)    echo '^linux-binary-unsigned-7\.[0-9.]+\+deb[0-9]+-cloud-amd64$'
          echo '^linux-binary-7\.[0-9.]+\+deb[0-9]+-cloud-amd64$'
          echo '^linux-image-7\.[0-9.]+\+deb[0-9]+-cloud-amd64-unsigned$' ;;
  esac
}

A=$K/apt
apt_ready=
apt_setup ()
{
  [ -n "$apt_ready" ] && return 0
  # shellcheck disable=SC2046 # "uri suite key", split on purpose
  set -- $(sh "$SRCDIR/tools/apt-mirror.sh") || true
  [ $# -eq 3 ] || { say "no Debian mirror found in /etc/apt"; return 1; }
  uri=$1 key=$3
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  : > "$A/sources.list.new"
  for suite in bullseye bookworm trixie sid
  do
    if [ "$key" != - ]
    then
      echo "deb [signed-by=$key] $uri $suite main" >> "$A/sources.list.new"
    else
      echo "deb $uri $suite main" >> "$A/sources.list.new"
    fi
  done
  mv "$A/sources.list.new" "$A/sources.list"
  APT_OPTS="-o Dir::Etc::SourceList=$A/sources.list -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists=$A/lists -o Dir::Cache=$A/cache -o Dir::State::status=/dev/null
    -o Debug::NoLocking=1 -o APT::Architecture=amd64 -o APT::Architectures=amd64"
  [ "$(id -u)" = 0 ] && APT_OPTS="$APT_OPTS -o APT::Sandbox::User=root"
  say "apt-get update: $uri bullseye bookworm trixie sid (private lists in $A)"
  # shellcheck disable=SC2086 # APT_OPTS is a list of options
  apt-get -qq $APT_OPTS update >"$A/log" 2>&1 || { cat "$A/log" >&2; return 1; }
  apt_ready=1
}

# newest "package version" of a series on the mirror
kernel_pick ()
{
  best=
  for re in $(packages_re "$1")
  do
    # shellcheck disable=SC2086
    for p in $(apt-cache $APT_OPTS pkgnames 2>/dev/null | grep -E "$re")
    do
      # shellcheck disable=SC2086
      v=$(apt-cache $APT_OPTS show "$p" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1)
      [ -n "$v" ] && best="$best$v $p
"
    done
    [ -n "$best" ] && break
  done
  [ -n "$best" ] || return 1
  printf '%s' "$best" | sort -V | tail -n 1
}

# B/kernels/SERIES/{vmlinuz,package}: cached unless KERNEL_REFRESH=1
kernel_fetch ()
{
  d=$K/$1
  if [ -s "$d/vmlinuz" ] && [ -s "$d/package" ] && [ "${KERNEL_REFRESH:-0}" != 1 ]
  then
    say "$1: cached $(cat "$d/package")"
    return 0
  fi
  apt_setup || return 1
  # shellcheck disable=SC2046 # "version package", split on purpose
  set -- "$1" $(kernel_pick "$1") || true
  [ $# -eq 3 ] || { say "$1: no cloud-amd64 kernel package on the mirror"; return 1; }
  series=$1 version=$2 pkg=$3
  if [ -s "$d/package" ] && [ "$(cat "$d/package")" = "$pkg $version" ] && [ -s "$d/vmlinuz" ]
  then
    say "$series: $pkg $version (newest on the mirror, cached)"
    return 0
  fi
  say "$series: downloading $pkg $version (newest on the mirror, $(suite_of "$series"))"
  rm -rf "$d"
  mkdir -p "$d/dl" "$d/root"
  # shellcheck disable=SC2086
  (cd "$d/dl" && apt-get -qq $APT_OPTS download "$pkg=$version") >>"$A/log" 2>&1 \
    || { tail -n 20 "$A/log" >&2; return 1; }
  dpkg-deb -x "$d"/dl/*.deb "$d/root"
  img=$(ls "$d"/root/boot/vmlinuz-* "$d"/root/usr/lib/modules/*/vmlinuz* "$d"/root/lib/modules/*/vmlinuz* 2>/dev/null | head -n 1)
  [ -n "$img" ] || { say "$series: no vmlinuz in $pkg"; return 1; }
  cp "$img" "$d/vmlinuz"
  # (sid packages it as usr/lib/modules/VER/vmlinuz.unsigned)
  # the cloud kernels have virtio, the serial console and io_uring built in:
  # no modules are needed, and the unpacked tree is not kept
  rm -rf "$d/root"
  echo "$pkg $version" > "$d/package"
}

#############################################################################
# the initramfs: one for all kernels

R=$K/initramfs
LIBS_DONE=

# copy a file and, for an ELF, what ldd names (and the loader)
copy_elf ()
{
  src=$1 dst=$R${2:-$1}
  mkdir -p "$(dirname "$dst")"
  cp -L "$src" "$dst"
  ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(/ { print $1 }' |
    while read -r lib
    do
      case " $LIBS_DONE " in *" $lib "*) continue ;; esac
      [ -e "$R$lib" ] && continue
      mkdir -p "$R$(dirname "$lib")"
      cp -L "$lib" "$R$lib"
    done
}

initramfs ()
{
  rm -rf "$R" "$K/initramfs.cpio"
  mkdir -p "$R/bin" "$R/sbin" "$R/usr/bin" "$R/usr/sbin" "$R/etc" "$R/proc" "$R/sys" \
    "$R/dev" "$R/tmp" "$R/t" "$R/opt/ev" "$R/root"
  cp -L "$(command -v busybox)" "$R/bin/busybox"
  case $(ldd "$R/bin/busybox" 2>&1) in
    *"not a dynamic"*|*"statically linked"*) ;;
    *) copy_elf "$(command -v busybox)" /bin/busybox ;;
  esac
  copy_elf "$(command -v setpriv)" /usr/bin/setpriv
  copy_elf "$(command -v prlimit)" /usr/bin/prlimit
  for n in $names
  do
    copy_elf "$B/test/test_$n" "/t/test_$n"
  done
  copy_elf "$B/kernels/probe" /t/probe
  cp "$SRCDIR/ev_iouring_abi.h" "$R/t/ev_iouring_abi.h"
  # glibc dlopens libgcc_s for pthread_cancel's unwinding (test_threads_cancel):
  # no ldd names it, so it came in only with nghttpd before
  gcc_s=$(ldconfig -p 2>/dev/null | awk '/libgcc_s\.so\.1 .*x86-64/ { print $NF; exit }')
  if [ -n "$gcc_s" ]
  then
    mkdir -p "$R$(dirname "$gcc_s")"
    cp -L "$gcc_s" "$R$gcc_s"
  fi
  if [ "$PROGRAMS" != 0 ]
  then
    copy_elf "$(command -v nghttpd)" /usr/bin/nghttpd
    copy_elf "$(command -v h2load)" /usr/bin/h2load
    cp -L "$B/libev.so.4" "$R/opt/ev/libev.so.4"
  fi
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$R/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' > "$R/etc/hosts"
  printf 'passwd: files\ngroup: files\nhosts: files\n' > "$R/etc/nsswitch.conf"
  cp "$SRCDIR/tools/kernel/init" "$R/init"
  chmod 755 "$R/init"
  echo "$names" > "$R/t/names"
  (cd "$R" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) > "$K/initramfs.cpio"
}

#############################################################################
# boot one kernel: SERIES -> B/kernels/SERIES/console.log

boot ()
{
  d=$K/$1
  log=$d/console.log
  progs=0
  series=$1
  case $PROGRAMS in
    1) progs=1 ;;
    auto) case $series in 5.10|6.1) progs=1 ;; esac ;;
  esac
  rm -f "$log"
  # root in the guest gets our limits (as make check would), nobody Debian's
  # (prlimit prints "SOFT HARD", in bytes for memlock, or "unlimited")
  # shellcheck disable=SC2046 # "SOFT HARD", split on purpose
  set -- $(prlimit -p $$ -o SOFT,HARD --noheadings --memlock) $(prlimit -p $$ -o SOFT,HARD --noheadings --nofile)
  rootlimits=$1:$3:$4
  # the guest's stdin and the monitor are off: the console goes to the log only
  timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -machine q35 -cpu max \
    -m "$MEM" -smp "$SMP" -nographic -monitor none -serial "file:$log" -no-reboot \
    -nic none -kernel "$d/vmlinuz" -initrd "$K/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 loglevel=4 ck.timeout=$TEST_TIMEOUT ck.programs=$progs ck.rootlimits=$rootlimits ck.users=$(echo "$USERS" | tr ' ' ,)" \
    </dev/null >"$d/qemu.log" 2>&1
}

#############################################################################
# report one kernel from its console log; adds to the totals

passed=0 failed=0 skipped=0

report ()
{
  series=$1 log=$K/$1/console.log
  pkg=$(cat "$K/$1/package" 2>/dev/null || echo "?")
  tr -d '\r' < "$log" > "$log.txt" 2>/dev/null || : > "$log.txt"
  release=$(sed -n 's/.*@@CK kernel //p' "$log.txt" | head -n 1)
  features=$(sed -n 's/^features: kernel [^:]*: //p' "$log.txt" | head -n 1)
  echo
  echo "== kernel $series: ${release:-did not boot} ($pkg), io_uring features ${features:-?}"
  line="   $(printf '%-20s' binary)"
  for who in $USERS
  do
    line="$line $(printf '%-6s' "$who")"
  done
  echo "$line"
  for n in $names
  do
    line="   $(printf '%-20s' "$n")"
    for who in $USERS
    do
      r=$(awk -v w="$who" -v n="$n" '$1 == "@@CK" && $2 == "result" && $3 == w && $4 == n { print $5 }' "$log.txt" | tail -n 1)
      [ -n "$r" ] || r=FAIL
      case $r in
        PASS) passed=$((passed + 1)) ;;
        SKIP) skipped=$((skipped + 1)) ;;
        *)    r=FAIL; failed=$((failed + 1)) ;;
      esac
      line="$line $(printf '%-6s' "$r")"
    done
    echo "$line"
  done
  if grep -q '^@@CK program ' "$log.txt"
  then
    r=$(sed -n 's/^@@CK program nghttpd+h2load \([A-Z]*\).*/\1/p' "$log.txt" | tail -n 1)
    case $r in
      PASS) passed=$((passed + 1)) ;;
      *)    r=FAIL; failed=$((failed + 1)) ;;
    esac
    printf '   %-20s %s\n' "nghttpd+h2load" "$r  ($(sed -n 's/^@@CK program nghttpd+h2load [A-Z]* *//p' "$log.txt" | tail -n 1))"
  fi
  sed -n 's/^\(memlock\|pollout\): /   \1: /p' "$log.txt"
  sed -n 's/^@@CK uptime \([0-9.]*\) s: done/   guest uptime at the end: \1 s/p' "$log.txt"
  if ! grep -q '^@@CK done' "$log.txt"
  then
    echo "   FAIL: the guest did not finish (timeout ${BOOT_TIMEOUT}s or crash); last lines:"
    tail -n 30 "$log.txt" | sed 's/^/     | /'
    failed=$((failed + 1))
  fi
  # the failing binaries' output
  awk '
    $1 == "@@CK" && $2 == "begin" { who = $3; name = $4; buf = ""; inside = 1; next }
    $1 == "@@CK" && $2 == "result" { if ($5 != "PASS" && $5 != "SKIP") { printf "   --- %s as %s: %s (exit %s)\n%s", name, who, $5, $6, buf } inside = 0; next }
    inside { buf = buf "     | " $0 "\n" }
  ' "$log.txt"
}

#############################################################################

for ser in "$@"
do
  suite_of "$ser" >/dev/null || die "unknown kernel series $ser (5.10, 6.1, 6.12 or 7)"
done

initramfs
say "initramfs: $(du -h "$K/initramfs.cpio" | cut -f 1), binaries: $names"

for ser in "$@"
do
  if ! kernel_fetch "$ser"
  then
    echo
    echo "== kernel $ser: FAIL: could not fetch the kernel package"
    failed=$((failed + 1))
    continue
  fi
  say "$ser: booting $(cat "$K/$ser/package") (qemu TCG, -m $MEM -smp $SMP)"
  start=$(date +%s)
  rc=0
  boot "$ser" || rc=$?
  say "$ser: qemu exit $rc after $(( $(date +%s) - start ))s; console in $K/$ser/console.log"
  if [ ! -s "$K/$ser/console.log" ] && [ "$rc" != 124 ]
  then
    cat "$K/$ser/qemu.log" >&2
    skip "qemu-system-x86_64 cannot run here (exit $rc)"
  fi
  report "$ser"
done

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
