#!/bin/sh
# apt-mirror.sh: print "uri suite signed-by" for the Debian archive this
# system's apt uses (one-line sources.list files and deb822 .sources files
# alike; signed-by is "-" when none is given).  The main archive is
# preferred: not security, updates or backports.
#
#   sh tools/apt-mirror.sh
#
# exit 0 and one line, or exit 1 and nothing when no Debian mirror is
# configured.

set -eu

{
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list
  do
    [ -r "$f" ] || continue
    sed -e 's/#.*//' "$f" | awk '
      $1 == "deb" || $1 == "deb-src" {
        opts = ""; i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
        key = "-"
        if (match (opts, /signed-by=[^] ]*/)) key = substr (opts, RSTART + 10, RLENGTH - 10)
        print $(i), $(i + 1), key
      }'
  done
  for f in /etc/apt/sources.list.d/*.sources
  do
    [ -r "$f" ] || continue
    awk '
      function flush (  n, m, u, s, uris, suites)
      {
        if (types ~ /(^| )deb(-src)?( |$)/ && enabled != "no")
          {
            n = split (uri, uris, " "); m = split (suite, suites, " ")
            for (u = 1; u <= n; u++) for (s = 1; s <= m; s++) print uris [u], suites [s], (key ~ /^\// ? key : "-")
          }
        types = uri = suite = key = enabled = ""
      }
      /^#/ { next }
      /^[ \t]*$/ { flush (); next }
      /^[ \t]/ { next }
      {
        field = tolower ($1); sub (/:$/, "", field); $1 = ""; sub (/^ +/, "")
        if (field == "types") types = $0
        else if (field == "uris") uri = $0
        else if (field == "suites") suite = $0
        else if (field == "signed-by") key = $0
        else if (field == "enabled") enabled = tolower ($0)
      }
      END { flush () }' "$f"
  done
} | awk '
  $2 ~ /[-\/](security|updates|backports|proposed-updates)$/ { next }
  $1 ~ /security/ { next }
  $1 ~ /\/debian\/?$/ { print; found = 1; exit }
  !other { other = $0 }
  END { if (!found && other) print other; if (!found && !other) exit 1 }'
