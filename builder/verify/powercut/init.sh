#!/bin/sh
# qmail-pkg power-cut machine: the init of the image. It mounts what a
# system needs, unpacks the job disk (the second disk, a tar archive the
# host writes for each boot) and runs its guest.sh; nothing else starts.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
mountpoint -q /tmp || mount -t tmpfs tmpfs /tmp
mkdir -p /tmp/job
if cd /tmp/job && tar -xf /dev/vdb; then
    exec sh ./guest.sh
fi
printf 'QP FAIL %s\n' "cannot read the job disk"
echo o >/proc/sysrq-trigger
sleep 60
