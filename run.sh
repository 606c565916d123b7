#!/bin/sh
# One entry point for people and CI.
#   ./run.sh build   set up this host, prove the chain offline (selftest), build every target
#   ./run.sh test    set up this host, run the whole test suite
#   ./run.sh setup   only set up: host packages, a Docker engine, the Python environment
# Needs: Debian (or a derivative) as root, Python >= 3.11, gcc. Reaches only the
# host's configured apt mirror and pip index.
set -eu
cd "$(dirname "$0")"
VENV=${QMAIL_PKG_VENV:-.venv}
EMULATED="aarch64" # qemu's names of the architectures recipes build for besides the host's
HOST_PACKAGES="docker.io mmdebstrap shellcheck lintian piuparts adequate binutils daemontools rpm rpmlint createrepo-c apt-utils dpkg-dev reprepro bmake dnf dnf-plugins-core zstd gnupg openssl diffoscope-minimal qemu-system-x86 qemu-utils qemu-user-static binfmt-support"

say() { printf '==> %s\n' "$*" >&2; }

install_host_packages() {
    missing=""
    for pkg in $HOST_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
    done
    [ -z "$missing" ] && return 0
    say "installing host packages:$missing"
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
}

start_docker() {
    docker info >/dev/null 2>&1 && return 0
    say "starting dockerd (no bridge, no iptables: containers run without network)"
    nohup dockerd --bridge=none --iptables=false >/var/log/qmail-pkg-dockerd.log 2>&1 &
    tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 60 ]; then
            say "dockerd did not answer within 60 s; see /var/log/qmail-pkg-dockerd.log"
            exit 1
        fi
        sleep 1
    done
}

python_env() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q -e '.[test]'
}

# Other architectures (arm64) build and verify under qemu-user through
# binfmt_misc. Debian registers the handlers without the C flag, so setuid
# programs (qmail-queue) would run unprivileged under emulation: register
# them again with it. The kernel may offer no binfmt_misc: then say so and
# go on (amd64 builds do not need it).
enable_emulation() {
    binfmt=/proc/sys/fs/binfmt_misc
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

setup() {
    install_host_packages
    enable_emulation
    start_docker
    python_env
}

case "${1:-}" in
setup)
    setup
    ;;
build)
    setup
    say "selftest: miniature qmail + syncdir through the whole chain"
    "$VENV/bin/qmail-pkg" selftest
    say "building recipes/qmail-syncdir.yaml for every target (sources from the cache: see README)"
    "$VENV/bin/qmail-pkg" build recipes/qmail-syncdir.yaml --all --arch all --skip-unavailable
    ;;
test)
    setup
    shift
    "$VENV/bin/python" -m pytest -ra "$@"
    ;;
*)
    echo "usage: $0 build | test [pytest args] | setup" >&2
    exit 2
    ;;
esac
