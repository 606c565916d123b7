#!/bin/sh
# qmail-pkg source, in the build sandbox before the first change: the
# pristine tree, kept as the state the first change is diffed against.
set -eu
cd /build
mkdir diffs
cp -a pkg before
