#!/bin/sh
# apt-mirror.sh: print "uri suite signed-by" for the Debian archive this
# system's apt uses, as apt itself reports it (apt-get indextargets reads
# one-line and deb822 sources alike): the main archive, not security,
# updates or backports.  signed-by is Debian's archive keyring when it is
# installed, else "-" (apt's trusted.gpg.d then vouches for the archive).
#
#   sh tools/apt-mirror.sh
#
# exit 0 and one line, or exit 1 and nothing when no Debian mirror is
# configured.

set -eu

command -v apt-get >/dev/null 2>&1 || exit 1

key=-
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] && key=/usr/share/keyrings/debian-archive-keyring.gpg

# shellcheck disable=SC2016 # $(SITE) is apt's format, not the shell's
apt-get indextargets --no-release-info --format '$(SITE) $(RELEASE)' 'Identifier: Packages' 2>/dev/null \
  | awk -v key="$key" '
      $2 ~ /[-\/](security|updates|backports|proposed-updates)$/ || $1 ~ /security/ { next }
      $1 ~ /\/debian\/?$/ { print $1, $2, key; found = 1; exit }
      !other { other = $1 " " $2 " " key }
      END { if (!found && other) { print other; found = 1 } exit !found }'
