#!/bin/sh
# One entry point for people and CI.
#   ./run.sh build   set up this host, prove the chain offline (selftest), build every target
#   ./run.sh test    set up this host, run the whole test suite
#   ./run.sh setup   only set up: host packages, a Docker engine, qemu-user (builder/setup-host.sh),
#                    what the tests use, the Python environment
# Needs: Debian (or a derivative) as root, Python >= 3.11, gcc. Reaches only the
# host's configured apt mirror and pip index.
set -eu
cd "$(dirname "$0")"
VENV=${QMAIL_PKG_VENV:-.venv}
# What only the tests use on the host (the tool's own needs are in
# builder/setup-host.sh): for the front page's tests a browser, the Nu
# validator's Java (vnu-jar itself comes from npm), tidy, ip for the browser's
# network namespace; rsync for gitlab-ci-local's shell isolation (gitlab-ci-local
# itself the tests install with npm); dpkg-source, reprepro and bmake read
# the source packages and the .changes as a farm and a port would.
TEST_PACKAGES="chromium default-jre-headless tidy iproute2 rsync dpkg-dev reprepro bmake"

say() { printf '==> %s\n' "$*" >&2; }

install_test_packages() {
    missing=""
    for pkg in $TEST_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
    done
    [ -z "$missing" ] && return 0
    say "installing host packages for the tests:$missing"
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
}

# npm installs the Nu validator (vnu-jar) and gitlab-ci-local for the tests. A
# Node.js that brings its own npm is used as it is; without npm, Debian's.
install_npm() {
    command -v npm >/dev/null 2>&1 && return 0
    say "installing npm"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >/dev/null
}

python_env() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q -e '.[test]'
}

setup() {
    sh builder/setup-host.sh # the same script as `qmail-pkg setup-host`
    install_test_packages
    install_npm
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
