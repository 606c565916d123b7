#!/bin/sh
# Set up a Debian-like host for qmail-pkg, as root: the host packages the
# builds, checks and tests use (from the host's configured apt mirror, only
# those missing), qemu-user registered for other architectures, and a Docker
# engine when none answers. Run by `qmail-pkg setup-host` and `./run.sh setup`.
# An engine that is there already (Docker's own packages, as on GitHub's
# runners) and its packages are left alone: docker.io would conflict with them.
set -eu
EMULATED="aarch64" # qemu's names of the architectures recipes build for besides the host's
HOST_PACKAGES="mmdebstrap shellcheck lintian piuparts adequate binutils daemontools rpm rpmlint createrepo-c apt-utils dnf dnf-plugins-core zstd gnupg openssl diffoscope-minimal qemu-system-x86 qemu-utils qemu-user-static binfmt-support"
# the host's places (tests/test_setup_host.py points them into a folder of its own)
DOCKER_SOCKET=${QMAIL_PKG_DOCKER_SOCKET:-/var/run/docker.sock}
DOCKERD_LOG=${QMAIL_PKG_DOCKERD_LOG:-/var/log/qmail-pkg-dockerd.log}
BINFMT=${QMAIL_PKG_BINFMT:-/proc/sys/fs/binfmt_misc}

say() { printf '==> %s\n' "$*" >&2; }

# A client, an engine's socket or a DOCKER_HOST someone set: Docker is this
# host's already, whoever installed it.
docker_present() {
    command -v docker >/dev/null 2>&1 || [ -S "$DOCKER_SOCKET" ] || [ -n "${DOCKER_HOST:-}" ]
}

engine_answers() {
    if command -v docker >/dev/null 2>&1; then
        docker info >/dev/null 2>&1
    else
        [ -S "$DOCKER_SOCKET" ] || [ -n "${DOCKER_HOST:-}" ]
    fi
}

install_host_packages() {
    wanted=$HOST_PACKAGES
    docker_present || wanted="docker.io $wanted"
    missing=""
    for pkg in $wanted; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
    done
    [ -z "$missing" ] && return 0
    say "installing host packages:$missing"
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
}

start_docker() {
    engine_answers && return 0
    say "starting dockerd (no bridge, no iptables: containers run without network)"
    nohup dockerd --bridge=none --iptables=false >"$DOCKERD_LOG" 2>&1 &
    tries=0
    until engine_answers; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            say "dockerd did not answer within 60 s; see $DOCKERD_LOG"
            exit 1
        fi
        sleep 1
    done
}

# Other architectures (arm64) build and verify under qemu-user through
# binfmt_misc. Debian registers the handlers without the C flag, so setuid
# programs (qmail-queue) would run unprivileged under emulation: register
# them again with it. The kernel may offer no binfmt_misc: then say so and
# go on (amd64 builds do not need it).
enable_emulation() {
    binfmt=$BINFMT
    if [ ! -e "$binfmt/status" ] && ! mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null; then
        say "no binfmt_misc in this kernel: builds for other architectures are not possible here"
        return 0
    fi
    for arch in $EMULATED; do
        update-binfmts --enable "qemu-$arch" >/dev/null 2>&1 || true
        spec=/usr/share/binfmts/qemu-$arch
        if [ -f "$spec" ] && ! grep -q '^flags: .*C' "$binfmt/qemu-$arch" 2>/dev/null; then
            magic=$(sed -n 's/^magic //p' "$spec")
            mask=$(sed -n 's/^mask //p' "$spec")
            interpreter=$(sed -n 's/^interpreter //p' "$spec")
            [ -e "$binfmt/qemu-$arch" ] && echo -1 >"$binfmt/qemu-$arch"
            printf ':qemu-%s:M::%s:%s:%s:OCPF\n' "$arch" "$magic" "$mask" "$interpreter" >"$binfmt/register"
            say "qemu-$arch registered with credentials (setuid programs keep their privileges under emulation)"
        fi
    done
}

install_host_packages
enable_emulation
start_docker
