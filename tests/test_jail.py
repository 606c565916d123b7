"""The jail backend: command construction and lifecycle, unit-tested with a
recording runner (no FreeBSD host here); the integration build runs only on
a FreeBSD host with base releases, and says so when it skips."""

from __future__ import annotations

import io
import os
import platform
import shlex
import subprocess

import pytest

from builder.errors import SandboxError
from builder.sandbox.jail import JAIL_BASE_ENV, JailSandbox, jail_tools_available


class Recorder:
    """Records every host command; answers the few whose output matters
    (test, mktemp, cat) as the FreeBSD host would, from the local files."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def run(self, argv, **kwargs):
        self.calls.append(list(argv))
        local = shlex.split(argv[-1]) if argv[0] == "ssh" else argv
        if local[0] == "test":
            return subprocess.CompletedProcess(
                argv, 0 if os.access(local[-1], os.X_OK) or os.path.exists(local[-1]) else 1, "", "")
        if local[0] == "mktemp":
            return subprocess.run(local, capture_output=True, text=kwargs.get("text", False))
        if local[0] == "cat":
            return subprocess.run(local, capture_output=True)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def popen(self, argv, **kwargs):
        self.calls.append(list(argv))

        class Process:
            stdin = io.BytesIO()
            stdout = io.BytesIO(b"line one\nline two\n")

            def wait(self):
                return 3

            def poll(self):
                return 3

            def kill(self):
                pass

        return Process()


@pytest.fixture
def base(tmp_path, monkeypatch):
    release = tmp_path / "releases" / "14.1-release"
    (release / "bin").mkdir(parents=True)
    (release / "bin" / "sh").write_text("")
    (release / "bin" / "freebsd-version").write_text("#!/bin/sh\necho 14.1-RELEASE-p5\n")
    monkeypatch.setenv(JAIL_BASE_ENV, str(tmp_path / "releases"))
    monkeypatch.setenv("QMAIL_PKG_JAIL_WORK", str(tmp_path))
    monkeypatch.delenv("QMAIL_PKG_JAIL_ZFS", raising=False)
    return release


def test_jail_lifecycle_commands(base):
    recorder = Recorder()
    box = JailSandbox("14.1-release", role="build", hostname="build.invalid",
                      runner=recorder.run, popen=recorder.popen, host_system="FreeBSD")
    with box:
        root = box.root
        lines: list[str] = []
        code = box.run(["make", "-j2"], env={"A": "1"}, workdir="/build", on_output=lines.append)
        assert (code, lines) == (3, ["line one", "line two"])
    probe, made, copy, create, *rest = recorder.calls
    assert probe == ["test", "-x", str(base / "bin" / "sh")] and made[:2] == ["mktemp", "-d"]
    assert copy[:3] == ["sh", "-c", 'tar -C "$1" -cf - . | tar -C "$2" -xpf -'] and copy[-2:] == [str(base), str(root)]
    assert create[:2] == ["jail", "-c"] and f"path={root}" in create
    assert "ip4=disable" in create and "ip6=disable" in create and "allow.raw_sockets=0" in create  # no network
    execute = rest[0]
    assert execute[:2] == ["jexec", box.name] and execute[2:4] == ["env", "-i"] and "A=1" in execute
    assert execute[-2:] == ["make", "-j2"] and "/build" in execute
    assert rest[1] == ["jail", "-r", box.name] and rest[-1] == ["rm", "-rf", str(root)]
    assert ["chflags", "-R", "noschg", str(root)] in rest  # base releases carry schg flags
    assert box.root is None  # destroyed


def test_jail_runs_as_another_user_and_starts_svscan_for_verification(base):
    recorder = Recorder()
    box = JailSandbox("qmail-pkg/14.1-release", role="verify", command=["svscan", "/var/service"],
                      runner=recorder.run, popen=recorder.popen, host_system="FreeBSD")
    assert box.release == "14.1-release"
    with box:
        box.run(["id"], user="qmaild")
    assert ["jexec", box.name, "daemon", "-f", "svscan", "/var/service"] in recorder.calls
    assert any(call[:4] == ["jexec", "-U", "qmaild", box.name] for call in recorder.calls)


def test_zfs_clone_instead_of_a_copy(base, monkeypatch):
    monkeypatch.setenv("QMAIL_PKG_JAIL_ZFS", "zroot/qmail-pkg")
    recorder = Recorder()
    with JailSandbox("14.1-release", runner=recorder.run, popen=recorder.popen, host_system="FreeBSD") as box:
        name = box.name
    assert recorder.calls[2] == ["zfs", "snapshot", f"zroot/qmail-pkg/14.1-release@{name}"]
    assert recorder.calls[3][:2] == ["zfs", "clone"]
    assert ["zfs", "destroy", "-r", f"zroot/qmail-pkg/{name}"] in recorder.calls


def test_jail_refuses_a_linux_host_and_a_missing_base(base, monkeypatch):
    with pytest.raises(SandboxError, match="jails need a FreeBSD host"):
        JailSandbox("14.1-release", host_system="Linux").start()
    with pytest.raises(SandboxError, match="is not an extracted FreeBSD base release"):
        JailSandbox("13.0-release", host_system="FreeBSD").start()
    monkeypatch.delenv(JAIL_BASE_ENV)
    with pytest.raises(SandboxError, match=f"set {JAIL_BASE_ENV}"):
        JailSandbox("14.1-release", host_system="FreeBSD").start()


def test_a_failed_start_leaves_nothing(base):
    class Failing(Recorder):
        def run(self, argv, **kwargs):
            self.calls.append(list(argv))
            return subprocess.CompletedProcess(argv, 1 if argv[:2] == ["jail", "-c"] else 0, "", "no jails here")

    recorder = Failing()
    box = JailSandbox("14.1-release", runner=recorder.run, popen=recorder.popen, host_system="FreeBSD")
    with pytest.raises(SandboxError, match="jail -c"):
        with box:
            pass
    assert recorder.calls[-1][:2] == ["rm", "-rf"]


def test_a_jail_host_over_ssh_runs_the_same_commands_through_one_ssh_call(base):
    """builders settings `jail: ssh://builder@freebsd-host:2222`: every host
    command is the local one, quoted word by word for the remote shell."""
    from builder.engines import Engine
    from builder.sandbox.jail import ssh_prefix

    recorder = Recorder()
    engine = Engine("freebsd-*", "ssh://builder@freebsd-host:2222", "jail")
    recorder_uname = recorder.run

    def run(argv, **kwargs):  # the remote host says it is FreeBSD
        if argv[-1] == "uname -s":
            recorder.calls.append(list(argv))
            return subprocess.CompletedProcess(argv, 0, "FreeBSD\n", "")
        return recorder_uname(argv, **kwargs)

    box = JailSandbox("14.1-release", runner=run, popen=recorder.popen, engine=engine)
    with box:
        box.run(["sh", "-c", "echo 'quoted; $HOME'"], workdir="/build dir")
    prefix = ["ssh", "-T", "-o", "BatchMode=yes", "-p", "2222", "builder@freebsd-host", "--"]
    assert all(call[:len(prefix)] == prefix and len(call) == len(prefix) + 1 for call in recorder.calls)
    remote = [shlex.split(call[-1]) for call in recorder.calls]
    assert remote[0] == ["uname", "-s"]
    executed = next(words for words in remote if words[0] == "jexec")
    # survives the remote shell
    assert executed[-3:] == ["sh", "-c", "echo 'quoted; $HOME'"] and "/build dir" in executed
    assert ["jail", "-r", box.name] in remote
    for bad in ("ssh://-oProxyCommand=x", "ssh://host:port"):
        with pytest.raises(SandboxError, match="expected ssh://"):
            ssh_prefix(bad)


@pytest.mark.skipif(jail_tools_available() is not None, reason=f"no FreeBSD host here: {jail_tools_available()}")
def test_freebsd_target_builds_in_a_jail(fixture_sources, tmp_path):  # pragma: no cover - FreeBSD hosts only
    from builder.pipeline import BuildOptions, build_target
    from builder.recipe.loader import load_recipe

    from .conftest import RECIPE

    if not os.environ.get(JAIL_BASE_ENV):
        pytest.skip(f"set {JAIL_BASE_ENV} to the folder of extracted base releases")
    recipe = load_recipe(RECIPE)
    options = BuildOptions(out_dir=tmp_path, sources_dir=tmp_path / "cache", overrides=tuple(fixture_sources.items()),
                           quiet=True)
    result = build_target(recipe, recipe.target(f"freebsd-{platform.release().split('.')[0]}"), options)
    assert [a.format for a in result.artifacts] == ["pkg"]
