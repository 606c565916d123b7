#!/bin/sh
# qmail-pkg source: the tree after the changes every architecture makes,
# kept; the patches of some architectures only are each made on top of it.
set -eu
cd /build
cp -a pkg common
