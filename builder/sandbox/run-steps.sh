#!/bin/sh
# Runs a build's steps in order, in one process (one exec into the sandbox
# instead of one per step). $1 holds one file per step, named by its
# number, with the step's argv NUL-separated: xargs hands it to the
# command as it is, so nothing of a step is ever parsed by this shell.
# Markers on stdout tell the builder where each step starts and how it ended.
steps=$1
umask "${QMAIL_PKG_UMASK:-022}"

# The library probe (if any) reads the installed binaries while the last
# steps strip them (strip writes a new file and renames it over the old) and
# while the builder copies the tree out: started in the background with
# every descriptor closed, so the exec ends without waiting for it; its
# output and exit code land in files the builder reads afterwards.
start_probe() {
    if [ -f "$steps/probe" ] && [ ! -e "$steps/probe-result.started" ]; then
        : >"$steps/probe-result.started"
        (xargs -0 sh -c '"$@" >"$0.out" 2>&1; echo $? >"$0.rc.new"; mv "$0.rc.new" "$0.rc"' \
            "$steps/probe-result" <"$steps/probe" &) </dev/null >/dev/null 2>&1
    fi
}

probe_after=$(cat "$steps/probe-after" 2>/dev/null || echo 0)
for step in "$steps"/[0-9]*; do
    number=${step##*/}
    value=${number#"${number%%[!0]*}"} # 07 -> 7: no leading zero for $(( ))
    if [ "${value:-0}" -gt "$probe_after" ]; then
        start_probe
    fi
    printf '@@qmail-pkg step %s\n' "$number"
    rm -f "$steps/.rc"
    xargs -0 sh -c '"$@"; echo $? >"$0"' "$steps/.rc" <"$step"
    rc=$(cat "$steps/.rc" 2>/dev/null || echo 127)
    if [ "$rc" != 0 ]; then
        printf '@@qmail-pkg failed %s %s\n' "$number" "$rc"
        exit "$rc"
    fi
done
start_probe
printf '@@qmail-pkg done\n'
