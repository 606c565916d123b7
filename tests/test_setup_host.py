"""`qmail-pkg setup-host` (builder/setup-host.sh, also run by ./run.sh setup):
missing packages installed, an existing Docker engine and its packages left
alone (docker.io would conflict with Docker's own on GitHub's runners), a
dockerd started only when none answers. Run here against stand-ins for
apt, dpkg and Docker, in a folder of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from builder.cli import main
from builder.shipped import host_setup_script

REAL_TOOLS = ("sh", "grep", "sed", "cat", "chmod", "sleep", "nohup")


def _stand_ins(folder: Path, *, client: bool, missing: str = "") -> Path:
    """dpkg-query that says every package but `missing` is installed, an
    apt-get that records what it was asked for (and installs a docker
    client with docker.io), dockerd, and a docker client whose `info`
    answers once dockerd ran."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for tool in REAL_TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    client_script = f'#!/bin/sh\n[ "$1" = info ] && [ -e {folder}/dockerd-ran ]\n'
    scripts = {
        "dpkg-query": f'#!/bin/sh\nfor pkg; do :; done\ncase " {missing} " in *" $pkg "*) exit 1;; esac\n'
                      "printf 'install ok installed'\n",
        "apt-get": f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {folder}/apt-get.calls\n"
                   f"case \"$*\" in *docker.io*) printf '%s' '{client_script}' > {bin_dir}/docker; "
                   f"chmod +x {bin_dir}/docker;; esac\n",
        "dockerd": f"#!/bin/sh\nprintf '%s\\n' \"$*\" > {folder}/dockerd-ran\n",
        "mount": "#!/bin/sh\nexit 1\n",
        "update-binfmts": "#!/bin/sh\nexit 0\n",
    }
    if client:
        scripts["docker"] = client_script
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _setup_host(tmp_path: Path, *, client: bool, socket_path: Path | None = None, docker_host: str = "",
                missing: str = "") -> subprocess.CompletedProcess:
    binfmt = tmp_path / "binfmt"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: OCF\n")
    env = {"PATH": str(_stand_ins(tmp_path, client=client, missing=missing)), "QMAIL_PKG_BINFMT": str(binfmt),
           "QMAIL_PKG_DOCKER_SOCKET": str(socket_path or tmp_path / "no-engine.sock"),
           "QMAIL_PKG_DOCKERD_LOG": str(tmp_path / "dockerd.log")}
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return subprocess.run(["sh", str(host_setup_script())], env=env, capture_output=True, text=True, timeout=120)


def _apt_calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "apt-get.calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_with_a_docker_client_docker_io_is_never_installed(tmp_path):
    result = _setup_host(tmp_path, client=True, missing="docker.io rpm")
    # no engine answers the client yet: one is started, but docker.io stays out
    assert result.returncode == 0, result.stderr
    installs = [call for call in _apt_calls(tmp_path) if call.startswith("install")]
    assert installs == ["install -y -q rpm"]
    assert (tmp_path / "dockerd-ran").read_text().split() == ["--bridge=none", "--iptables=false"]


def test_an_engine_that_answers_is_not_started_again(tmp_path):
    (tmp_path / "dockerd-ran").write_text("earlier\n")
    result = _setup_host(tmp_path, client=True)
    assert result.returncode == 0, result.stderr
    assert _apt_calls(tmp_path) == [] and (tmp_path / "dockerd-ran").read_text() == "earlier\n"
    assert result.stderr == ""  # nothing to do, nothing said


@pytest.mark.parametrize("how", ["socket", "DOCKER_HOST"])
def test_an_engine_without_a_client_keeps_docker_io_away(tmp_path, how):
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(tmp_path / "engine.sock"))
    try:
        result = _setup_host(tmp_path, client=False, missing="docker.io",
                             socket_path=tmp_path / "engine.sock" if how == "socket" else None,
                             docker_host="tcp://127.0.0.1:2376" if how == "DOCKER_HOST" else "")
    finally:
        listening.close()
    assert result.returncode == 0, result.stderr
    assert _apt_calls(tmp_path) == [] and not (tmp_path / "dockerd-ran").exists()


def test_a_host_without_docker_gets_docker_io_and_a_dockerd(tmp_path):
    result = _setup_host(tmp_path, client=False, missing="docker.io mmdebstrap")
    assert result.returncode == 0, result.stderr
    assert [call for call in _apt_calls(tmp_path) if call.startswith("install")] == [
        "install -y -q docker.io mmdebstrap"]
    assert (tmp_path / "dockerd-ran").exists() and "starting dockerd" in result.stderr


def test_setup_host_needs_root(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["setup-host"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run it as root (sudo qmail-pkg setup-host)" in err


def test_run_sh_sets_up_through_the_same_script():
    run_sh = (Path(__file__).resolve().parents[1] / "run.sh").read_text()
    assert "sh builder/setup-host.sh" in run_sh
    for tool_package in ("docker.io", "mmdebstrap", "qemu-user-static", "piuparts"):
        assert tool_package not in run_sh, tool_package  # listed once, in the script
