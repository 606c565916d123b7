#!/bin/sh
# A Debian farm's build of the source package named by its .dsc ($1), in the
# folder that holds it: unpack, then a full build (source, then binary) as
# dpkg-buildpackage runs it, unsigned. Who builds, and that there is no
# network, go into the log first.
set -eu
id
echo "network: $(ls /sys/class/net)"
dpkg-source -x "$1" tree
cd tree
dpkg-buildpackage -us -uc
