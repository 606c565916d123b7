#!/bin/sh
# Runs a build's steps in order, in one process (one exec into the sandbox
# instead of one per step). $1 holds one file per step, named by its
# number, with the step's argv NUL-separated: xargs hands it to the
# command as it is, so nothing of a step is ever parsed by this shell.
# Markers on stdout tell the builder where each step starts and how it ended.
steps=$1
umask "${QMAIL_PKG_UMASK:-022}"
for step in "$steps"/[0-9]*; do
    number=${step##*/}
    printf '@@qmail-pkg step %s\n' "$number"
    rm -f "$steps/.rc"
    xargs -0 sh -c '"$@"; echo $? >"$0"' "$steps/.rc" <"$step"
    rc=$(cat "$steps/.rc" 2>/dev/null || echo 127)
    if [ "$rc" != 0 ]; then
        printf '@@qmail-pkg failed %s %s\n' "$number" "$rc"
        exit "$rc"
    fi
done
printf '@@qmail-pkg done\n'
