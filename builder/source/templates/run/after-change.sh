#!/bin/sh
# qmail-pkg source, in the build sandbox after one change to the sources:
# the diff against the tree before it, and what a diff does not say (which
# files were added or removed, which are executable). The next change then
# starts from here. $1: the change's number.
set -u
n=$1
cd /build
files() { (cd "$1" && find . \( -type f -o -type l \) -print | LC_ALL=C sort); }
programs() { (cd "$1" && find . -type f -perm -u+x -print | LC_ALL=C sort); }
files before >"diffs/$n.before" && files pkg >"diffs/$n.after" || exit 2
programs before >"diffs/$n.xbefore" && programs pkg >"diffs/$n.xafter" || exit 2
LC_ALL=C TZ=UTC diff -Naur --no-dereference before pkg >"diffs/$n.diff"
rc=$?
[ "$rc" -le 1 ] || exit "$rc"
rm -rf before && cp -a pkg before
