#!/bin/sh
# qmail-pkg source: back to the tree every architecture's changes make.
set -eu
cd /build
rm -rf pkg before
cp -a common pkg
cp -a common before
