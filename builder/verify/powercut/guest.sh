#!/bin/sh
# qmail-pkg verify --power-cut: what runs inside the virtual machine.
#
# The machine's init (/sbin/qmail-pkg-init, baked into the image) extracts
# the job disk and runs this script with its settings in ./settings. Every
# line meant for the host starts with "QP "; the host reads nothing else.
# Modes:
#   install  the root is writable: install the package with the system's
#            package manager, add the mail user, power off cleanly
#   crash    make the file system under test on the data disk, put qmail's
#            queue and the user's Maildir on it, start qmail-send, inject
#            mail from several injectors; print "QP ACK <id>" only after
#            qmail-queue exited 0. The host cuts the power at a random moment.
#   recover  repair the data disk as the system would at boot, report what
#            survived (queue files and Maildir), run qmail-send until the
#            queue is empty, report the Maildir again, power off
# shellcheck disable=SC1091 # written by the host next to this script
. ./settings
set -u

say() { printf 'QP %s\n' "$*"; }

power_off() {
    sync
    echo o >/proc/sysrq-trigger
    sleep 60
}

fail() {
    say "FAIL $*"
    power_off
}

data_disk=/dev/vdc
data=/qp
queue=$QP_PREFIX/queue
home=$data/$QP_USER
maildir=$home/Maildir

# The data disk holds the file system under test.
make_fs() {
    case $QP_FS in
    ext4) mkfs.ext4 -q -F "$data_disk" ;;
    # Without a journal, fsync writes a file's inode and its directory
    # but not the group descriptors: with uninitialised inode groups
    # (uninit_bg, metadata_csum) e2fsck may then judge a fsynced inode
    # unused and drop it, whatever the program did. Every group
    # initialised, the test measures what syncdir can promise.
    ext4-nojournal) mkfs.ext4 -q -F -O ^has_journal,^metadata_csum,^uninit_bg -E lazy_itable_init=0 "$data_disk" ;;
    xfs) mkfs.xfs -q -f "$data_disk" ;;
    *) fail "unknown file system $QP_FS" ;;
    esac
}

mount_options() {
    # ext4's default commit interval is 5 s; laptops and tuned servers use
    # longer ones (laptop-mode, commit=30 as measured for this experiment)
    case $QP_FS in
    ext4) echo "commit=30" ;;
    *) echo "defaults" ;;
    esac
}

mount_data() {
    mkdir -p "$data"
    mount -o "$(mount_options)" "$data_disk" "$data" || fail "cannot mount the data disk"
    mount --bind "$data/queue" "$queue" || fail "cannot put the queue on the data disk"
}

# What the system does at boot after a power cut: replay the journal, check.
repair() {
    say "REPAIR-BEGIN"
    case $QP_FS in
    ext4 | ext4-nojournal)
        e2fsck -fy "$data_disk" 2>&1 | sed 's/^/QP REPAIR /'
        ;;
    xfs)
        # the log is replayed by mounting; xfs_repair then checks the rest
        mkdir -p "$data" && mount "$data_disk" "$data" && umount "$data"
        xfs_repair "$data_disk" 2>&1 | sed 's/^/QP REPAIR /'
        ;;
    esac
    say "REPAIR-END"
}

start_send() {
    # the package's own start command: rc execs qmail-start with the
    # default delivery; its log goes to a file in memory
    "$QP_PREFIX/rc" >/run/qmail-send.log 2>&1 &
    send_pid=$!
}

stop_send() {
    kill "$send_pid" 2>/dev/null
    n=0
    while kill -0 "$send_pid" 2>/dev/null && [ "$n" -lt 100 ]; do
        sleep 0.1
        n=$((n + 1))
    done
}

# One line per fact the host classifies by: message files with their id,
# the queue entries that make qmail-send deliver them, Maildir messages.
report() {
    tag=$1
    for f in "$queue"/mess/*/*; do
        [ -f "$f" ] || continue
        id=$(sed -n 's/^X-Powercut-Id: \([A-Za-z0-9.]*\)$/\1/p' "$f" | head -n 1)
        say "$tag MESS ${f##*/} ${id:--}"
    done
    for dir in todo intd info local remote; do
        find "$queue/$dir" -type f 2>/dev/null | while IFS= read -r f; do
            say "$tag FILE $dir ${f##*/}"
        done
    done
    for f in "$maildir"/new/* "$maildir"/cur/*; do
        [ -f "$f" ] || continue
        id=$(sed -n 's/^X-Powercut-Id: \([A-Za-z0-9.]*\)$/\1/p' "$f" | head -n 1)
        say "$tag MAILDIR ${id:--}"
    done
    if [ -d "$data/lost+found" ]; then
        find "$data/lost+found" -type f 2>/dev/null | while IFS= read -r f; do
            id=$(sed -n 's/^X-Powercut-Id: \([A-Za-z0-9.]*\)$/\1/p' "$f" | head -n 1)
            say "$tag LOSTFOUND ${id:--}"
        done
    fi
}

injector() {
    worker=$1
    envelope=/tmp/envelope.$worker
    message=/tmp/message.$worker
    printf 'F%s\000T%s\000\000' "qp@$QP_HOST" "$QP_USER@$QP_HOST" >"$envelope"
    i=0
    while :; do
        i=$((i + 1))
        id=$worker.$i
        printf 'From: qp@%s\nTo: %s@%s\nSubject: power cut %s\nX-Powercut-Id: %s\n\nmessage %s\n' \
            "$QP_HOST" "$QP_USER" "$QP_HOST" "$id" "$id" "$id" >"$message"
        # qmail-queue reads the message on fd 0 and the envelope on fd 1
        if "$QP_PREFIX/bin/qmail-queue" <"$message" 1<"$envelope"; then
            say "ACK $id"
        else
            say "NACK $id"
        fi
        sleep "$QP_PACE"
    done
}

case $QP_MODE in
install)
    hostname "$QP_HOST"
    say "INSTALL-BEGIN"
    {
        sh -c "$QP_INSTALL"
        echo $? >/tmp/install-code
    } 2>&1 | sed 's/^/QP OUT /'
    [ "$(cat /tmp/install-code)" = 0 ] || fail "installing the package failed"
    useradd -M -d "$home" -s /bin/sh "$QP_USER" || fail "useradd failed"
    mkdir -p "$data" # the root is read-only in the other modes
    [ -x "$QP_PREFIX/bin/qmail-queue" ] || fail "no $QP_PREFIX/bin/qmail-queue after the install"
    say "VERSION $(sh -c "$QP_VERSION_COMMAND")"
    say "INSTALLED"
    sync
    mount -o remount,ro / 2>/dev/null
    power_off
    ;;
crash)
    make_fs
    mkdir -p "$data"
    mount -o "$(mount_options)" "$data_disk" "$data" || fail "cannot mount the data disk"
    # the package's queue skeleton (owners, modes, the trigger FIFO) and the
    # user's Maildir, made durable before the experiment starts
    cp -a "$queue" "$data/queue" || fail "cannot copy the queue skeleton"
    mkdir -p "$maildir/new" "$maildir/cur" "$maildir/tmp"
    chown -R "$QP_USER:" "$home"
    sync
    mount --bind "$data/queue" "$queue" || fail "cannot put the queue on the data disk"
    start_send
    say "READY"
    w=1
    while [ "$w" -le "$QP_INJECTORS" ]; do
        injector "$w" &
        w=$((w + 1))
    done
    # the host cuts the power long before this
    sleep "$QP_CRASH_TIMEOUT"
    fail "no power cut within $QP_CRASH_TIMEOUT s"
    ;;
recover)
    repair
    mount_data
    report BEFORE
    start_send
    # until the queue is empty, or has not changed for a while: what a
    # power cut left undeliverable (a todo/ entry whose message is gone)
    # stays in the queue for good
    n=0
    still=0
    last=
    while [ "$n" -lt "$QP_DELIVER_TIMEOUT" ] && [ "$still" -lt 15 ]; do
        left=$(find "$queue/todo" "$queue/local" "$queue/remote" -type f 2>/dev/null | sort)
        [ -z "$left" ] && break
        if [ "$left" = "$last" ]; then
            still=$((still + 1))
        else
            still=0
        fi
        last=$left
        sleep 1
        n=$((n + 1))
    done
    stop_send
    sync
    report AFTER
    say "DONE"
    umount "$queue" "$data" 2>/dev/null
    power_off
    ;;
*)
    fail "unknown mode $QP_MODE"
    ;;
esac
