"""Builds spread over several engines, and the CI pipelines we hand out.

The two-engine test starts a second, real dockerd (its own data root,
socket and containerd) beside the one the suite uses, sends el-9 there
with --engine, builds debian-12 locally in the same run, and asks of the
result what a team relies on: the same bytes as a one-engine build, and the
work really done where the settings said.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from builder.cli import main
from builder.engines import Engine, EngineError, engine_for, load_settings, parse_flag

from .conftest import RECIPE, artifact_of, with_patches


# -- settings ---------------------------------------------------------------
def test_settings_file_first_match_wins_and_patterns_are_fnmatch(tmp_path):
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_text("PEM\n")  # TLS files must exist when the settings are read
    settings = tmp_path / "builders.yaml"
    settings.write_text(
        "builders:\n"
        "  - targets: ['debian-1?', test-*]\n"
        "    docker: ssh://builder@big-box\n"
        "  - targets: [debian-12]\n"
        "    docker: unix:///never/used.sock\n"
        "  - targets: [el-*]\n"
        "    docker: tcp://el-builder:2376\n"
        f"    tls: {{ca: {tmp_path}/ca.pem, cert: {tmp_path}/cert.pem, key: {tmp_path}/key.pem}}\n"
        "  - targets: [freebsd-*]\n"
        "    jail: ssh://builder@freebsd-host\n"
    )
    engines = load_settings(settings)
    assert engine_for("debian-12", engines).url == "ssh://builder@big-box"  # the first entry that matches
    assert engine_for("test-anything", engines).url == "ssh://builder@big-box"  # the entry's second pattern
    assert dict(engine_for("el-9", engines).tls) == {name: f"{tmp_path}/{name}.pem" for name in ("ca", "cert", "key")}
    assert engine_for("freebsd-14", engines).kind == "jail"
    assert engine_for("debian-9x", engines) is None  # nobody named it: the local engine


@pytest.mark.parametrize("text, message", [
    ("builders: {}", "a list under 'builders'"),
    ("builders:\n  - targets: [a]\n", "give exactly one of docker: (a Docker engine) or jail:"),
    ("builders:\n  - targets: [a]\n    docker: unix:///x\n    jail: ssh://h\n", "give exactly one of docker:"),
    ("builders:\n  - targets: [a]\n    docker: http://x\n", "expected unix:///PATH, ssh://[USER@]HOST[:PORT] or tcp://"),
    ("builders:\n  - targets: [a]\n    docker: 'ssh://h x'\n", "expected ssh://[USER@]HOST[:PORT]"),
    ("builders:\n  - targets: []\n    docker: unix:///x\n", "targets: must be a list of target name patterns"),
    ("builders:\n  - targets: [a]\n    docker: tcp://h:1\n    tls: {password: x}\n", "tls takes ca, cert and key"),
    ("builders:\n  - targets: [a]\n    docker: unix:///x\n    shell: rm\n", "unknown key 'shell'"),
    ("builders: [\n", "YAML syntax error at line 2, column 1"),
])
def test_bad_settings_are_one_clear_error(tmp_path, text, message):
    settings = tmp_path / "builders.yaml"
    settings.write_text(text)
    with pytest.raises(EngineError, match=re.escape(message)):
        load_settings(settings)


def test_engine_flag_and_settings_errors_stop_the_build_before_any_container(tmp_path, capsys, monkeypatch):
    # the kind is said, not guessed from the pattern: jail+ssh:// is a jail host
    assert parse_flag("freebsd-*=jail+ssh://b@h") == Engine("freebsd-*", "ssh://b@h", "jail")
    assert parse_flag("freebsd-*=ssh://b@h") == Engine("freebsd-*", "ssh://b@h", "docker")
    assert parse_flag("debian-*=unix:///run/other.sock").kind == "docker"
    with pytest.raises(SystemExit) as exit_info:
        main(["build", str(RECIPE), "--target", "debian-12", "--engine", "debian-12", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2 and "expected PATTERN=URL" in capsys.readouterr().err
    monkeypatch.setenv("QMAIL_PKG_BUILDERS", str(tmp_path / "missing.yaml"))
    assert main(["build", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path / "o")]) != 0
    assert "missing.yaml: no such file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_an_engine_that_does_not_answer_is_named(tmp_path, capsys, fixture_sources):
    sources = [f"--source={name}={path}" for name, path in fixture_sources.items()]
    code = main(["build", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path / "o"), "--no-cache",
                 "--engine", f"debian-*=unix://{tmp_path}/nobody.sock", *sources])
    err = capsys.readouterr().err
    assert code != 0 and f"the Docker engine at unix://{tmp_path}/nobody.sock does not answer" in err
    assert not list((tmp_path / "o").glob("debian-12/*.deb"))


# -- a second real engine -------------------------------------------------------
@pytest.fixture(scope="module")
def second_engine(engine):
    """A second dockerd on this host: a stand-in for another build machine
    (ssh:// and tcp:// reach an engine through the same client code)."""
    root = Path(tempfile.mkdtemp(prefix="qp2-", dir="/var/tmp"))  # short: unix socket paths are bounded
    socket = root / "d.sock"
    log = open(root / "dockerd.log", "wb")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "x"), "-H", f"unix://{socket}",
         "--pidfile", str(root / "d.pid"), "--bridge=none", "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"unix://{socket}"
    try:
        for _ in range(60):
            if subprocess.run(["docker", "-H", url, "info"], capture_output=True).returncode == 0:
                break
            if daemon.poll() is not None:
                pytest.fail(f"the second dockerd exited: {(root / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(1)
        else:
            pytest.fail("the second dockerd did not answer within 60 s")
        yield url
    finally:
        subprocess.run(["docker", "-H", url, "rm", "-f", *subprocess.run(
            ["docker", "-H", url, "ps", "-aq"], capture_output=True, text=True).stdout.split()], capture_output=True)
        daemon.terminate()
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", str(root / "x")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_matrix_spread_over_two_engines_gives_the_same_bytes(second_engine, built, built_rpm, miniature,
                                                               tmp_path, capsys):
    since = str(int(time.time()) - 1)
    sources = ["--sources", str(miniature[1])]
    out = tmp_path / "spread"
    code = main(["build", str(miniature[0]), "--target", "debian-12", "--target", "el-9", "--jobs", "2", "--no-cache",
                 "--revision", "1", "--out", str(out), "--engine", f"el-*={second_engine}", "--json", *sources])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]
    summary = json.loads(printed.out)
    assert {row["target"] for row in summary} == {"debian-12", "el-9"}

    # the same bytes as the one-engine builds of the session fixtures
    deb = next(out.glob("debian-12/*.deb"))
    rpm = next(out.glob("el-9/*.rpm"))
    assert _sha256(deb) == _sha256(artifact_of(built, "deb"))
    assert _sha256(rpm) == _sha256(artifact_of(built_rpm, "rpm"))

    # and the work was done where the settings said: the record names the
    # engine, and the second engine saw a build container for el-9 only
    records = {path.parent.name: json.loads(path.read_text()) for path in out.glob("*/*.build.json")}
    assert records["el-9"]["engine"] == second_engine and records["debian-12"]["engine"] == "local"
    events = subprocess.run(
        ["docker", "-H", second_engine, "events", "--since", since, "--until", str(int(time.time()) + 1),
         "--filter", "type=container", "--filter", "event=create", "--format", "{{json .Actor.Attributes}}"],
        capture_output=True, text=True, check=True).stdout.split("\n")
    targets = [json.loads(line).get("qmail-pkg.target") for line in events if line.strip()]
    assert targets and set(targets) == {"el-9"}
    assert subprocess.run(["docker", "-H", second_engine, "ps", "-aq"], capture_output=True, text=True).stdout == ""


# -- CI pipelines -----------------------------------------------------------------
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}


def _shell_blocks(provider: str, document: dict) -> list[str]:
    if provider == "github":
        blocks = [step["run"] for job in document["jobs"].values() for step in job["steps"] if "run" in step]
        # expressions are filled in by the runner before the shell sees them
        return [re.sub(r"\$\{\{[^}]*\}\}", "debian-12", block) for block in blocks]
    return ["\n".join(job.get("before_script", []) + job.get("script", [])) for job in document.values()
            if isinstance(job, dict) and ("script" in job or "before_script" in job)]


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_ci_pipelines_are_valid_for_their_provider_and_their_shell_is_clean(provider, tmp_path, monkeypatch):
    monkeypatch.chdir(RECIPE.parents[1])
    destination = tmp_path / f"{provider}.yml"
    assert main(["ci", provider, "recipes/qmail-syncdir.yaml", "--out", str(destination)]) == 0
    checked = subprocess.run(["check-jsonschema", "--builtin-schema", SCHEMAS[provider], str(destination)],
                             capture_output=True, text=True, env={**os.environ, "PATH": _venv_path()})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document = yaml.safe_load(destination.read_text())
    text = destination.read_text()
    for name in ("debian-11", "debian-12", "debian-13", "el-8", "el-9", "el-10", "freebsd-14", "freebsd-15"):
        assert name in text
    assert "--no-cache" in text and "sha256sum -c" in text  # the independent rebuild is compared
    blocks = _shell_blocks(provider, document)
    assert blocks
    for block in blocks:
        script = tmp_path / "block.sh"
        script.write_text("#!/bin/sh\n" + block + "\n")
        result = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, block + "\n" + result.stdout


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_ci_writes_an_odd_recipe_path_quoted_and_it_reads_back_exactly(provider, tmp_path, monkeypatch):
    """A path with spaces, quotes and shell syntax is the pipeline's RECIPE
    variable, read back byte for byte; the scripts only say "$RECIPE"."""
    odd = tmp_path / "my recipes $(touch pwned) 'q' `x`"
    odd.mkdir()
    shutil.copy(RECIPE, odd / "r.yaml")
    with_patches(odd)
    monkeypatch.chdir(tmp_path)
    recipe_path = f"{odd.name}/r.yaml"
    destination = tmp_path / "p.yml"
    assert main(["ci", provider, recipe_path, "--out", str(destination)]) == 0
    document = yaml.safe_load(destination.read_text())
    written = document["env"]["RECIPE"] if provider == "github" else document["variables"]["RECIPE"]["value"]
    assert written == recipe_path
    checked = subprocess.run(["check-jsonschema", "--builtin-schema", SCHEMAS[provider], str(destination)],
                             capture_output=True, text=True, env={**os.environ, "PATH": _venv_path()})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for block in _shell_blocks(provider, document):
        assert "pwned" not in block and '"$RECIPE"' in block or "RECIPE" not in block
    assert not (tmp_path / "pwned").exists()


def _venv_path() -> str:
    import sys

    return f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
