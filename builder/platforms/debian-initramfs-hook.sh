#!/bin/sh
# initramfs-tools hook of qmail-pkg's power-cut machines (MODULES=list):
# the modules that find and mount the root disk, and nothing else.
[ "${1:-}" = prereqs ] && exit 0
# shellcheck disable=SC1091 # initramfs-tools' own functions, in the machine
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk ext4
