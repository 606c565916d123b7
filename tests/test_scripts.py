"""Maintainer scripts and daemontools service files: rendering, shellcheck,
quoting of hostile recipe values, and real runs as root in throwaway
containers (accounts, state, configuration, purge, the svc logic)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from builder.recipe.loader import load_recipe
from builder.recipe.model import Accounts, Group, User
from builder.scripts import (
    ScriptModel,
    ServiceSpec,
    StateEntry,
    render_library,
    render_maintainer_scripts,
    render_service_files,
    script_model,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "qmail-syncdir.yaml"
# The project's own debian-12 build image: a clean system without daemontools.
IMAGE = "qmail-pkg/debian-12:latest"
SHELLCHECK = shutil.which("shellcheck") or "/usr/bin/shellcheck"
SCRIPTS = ("preinst", "postinst", "prerm", "postrm")
DEB_SCRIPTS = (*SCRIPTS, "config", "templates")


def queue_state(prefix: str, split: int = 23, qmailq: str = "qmailq", qmails: str = "qmails",
                qmailr: str = "qmailr", group: str = "qmail") -> tuple[StateEntry, ...]:
    """The queue skeleton qmail's `make setup` creates (owners, modes), parents
    first: what the build harvests, written out for tests that do not build."""
    queue = f"{prefix.rstrip('/')}/queue"
    entries = [
        StateEntry(queue, "dir", qmailq, group, 0o750),
        StateEntry(f"{queue}/pid", "dir", qmailq, group, 0o700),
        StateEntry(f"{queue}/intd", "dir", qmailq, group, 0o700),
        StateEntry(f"{queue}/todo", "dir", qmailq, group, 0o750),
        StateEntry(f"{queue}/bounce", "dir", qmails, group, 0o700),
    ]
    for sub, owner, mode in (("mess", qmailq, 0o750), ("info", qmails, 0o700),
                             ("local", qmails, 0o700), ("remote", qmails, 0o700)):
        entries.append(StateEntry(f"{queue}/{sub}", "dir", owner, group, mode))
        entries.extend(StateEntry(f"{queue}/{sub}/{i}", "dir", owner, group, mode) for i in range(split))
    entries += [
        StateEntry(f"{queue}/lock", "dir", qmailq, group, 0o750),
        StateEntry(f"{queue}/lock/tcpto", "file", qmailr, group, 0o644),
        StateEntry(f"{queue}/lock/sendmutex", "file", qmails, group, 0o600),
        StateEntry(f"{queue}/lock/trigger", "fifo", qmails, group, 0o622),
    ]
    return tuple(entries)


@pytest.fixture(scope="module")
def model() -> ScriptModel:
    recipe = load_recipe(RECIPE)
    return script_model(recipe, recipe.target("debian-12"), version="1.03-1",
                        state=queue_state(recipe.layout.prefix), smtpd=True, sendmail=True)


def shellcheck(path: Path, *options: str) -> str:
    result = subprocess.run([SHELLCHECK, "-s", "sh", *options, str(path)], capture_output=True, text=True)
    return result.stdout + result.stderr if result.returncode else ""


# ---------------------------------------------------------------- rendering


def format_models(model):
    """(packager, model) for every registered format: the model of a target of its family."""
    from builder.package import PACKAGERS

    recipe = load_recipe(RECIPE)
    for packager in PACKAGERS.values():
        target = next(t for t in recipe.targets if t.family == packager.family)
        yield packager, script_model(recipe, target, version="1.03-1", state=queue_state(recipe.layout.prefix),
                                     smtpd=True, sendmail=True)


def test_renders_the_scripts_of_every_format(model):
    for packager, m in format_models(model):
        scripts = render_maintainer_scripts(m, packager.script_set, packager.script_names)
        assert set(scripts) == set(packager.script_names)
        for name, text in scripts.items():
            if name == "templates":  # debconf's, not shell
                assert text.startswith("Template: qmail-syncdir/renumber-accounts\nType: boolean\nDefault: false\n")
                continue
            assert text.startswith("#!/bin/sh\n"), (packager.format, name)
            assert "\nset -e\n" in text


def test_unknown_script_set_is_a_value_error(model):
    with pytest.raises(ValueError):
        render_maintainer_scripts(model, "rpm-but-not-yet", SCRIPTS)


def test_service_files(model):
    files = {f.path: f for f in render_service_files(model)}
    assert set(files) == {
        "/var/qmail/rc",
        "/var/qmail/supervise/qmail-send/run",
        "/var/qmail/supervise/qmail-send/log/run",
        "/var/qmail/supervise/qmail-smtpd/run",
        "/var/qmail/supervise/qmail-smtpd/log/run",
        "/var/qmail/control/defaultdelivery",
        "/lib/systemd/system/qmail-send.service",
        "/lib/systemd/system/qmail-smtpd.service",
    }
    assert files["/var/qmail/control/defaultdelivery"].content == "./Maildir/\n"
    assert files["/var/qmail/control/defaultdelivery"].mode == 0o644
    for path, f in files.items():
        if path.endswith("run") or path.endswith("/rc"):
            assert f.mode == 0o755
            assert f.content.startswith("#!/bin/sh\n")
    assert "multilog t '/var/log/qmail/qmail-send'" in files["/var/qmail/supervise/qmail-send/log/run"].content
    assert "setuidgid 'qmaill'" in files["/var/qmail/supervise/qmail-smtpd/log/run"].content
    assert "exec '/var/qmail/rc'" in files["/var/qmail/supervise/qmail-send/run"].content
    # names only, never the compiled-in numeric ids
    for f in files.values():
        for user in model.accounts.users:
            assert str(user.uid) not in f.content


@pytest.mark.parametrize("host, me, domain, accepted", [
    ("mail.example.org", "mail.example.org", "example.org", ["mail.example.org"]),
    # qmail-inject makes "root" root@mailhost, then adds .defaultdomain to a
    # host without a dot: both forms must be local, or the mail waits forever
    ("mailhost", "mailhost", "localdomain", ["mailhost", "mailhost.localdomain"]),
])
def test_control_files_for_the_host_name(model, tmp_path, host, me, domain, accepted):
    library = tmp_path / "lib.sh"
    library.write_text(render_library(model, "deb"))
    control = tmp_path / "control"
    probe = (f". {shlex.quote(str(library))}; hostname() {{ [ \"$1\" = -f ] && return 1; echo {host}; }}; "
             f"QS_CONTROL={shlex.quote(str(control))}; QS_CREATED=/dev/null; QS_CREATED_SUMS=/dev/null; "
             "qs_make_control_files >/dev/null && qs_say_accepted_names")
    result = subprocess.run(["sh", "-c", probe], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert (control / "me").read_text() == f"{me}\n"
    assert (control / "defaultdomain").read_text() == (control / "plusdomain").read_text() == f"{domain}\n"
    assert (control / "locals").read_text().split() == accepted == (control / "rcpthosts").read_text().split()
    # the install output says which names the host takes
    assert " ".join(accepted) in result.stdout and "bare names (root, postmaster)" in result.stdout


def test_systemd_units_run_what_daemontools_runs(model):
    files = {f.path: f.content for f in render_service_files(model)}
    send, smtpd = files["/lib/systemd/system/qmail-send.service"], files["/lib/systemd/system/qmail-smtpd.service"]
    assert 'ExecStart="/var/qmail/rc"' in send
    assert ('ExecStart="/var/qmail/supervise/qmail-smtpd/run"' in smtpd
            and "Environment=QMAIL_SUPERVISOR=systemd" in smtpd)
    assert "LimitDATA=8000000:infinity" in smtpd  # softlimit -m under daemontools
    for unit in (send, smtpd):
        # never beside daemontools' qmail-send: only while the scripts chose systemd
        assert "ConditionPathExists=/var/lib/qmail-syncdir/supervisor-is-systemd" in unit
        assert "WantedBy=multi-user.target" in unit and "KillMode=mixed" in unit


def test_unit_values_are_escaped_for_systemd(model):
    """systemd unquotes Exec lines C-style and expands %specifiers and
    $VARIABLES: a prefix with all of them reaches the program as written."""
    odd = replace(model, prefix='/opt/q m$HOME%n"\\x')
    send = next(f.content for f in render_service_files(odd) if f.path.endswith("qmail-send.service"))
    assert 'ExecStart="/opt/q m$$HOME%%n\\"\\\\x/rc"' in send
    with pytest.raises(ValueError):
        render_service_files(replace(model, prefix="/opt/q\tm"))


def test_no_units_where_the_platform_has_no_systemd(model):
    paths = [f.path for f in render_service_files(replace(model, systemd_unit_dir=""))]
    assert not any(p.endswith(".service") for p in paths)


def test_no_smtpd_service_without_smtpd(model):
    only_send = replace(model, services=model.services[:1])
    paths = [f.path for f in render_service_files(only_send)]
    assert not any("qmail-smtpd" in p for p in paths)


def test_model_rejects_unknown_owner(model):
    with pytest.raises(ValueError):
        replace(model, state=(StateEntry("/var/qmail/queue", "dir", "nobody-here", "qmail", 0o750),))
    with pytest.raises(ValueError):
        StateEntry("/var/qmail/queue", "socket", "qmailq", "qmail", 0o750)


def test_shellcheck_clean(model, tmp_path):
    findings = {}
    for packager, m in format_models(model):
        for name, text in render_maintainer_scripts(m, packager.script_set, packager.script_names).items():
            if name == "templates":
                continue
            path = tmp_path / f"{packager.format}-{name}"
            path.write_text(text)
            findings[f"{packager.format} {name}"] = shellcheck(path)
    for f in render_service_files(model):
        if f.path.endswith(("defaultdelivery", ".service")):
            continue  # not shell
        path = tmp_path / f.path.strip("/").replace("/", "_")
        path.write_text(f.content)
        findings[f.path] = shellcheck(path)
    library = tmp_path / "library.sh"
    library.write_text("#!/bin/sh\n" + render_library(model, "deb"))
    findings["library"] = shellcheck(library)
    assert {k: v for k, v in findings.items() if v} == {}


# ------------------------------------------------------------ hostile values

HOSTILE = "x' \"y\" $(touch PWNED-dollar) `touch PWNED-tick` ; touch PWNED-semi \\ $HOME *"
HOSTILE_NOQUOTE = 'a b "c" $(touch PWNED2) `touch PWNED3` $HOME'


def hostile_model(model: ScriptModel, prefix: str) -> ScriptModel:
    users = tuple(
        replace(user, home=f"{prefix}/home {HOSTILE}") if user.name == "qmailq" else user
        for user in model.accounts.users
    )
    return replace(
        model,
        version=HOSTILE_NOQUOTE,
        prefix=prefix,
        accounts=Accounts(model.accounts.groups, users),
        state=(StateEntry(f"{prefix}/queue", "dir", "qmailq", "qmail", 0o750),
               StateEntry(f"{prefix}/queue/{HOSTILE}", "fifo", "qmails", "qmail", 0o622)),
        services=(ServiceSpec("qmail-send", f"{prefix}/supervise/{HOSTILE}"),
                  ServiceSpec("qmail-smtpd", f"{prefix}/supervise/{HOSTILE_NOQUOTE}")),
        service_dirs=(f"/nonexistent/{HOSTILE}",),
        log_dir=f"/var/log/{HOSTILE}",
        default_delivery=f"./Maildir/ {HOSTILE}",
        postmaster_alias_to=HOSTILE,
        state_dir=f"/var/lib/{HOSTILE_NOQUOTE}",
        tcp_rules=f"/etc/{HOSTILE}.cdb",
    )


def assert_only_quoted(text: str, value: str) -> None:
    """Every occurrence of value (which has no ') lies inside a '...' word."""
    assert "'" not in value
    for number, line in enumerate(text.splitlines(), 1):
        spans = [m.span() for m in re.finditer(r"'[^']*'", line)]
        start = line.find(value)
        while start >= 0:
            end = start + len(value)
            assert any(a < start and end < b for a, b in spans), f"line {number}: {value!r} unquoted: {line}"
            start = line.find(value, start + 1)


def assert_unit_exec_literal(unit: str, expected: tuple[str, ...]) -> None:
    """ExecStart= is one double-quoted word that systemd reads back as one of
    the expected paths: C-style unescaping, then %% and $$ as one character."""
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    word = line[len("ExecStart="):]
    assert word.startswith('"') and word.endswith('"'), line
    body, value, i = word[1:-1], "", 0
    while i < len(body):
        if body[i] == "\\":
            value += body[i + 1]
            i += 2
            continue
        assert body[i] != '"', f"an unescaped quote ends the word early: {line}"
        if body[i] in "%$":
            assert body[i + 1] == body[i], f"{body[i]} would be expanded: {line}"
            i += 1
        value += body[i]
        i += 1
    assert value in expected, (value, expected)


def test_hostile_values_stay_literal(model, tmp_path):
    prefix = f"/opt/{HOSTILE_NOQUOTE}"
    bad = hostile_model(model, prefix)
    texts = dict(render_maintainer_scripts(bad, "deb", SCRIPTS))
    for f in render_service_files(bad):
        if f.path.endswith(".service"):
            assert_unit_exec_literal(f.content, (f"{prefix}/rc", f"{prefix}/supervise/{HOSTILE_NOQUOTE}/run"))
        elif not f.path.endswith("defaultdelivery"):
            texts[f.path] = f.content
    for name, text in texts.items():
        path = tmp_path / "scripts" / name.strip("/").replace("/", "_")
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        check = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, (name, check.stderr)
        # SC2016 ("expressions don't expand in single quotes") is the point here
        assert shellcheck(path, "-e", "SC2016") == "", name
        for value in (HOSTILE_NOQUOTE, prefix):
            assert_only_quoted(text, value)
        assert HOSTILE not in text  # has a ': shlex splits it, never verbatim

    # Run the rendered functions and check every value round-trips literally.
    library = tmp_path / "lib.sh"
    library.write_text(render_library(bad, "deb"))
    probe = f"""
. {shlex.quote(str(library))}
args() {{ for a in "$@"; do printf '%s\\n' "$a"; done; printf '%s\\n' --; }}
qs_each_user args
qs_each_state args
qs_each_service args
qs_each_alias_file args
qs_service_directory qmail-smtpd
printf '%s\\n' "$QS_PREFIX" "$QS_LOG_DIR" "$QS_STATE_DIR" "$QS_VERSION" "$QS_ALIAS_DIR"
"""
    work = tmp_path / "cwd"
    work.mkdir()
    result = subprocess.run(["sh", "-c", probe], cwd=work, capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "HOME": "/home-literal"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    qmailq = bad.user("qmailq")
    assert ["qmailq", "974", "qmail", "971", qmailq.home, "/usr/sbin/nologin", "--"] == lines[
        lines.index("qmailq"):lines.index("qmailq") + 7]
    assert f"{prefix}/queue/{HOSTILE}" in lines
    assert f"{prefix}/supervise/{HOSTILE}" in lines
    assert "&" + HOSTILE in lines  # .qmail-postmaster forwards to the literal value
    assert lines[-6:-1] == [prefix, bad.log_dir, bad.state_dir, HOSTILE_NOQUOTE, bad.user("alias").home]
    assert list(work.iterdir()) == [], "a value was executed"


# ------------------------------------------- service files, run on this host


def local_model(model: ScriptModel, prefix: Path) -> ScriptModel:
    # the units too: a test never writes the host's /lib/systemd/system
    return replace(model, prefix=str(prefix), tcp_rules=str(prefix / "tcp.smtp.cdb"),
                   systemd_unit_dir=str(prefix / "systemd"),
                   services=(ServiceSpec("qmail-send", f"{prefix}/supervise/qmail-send"),
                             ServiceSpec("qmail-smtpd", f"{prefix}/supervise/qmail-smtpd")))


def install_service_files(m: ScriptModel) -> dict[str, Path]:
    out = {}
    for f in render_service_files(m):
        path = Path(f.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        path.chmod(f.mode)
        out[f.path] = path
    return out


def fake(bindir: Path, name: str, body: str) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_rc_uses_defaultdelivery_with_fallback(model, tmp_path):
    prefix = tmp_path / "q m"
    m = local_model(model, prefix)
    files = install_service_files(m)
    fake(prefix / "bin", "qmail-start", 'printf "%s|" "$@"; printf "PATH=%s\\n" "$PATH"; echo err >&2\n')
    run = subprocess.run([str(files[f"{prefix}/rc"])], capture_output=True, text=True)
    assert run.stdout.startswith("./Maildir/|PATH=" + str(prefix / "bin") + ":")
    assert run.stdout.endswith("err\n") and run.stderr == ""  # 2>&1 for multilog
    (prefix / "control" / "defaultdelivery").write_text("./Mailbox\n")
    run = subprocess.run([str(files[f"{prefix}/rc"])], capture_output=True, text=True)
    assert run.stdout.startswith("./Mailbox|")
    (prefix / "control" / "defaultdelivery").unlink()
    run = subprocess.run([str(files[f"{prefix}/rc"])], capture_output=True, text=True)
    assert run.stdout.startswith("./Maildir/|")


def test_smtpd_run_refuses_without_rcpthosts(model, tmp_path):
    prefix = tmp_path / "q"
    m = local_model(model, prefix)
    files = install_service_files(m)
    bindir = tmp_path / "bin"
    fake(bindir, "sleep", "echo slept \"$1\"\n")
    fake(bindir, "envuidgid", 'printf "%s\\n" "$@"\n')
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    run_file = files[f"{prefix}/supervise/qmail-smtpd/run"]
    run = subprocess.run([str(run_file)], capture_output=True, text=True, env=env)
    assert run.returncode == 1
    assert "rcpthosts is missing" in run.stdout and "relay" in run.stdout and "slept 5" in run.stdout

    (prefix / "control" / "rcpthosts").write_text("example.org\n")
    (prefix / "control" / "me").write_text("mx.example.org\n")
    run = subprocess.run([str(run_file)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout
    argv = run.stdout.splitlines()
    assert argv[:5] == ["qmaild", "softlimit", "-m", "8000000", "tcpserver"]
    assert "-x" not in argv  # no rules cdb: no -x
    assert argv[argv.index("-c") + 1] == "20"
    assert argv[argv.index("-l") + 1] == "mx.example.org"
    assert argv[-3:] == ["0", "25", f"{prefix}/bin/qmail-smtpd"]  # a port number: no /etc/services needed

    (prefix / "tcp.smtp.cdb").write_text("")
    (prefix / "control" / "concurrencyincoming").write_text("7\n")
    argv = subprocess.run([str(run_file)], capture_output=True, text=True, env=env).stdout.splitlines()
    assert argv[argv.index("-x") + 1] == str(prefix / "tcp.smtp.cdb")
    assert argv[argv.index("-c") + 1] == "7"


# ------------------------------------------------- real runs in a container


@pytest.fixture(scope="module")
def container(engine, recipe):
    """Real runs need the engine and the image: fail loudly rather than skip."""
    from builder.environment import ensure_image
    from builder.sandbox.images import image_spec

    spec = image_spec(recipe.target("debian-12"), "build")
    assert spec.reference == IMAGE
    ensure_image(spec)
    return run_in_container


FAKE_DAEMONTOOLS = {
    # State per supervise directory in /tmp/fakesv: up | down | stopping:N |
    # gone; no file = supervise not running. Every call goes to calls.
    "svc": r"""
flags=$1; shift
for dir in "$@"; do
    echo "svc $flags $dir" >>/tmp/fakesv/calls
    key=/tmp/fakesv/$(readlink -f "$dir" | tr / _)
    if [ ! -f "$key" ] || [ "$(cat "$key")" = gone ]; then
        echo "svc: warning: unable to control $dir: supervise not running" >&2
        continue
    fi
    case $flags in
    -u) echo up >"$key" ;;
    -d) if [ "$(cat "$key")" = up ]; then echo stopping:2 >"$key"; fi ;;
    -dx) echo gone >"$key" ;;
    esac
done
""",
    "svstat": r"""
for dir in "$@"; do
    echo "svstat $dir" >>/tmp/fakesv/calls
    key=/tmp/fakesv/$(readlink -f "$dir" | tr / _)
    state=$(cat "$key" 2>/dev/null || echo gone)
    case $state in
    up) echo "$dir: up (pid 4242) 100 seconds" ;;
    stopping:0) echo down >"$key"; echo "$dir: down 0 seconds, normally up" ;;
    stopping:*) echo "stopping:$(( ${state#stopping:} - 1 ))" >"$key"
                echo "$dir: up (pid 4242) 100 seconds, want down" ;;
    down) echo "$dir: down 5 seconds, normally up" ;;
    *) echo "$dir: supervise not running" ;;
    esac
done
""",
    "svok": r"""
echo "svok $1" >>/tmp/fakesv/calls
key=/tmp/fakesv/$(readlink -f "$1" | tr / _)
state=$(cat "$key" 2>/dev/null || echo gone)
[ "$state" != gone ] || exit 100
""",
}

DRIVER_PRELUDE = r"""
set +e
mkdir -p /tmp/fakesv
: >/tmp/fakesv/calls
# step NAME command...: runs it, keeps rc, stdout and stderr in /out.
step() {
    name=$1; shift
    "$@" >"/out/$name.out" 2>"/out/$name.err"
    echo $? >"/out/$name.rc"
}
# What dpkg would unpack: the shipped tree with the service files.
unpack() {
    mkdir -p /var/qmail/bin /var/qmail/control /var/qmail/alias
    cp -a /pkg/files/. /
}
fakesv() {  # fakesv DIR STATE: what svscan + supervise would make
    echo "$2" >"/tmp/fakesv/$(printf '%s' "$1" | tr / _)"
}
fakestate() {
    cat "/tmp/fakesv/$(printf '%s' "$1" | tr / _)" 2>/dev/null || echo none
}
stats() {
    for p in "$@"; do stat -c '%n|%U|%G|%a|%F' "$p"; done
}
"""


def run_in_container(tmp_path: Path, m: ScriptModel, driver: str, *, daemontools: bool = False,
                     extra_sets: tuple[str, ...] = ()) -> Path:
    """Runs driver (sh) as root in a throwaway container with the rendered
    scripts in /pkg (and those of other sets in /pkg/<set>/); returns the
    directory the driver wrote its results to."""
    pkg = tmp_path / "pkg"
    out = tmp_path / "out"
    (pkg / "files").mkdir(parents=True)
    out.mkdir()
    for name, text in render_maintainer_scripts(m, "deb", DEB_SCRIPTS).items():
        (pkg / name).write_text(text)
        (pkg / name).chmod(0o755)
    for script_set in extra_sets:
        (pkg / script_set).mkdir()
        for name, text in render_maintainer_scripts(m, script_set, SCRIPTS).items():
            (pkg / script_set / name).write_text(text)
            (pkg / script_set / name).chmod(0o755)
    for f in render_service_files(m):
        path = pkg / "files" / f.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        path.chmod(f.mode)
    if daemontools:
        for name, body in FAKE_DAEMONTOOLS.items():
            fake(pkg / "fakebin", name, body)
    (pkg / "driver.sh").write_text(DRIVER_PRELUDE + driver)
    path = "/pkg/fakebin:" if daemontools else ""
    command = [
        "docker", "run", "--rm", "--network", "none",
        "-v", f"{pkg}:/pkg:ro", "-v", f"{out}:/out",
        "-e", f"PATH={path}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "-e", "DEBIAN_FRONTEND=noninteractive",  # as dpkg runs them from apt in a script
        "-e", "DPKG_MAINTSCRIPT_PACKAGE=qmail-syncdir",  # debconf names the package by it
        IMAGE, "sh", "/pkg/driver.sh",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


class Out:
    def __init__(self, directory: Path):
        self.dir = directory

    def __call__(self, name: str) -> str:
        return (self.dir / name).read_text()

    def rc(self, step: str) -> int:
        return int(self(f"{step}.rc"))

    def ok(self, step: str) -> None:
        assert self.rc(step) == 0, f"{step}: {self(step + '.out')}{self(step + '.err')}"


def stat_map(text: str) -> dict[str, tuple[str, str, str, str]]:
    rows = {}
    for line in text.splitlines():
        path, owner, group, mode, kind = line.split("|")
        rows[path] = (owner, group, mode, kind)
    return rows


KIND = {"dir": "directory", "file": "regular empty file", "fifo": "fifo"}


def test_fresh_install_configure_purge(container, model, tmp_path):
    state_paths = " ".join(shlex.quote(e.path) for e in model.state)
    users = " ".join(u.name for u in model.accounts.users)
    groups = " ".join(g.name for g in model.accounts.groups)
    out = Out(container(tmp_path, model, f"""
step preinst1 /pkg/preinst install
for u in {users}; do getent passwd "$u"; done >/out/passwd
for g in {groups}; do getent group "$g"; done >/out/group
cp /etc/passwd /out/passwd-a; cp /etc/group /out/group-a
step preinst2 /pkg/preinst install
cp /etc/passwd /out/passwd-b; cp /etc/group /out/group-b
unpack
printf 'my.own.relay.example\\n' >/var/qmail/control/rcpthosts   # the admin's
step postinst1 /pkg/postinst configure ''
stats {state_paths} >/out/stat1
stats /var/log/qmail/qmail-send /var/log/qmail/qmail-smtpd /var/qmail/alias/Maildir/new >/out/stat-logs
for f in me defaultdomain plusdomain locals rcpthosts; do echo "$f=$(tr '\\n' ' ' </var/qmail/control/$f)"; \
done >/out/control1
for f in .qmail-postmaster .qmail-root .qmail-mailer-daemon; do echo "$f=$(cat /var/qmail/alias/$f)"; \
stats /var/qmail/alias/$f; done >/out/alias1
hostname >/out/hostname
cp /var/lib/qmail-syncdir/created-files /out/created
echo mail.edited.example >/var/qmail/control/me
chmod 0777 /var/qmail/queue/lock/trigger; chown root:root /var/qmail/queue/mess/3
step postinst2 /pkg/postinst configure 1.03-1
cat /var/qmail/control/me >/out/me2
stats {state_paths} >/out/stat2
echo 'a queued message' >/var/qmail/queue/mess/0/12345
ln /var/qmail/queue/mess/0/12345 /var/qmail/queue/todo/12345   # the same message, not yet read
echo 'Subject: for root' >/var/qmail/alias/Maildir/new/1700000000.M1P2Q3R0.host
echo 'a log line' >/var/log/qmail/qmail-send/current
step prerm /pkg/prerm remove
rm -rf /var/qmail/bin /var/qmail/rc /var/qmail/control/defaultdelivery \
/var/qmail/supervise/*/run /var/qmail/supervise/*/log/run
mkdir -p /var/qmail/supervise/qmail-send/supervise   # left behind by supervise
step postrm-remove /pkg/postrm remove
step postrm-purge /pkg/postrm purge
for p in /var/qmail/control/me /var/qmail/control/defaultdomain /var/qmail/control/locals \\
         /var/qmail/control/rcpthosts /var/qmail/alias/.qmail-root /var/qmail/queue/mess/0/12345 \\
         /var/qmail/queue/lock/trigger /var/qmail/queue/info/22 \\
         /var/qmail/alias/Maildir/new/1700000000.M1P2Q3R0.host /var/qmail/alias/Maildir/tmp \\
         /var/lib/qmail-syncdir /var/qmail/supervise/qmail-send/supervise /var/log/qmail; do
    if [ -e "$p" ]; then echo "kept $p"; else echo "gone $p"; fi
done >/out/after-purge
for u in {users}; do getent passwd "$u" >/dev/null && echo "user $u"; done >/out/users-after
for a in bogus ''; do for s in preinst postinst prerm postrm; do step "bad-$s-$a" /pkg/$s $a; done; done
"""))
    out.ok("preinst1")
    passwd = {line.split(":")[0]: line.split(":") for line in out("passwd").splitlines()}
    for user in model.accounts.users:
        gid = model.accounts.group(user.group).gid
        assert passwd[user.name][2:4] == [str(user.uid), str(gid)], user
        assert passwd[user.name][5:7] == [user.home, "/usr/sbin/nologin"]
    group = {line.split(":")[0]: line.split(":")[2] for line in out("group").splitlines()}
    assert group == {g.name: str(g.gid) for g in model.accounts.groups}
    # idempotent
    out.ok("preinst2")
    assert out("passwd-a") == out("passwd-b") and out("group-a") == out("group-b")
    assert out("preinst2.out") == "" and out("preinst2.err") == ""

    out.ok("postinst1")
    # no service directory and no daemontools: installs, says how to enable
    # (debconf sends what the postinst prints to stderr)
    text = out("postinst1.out") + out("postinst1.err")
    assert "mkdir /service" in text
    assert "ln -s /var/qmail/supervise/qmail-send /service/" in text
    for stats_name in ("stat1", "stat2"):
        rows = stat_map(out(stats_name))
        for entry in model.state:
            assert rows[entry.path] == (entry.owner, entry.group, format(entry.mode, "o"), KIND[entry.kind]), (
                stats_name, entry)
    assert stat_map(out("stat1"))["/var/qmail/queue/lock/trigger"][3] == "fifo"
    logs = stat_map(out("stat-logs"))
    assert logs["/var/log/qmail/qmail-send"][:2] == ("qmaill", "nofiles")
    assert logs["/var/log/qmail/qmail-smtpd"][:2] == ("qmaill", "nofiles")
    assert logs["/var/qmail/alias/Maildir/new"][:3] == ("alias", "nofiles", "700")

    host = out("hostname").strip()
    control = {key: value.strip() for key, value in (line.split("=", 1) for line in out("control1").splitlines())}
    # a container's host name has no domain part: see test_control_files_for_the_host_name
    names, domain = (host, host.split(".", 1)[1]) if "." in host else (f"{host} {host}.localdomain", "localdomain")
    assert control["me"] == host and control["locals"] == names
    assert control["rcpthosts"] == "my.own.relay.example"  # never overwritten
    assert control["defaultdomain"] == domain and control["plusdomain"] == domain
    alias = out("alias1")
    assert ".qmail-postmaster=&root" in alias and ".qmail-mailer-daemon=&root" in alias
    assert ".qmail-root=./Maildir/" in alias
    assert "|root|root|644|regular file" in alias
    created = out("created").splitlines()
    assert "/var/qmail/control/me" in created and "/var/qmail/alias/.qmail-root" in created
    assert "/var/qmail/control/rcpthosts" not in created

    out.ok("postinst2")
    assert out("me2") == "mail.edited.example\n"

    out.ok("prerm")
    out.ok("postrm-remove")
    out.ok("postrm-purge")
    purge = out("postrm-purge.out") + out("postrm-purge.err")  # debconf sends it to stderr
    # what holds mail is kept whole, named, with why and how to remove it by hand
    assert "purge kept the queue /var/qmail/queue: it holds 1 message not yet delivered:\n" \
           "    /var/qmail/queue/mess/0/12345\n" in purge
    assert ("Install qmail-syncdir again and qmail delivers it. "
            "To throw it away instead: rm -rf /var/qmail/queue") in purge
    assert "purge kept /var/qmail/alias/Maildir (mail to root): it holds 1 message:\n" \
           "    /var/qmail/alias/Maildir/new/1700000000.M1P2Q3R0.host\n" in purge
    assert "Read or move it, then: rm -rf /var/qmail/alias/Maildir" in purge
    # the admin's file is named as not the scripts'; the logs went
    assert ("purge kept 1 file the install scripts did not write" in purge
            and "    /var/qmail/control/rcpthosts" in purge)
    assert "/var/log/qmail/qmail-send" in purge.split("purge removed", 1)[1].splitlines()[0]
    assert "qmailq" in purge
    after = out("after-purge").splitlines()
    for gone in ("/var/qmail/control/me", "/var/qmail/control/defaultdomain", "/var/qmail/control/locals",
                 "/var/qmail/alias/.qmail-root", "/var/lib/qmail-syncdir",
                 "/var/qmail/supervise/qmail-send/supervise", "/var/log/qmail"):
        assert f"gone {gone}" in after
    for kept in ("/var/qmail/control/rcpthosts", "/var/qmail/queue/mess/0/12345", "/var/qmail/queue/lock/trigger",
                 "/var/qmail/queue/info/22", "/var/qmail/alias/Maildir/new/1700000000.M1P2Q3R0.host",
                 "/var/qmail/alias/Maildir/tmp"):
        assert f"kept {kept}" in after
    assert len(out("users-after").splitlines()) == len(model.accounts.users)  # never deleted

    for arg in ("bogus", ""):
        for script in SCRIPTS:
            assert out.rc(f"bad-{script}-{arg}") == 1
            assert "unknown argument" in out(f"bad-{script}-{arg}.err")


# Paths a first install changes that are not the package's: the account
# databases (useradd keeps a backup of each) and debconf's own database.
NOT_THE_PACKAGES = re.compile(r"^/etc/(passwd|group|shadow|gshadow)-?$|^/var/cache/debconf/")
SNAPSHOT = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /out -o -path /pkg -o -path /tmp \\) "
            "-prune -o -print | sort")


def test_purge_without_mail_leaves_nothing(container, model, tmp_path):
    """The piuparts contract without piuparts: install, configure, remove,
    purge on a system where no mail was ever queued, and not one path the
    scripts made is left."""
    out = Out(container(tmp_path, model, f"""
{SNAPSHOT} >/out/before
step preinst /pkg/preinst install
unpack
step postinst /pkg/postinst configure ''
echo '@4000000065 a log line' >/var/log/qmail/qmail-smtpd/current
mkdir -p /var/qmail/queue/pid && : >/var/qmail/queue/pid/1234   # qmail-queue cut short: not mail
touch /var/qmail/alias/Maildir/dovecot-uidlist                  # an index, not a message
step prerm /pkg/prerm remove
rm -rf /var/qmail/bin /var/qmail/rc /var/qmail/control/defaultdelivery /var/qmail/supervise
step postrm-remove /pkg/postrm remove
step postrm-purge /pkg/postrm purge
{SNAPSHOT} >/out/after
"""))
    for step in ("preinst", "postinst", "prerm", "postrm-remove", "postrm-purge"):
        out.ok(step)
    before, after = set(out("before").splitlines()), set(out("after").splitlines())
    left = sorted(path for path in after - before if not NOT_THE_PACKAGES.match(path))
    assert left == [], left
    assert sorted(before - after) == []
    purge = out("postrm-purge.out") + out("postrm-purge.err")
    assert "the queue /var/qmail/queue (no mail in it)" in purge and "/var/qmail/alias/Maildir (no mail in it)" in purge
    assert "purge kept the queue" not in purge and "did not write" not in purge


def test_rpm_erase_purges_but_keeps_what_the_admin_edited(container, model, tmp_path):
    """rpm's %postun 0 (its only removal) does what a Debian purge does, and
    keeps, as rpm does with an edited %config, the created files edited since."""
    out = Out(container(tmp_path, model, """
step pre /pkg/rpm/preinst 1
unpack
step post /pkg/rpm/postinst 1
echo mail.edited.example >/var/qmail/control/me
step preun /pkg/rpm/prerm 0
rm -rf /var/qmail/bin /var/qmail/rc /var/qmail/control/defaultdelivery /var/qmail/supervise
step postun /pkg/rpm/postrm 0
find /var/qmail /var/log/qmail /var/lib/qmail-syncdir 2>/dev/null | sort >/out/left
""", extra_sets=("rpm",)))
    for step in ("pre", "post", "preun", "postun"):
        out.ok(step)
    assert out("left").split() == ["/var/qmail", "/var/qmail/control", "/var/qmail/control/me"]
    erase = out("postun.out")
    assert "purge kept 1 file the install scripts did not write (the administrator's, or edited since):\n" \
           "    /var/qmail/control/me\n" in erase
    assert "the queue /var/qmail/queue (no mail in it)" in erase


def test_conflicting_accounts_are_refused_before_any_change(container, model, tmp_path):
    out = Out(container(tmp_path, model, """
# qmail installed by hand: useradd picked the ids
groupadd -g 1001 nofiles
useradd -u 1005 -g nofiles -M -d /var/qmail qmailq
cp /etc/passwd /out/passwd-a; cp /etc/group /out/group-a
step hand /pkg/preinst install
cp /etc/passwd /out/passwd-b; cp /etc/group /out/group-b
ls /var/lib/qmail-syncdir >/out/statedir 2>&1
userdel qmailq; groupdel nofiles
# another account sits on a compiled-in id
groupadd -g 971 staff2
useradd -u 971 -g staff2 -M someone
cp /etc/passwd /out/passwd-c; cp /etc/group /out/group-c
step taken /pkg/preinst install
cp /etc/passwd /out/passwd-d; cp /etc/group /out/group-d
"""))
    assert out.rc("hand") == 1
    err = out("hand.err")
    assert "qmail-syncdir: user qmailq exists with uid 1005, this build of qmail has uid 974 compiled in" in err
    assert "qmail-syncdir: group nofiles exists with gid 1001, this build of qmail has gid 970 compiled in" in err
    assert "user qmailq has primary group nofiles, this build of qmail expects group qmail (gid 971)" in err
    assert "debconf-set-selections" in err  # says how to let the package renumber
    assert "usermod -u 974 qmailq" in err and "groupmod -g 970 nofiles" in err
    assert "chown -h qmailq" in err
    assert "qmail-pkg build" in err
    assert out("passwd-a") == out("passwd-b") and out("group-a") == out("group-b"), "created an account"
    assert "No such file" in out("statedir")

    assert out.rc("taken") == 1
    err = out("taken.err")
    assert "uid 971 belongs to user someone, this build of qmail needs it for user qmaild" in err
    assert "gid 971 belongs to group staff2, this build of qmail needs it for group qmail" in err
    assert out("passwd-c") == out("passwd-d") and out("group-c") == out("group-d")


def test_service_lifecycle_with_fake_svc(container, model, tmp_path):
    send, smtpd = "/var/qmail/supervise/qmail-send", "/var/qmail/supervise/qmail-smtpd"
    fast = replace(model, stop_timeout=10)
    out = Out(container(tmp_path, fast, f"""
mkdir /service
step install-pre /pkg/preinst install
unpack
step install-post /pkg/postinst configure ''
readlink /service/qmail-send /service/qmail-smtpd >/out/links1
# svscan + supervise would now run them; the admin took smtpd down
fakesv {send} up; fakesv {send}/log up; fakesv {smtpd} down; fakesv {smtpd}/log up
: >/tmp/fakesv/calls
step old-prerm /pkg/prerm upgrade 1.03-2
step up-pre /pkg/preinst upgrade 1.03-1
cp /tmp/fakesv/calls /out/calls-stop
cp /var/lib/qmail-syncdir/services-were-up /out/were-up
echo "$(fakestate {send}) $(fakestate {smtpd})" >/out/state-stopped
: >/tmp/fakesv/calls
step old-postrm /pkg/postrm upgrade 1.03-2
cp /tmp/fakesv/calls /out/calls-old-postrm
unpack
step up-post /pkg/postinst configure 1.03-1
cp /tmp/fakesv/calls /out/calls-start
echo "$(fakestate {send}) $(fakestate {smtpd})" >/out/state-started
ls /var/lib/qmail-syncdir >/out/statedir-after-upgrade

# the admin unlinks smtpd: upgrades keep it that way
rm /service/qmail-smtpd
step up2-pre /pkg/preinst upgrade 1.03-1
step up2-post /pkg/postinst configure 1.03-1
ls /service >/out/links2

# a failed upgrade: dpkg rolls back, the stopped service comes back once
step up3-pre /pkg/preinst upgrade 1.03-1
: >/tmp/fakesv/calls
step abort-postrm /pkg/postrm abort-upgrade 1.03-1
step abort-postinst /pkg/postinst abort-upgrade 1.03-2
step abort-preinst /pkg/preinst abort-upgrade 1.03-2
cp /tmp/fakesv/calls /out/calls-abort
echo "$(fakestate {send})" >/out/state-abort

# remove: unlink, then svc -dx service and log, wait for supervise to exit
: >/tmp/fakesv/calls
step remove /pkg/prerm remove
cp /tmp/fakesv/calls /out/calls-remove
ls /service >/out/links-removed
echo "$(fakestate {send}) $(fakestate {send}/log) $(fakestate {smtpd}) $(fakestate {smtpd}/log)" >/out/state-removed
cp /var/lib/qmail-syncdir/events.log /out/events

# reinstall from config-files: what our prerm unlinked is linked again
step re-pre /pkg/preinst install 1.03-1
step re-post /pkg/postinst configure 1.03-1
ls /service >/out/links-reinstalled
""", daemontools=True))
    for step in ("install-pre", "install-post", "old-prerm", "up-pre", "old-postrm", "up-post",
                 "up2-pre", "up2-post", "up3-pre", "abort-postrm", "abort-postinst", "abort-preinst",
                 "remove", "re-pre", "re-post"):
        out.ok(step)
    assert out("links1").split() == [send, smtpd]

    # preinst upgrade: only what was up is recorded and stopped, after waiting
    assert out("were-up").split() == ["qmail-send"]
    calls = out("calls-stop").splitlines()
    # through svscan's link, as an administrator's own supervise folder would be
    assert "svc -d /service/qmail-send" in calls
    assert not any(c.startswith("svc") and "qmail-smtpd" in c for c in calls)
    assert calls.index("svc -d /service/qmail-send") < len(calls) - 3  # kept polling svstat until down
    assert out("state-stopped").split() == ["down", "down"]
    assert out("calls-old-postrm") == ""  # old version's postrm upgrade: harmless

    # postinst configure: exactly the recorded services come back
    assert [c for c in out("calls-start").splitlines() if c.startswith("svc")] == ["svc -u /service/qmail-send"]
    assert out("state-started").split() == ["up", "down"]
    assert "services-were-up" not in out("statedir-after-upgrade")
    assert out("links2").split() == ["qmail-send"]

    assert [c for c in out("calls-abort").splitlines() if c.startswith("svc")] == ["svc -u /service/qmail-send"]
    assert out("state-abort").strip() == "up"

    calls = [c for c in out("calls-remove").splitlines() if c.startswith("svc ")]
    assert calls == [f"svc -dx {send}", f"svc -dx {send}/log", f"svc -dx {smtpd}", f"svc -dx {smtpd}/log"]
    assert out("links-removed").split() == []
    assert out("state-removed").split() == ["gone"] * 4

    events = [line.split()[1:] for line in out("events").splitlines()]
    assert all(len(line.split()) == 5 and line.split()[0].isdigit() for line in out("events").splitlines())
    assert ["postinst", "configure", "link", "qmail-send"] in events
    assert ["preinst", "upgrade", "stop", "qmail-send"] in events
    assert ["preinst", "upgrade", "down", "qmail-send"] in events
    assert ["postinst", "configure", "start", "qmail-send"] in events
    assert ["postrm", "abort-upgrade", "start", "qmail-send"] in events
    assert ["prerm", "remove", "exited", "qmail-send/log"] in events
    assert not any(e[2] == "stop" and e[3] == "qmail-smtpd" for e in events)
    removal = [e for e in events if e[0] == "prerm"]
    assert removal.index(["prerm", "remove", "unlink", "qmail-send"]) < removal.index(
        ["prerm", "remove", "exit", "qmail-send"])

    assert out("links-reinstalled").split() == ["qmail-send"]


def test_queue_state_matches_qmail_setup():
    state = queue_state("/var/qmail")
    by_path = {e.path: e for e in state}
    assert by_path["/var/qmail/queue"] == StateEntry("/var/qmail/queue", "dir", "qmailq", "qmail", 0o750)
    assert by_path["/var/qmail/queue/lock/trigger"].kind == "fifo"
    assert by_path["/var/qmail/queue/lock/trigger"].mode == 0o622
    assert "/var/qmail/queue/mess/22" in by_path and "/var/qmail/queue/mess/23" not in by_path
    paths = [e.path for e in state]
    for path in paths:  # parents first
        parent = path.rsplit("/", 1)[0]
        if parent in by_path:
            assert paths.index(parent) < paths.index(path)


def test_alias_target_other_than_root(model):
    other = replace(model, postmaster_alias_to="hostmaster@example.org")
    library = render_library(other, "deb")
    assert "'.qmail-root' '&hostmaster@example.org'" in library
    assert "'.qmail-postmaster' '&hostmaster@example.org'" in library
    # no Maildir for root then
    assert "qs_alias_needs_maildir() {\n    return 1" in library


def test_accounts_model_checks():
    accounts = Accounts((Group("g", 1),), (User("u", 1, "missing", "/x"),))
    with pytest.raises(ValueError):
        ScriptModel(
            package="p", version="1-1", prefix="/var/qmail", accounts=accounts, state=(), services=(),
            service_dirs=("/service",), log_dir="/var/log/qmail", default_delivery="./Maildir/",
            postmaster_alias_to="root", sendmail_links=(), state_dir="/var/lib/p",
        )
