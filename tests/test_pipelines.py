"""The pipelines `qmail-pkg ci` writes, run or linted as their providers
would: the GitLab pipeline by gitlab-ci-local (shell executor) on the
miniature recipe in a repository holding only the recipe and the pipeline;
the GitHub workflow through actionlint (with shellcheck on every step)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from builder.ci import render_pipeline
from builder.cli import main
from builder.recipe.loader import load_recipe

from .conftest import RECIPE

GITLAB_CI_LOCAL = "4.60.0"  # runs on Node 20
JOB = "[debian-12,docker]"


def _tools_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qmail-pkg-tests"


def test_the_pipelines_install_the_tool_and_publish_only_what_two_builds_agree_on():
    recipe = load_recipe(RECIPE)
    for provider in ("github", "gitlab"):
        text = render_pipeline(provider, recipe, "recipes/qmail-syncdir.yaml")
        for checkout_only in ("run.sh", ".venv", "builder/", "containers/"):
            assert checkout_only not in text, (provider, checkout_only)  # a maintainer's repository holds recipes
        assert 'pipx install --force "$QMAIL_PKG_INSTALL"' in text and " setup-host" in text
        assert "qmail-pkg==0.1.0" in text  # the default: the version that wrote the pipeline
        assert "--recipe \"$RECIPE\" --rebuilt rebuilt --require-provenance" in text
        assert "--no-cache --out rebuilt $QMAIL_PKG_BUILD_FLAGS" in text
    github = yaml.safe_load(render_pipeline("github", recipe, "r.yaml"))
    uploads = [step["with"] for step in github["jobs"]["rebuild"]["steps"] if "upload-artifact" in step.get("uses", "")]
    assert uploads == [{"name": "rebuilt-${{ matrix.target }}", "path": "rebuilt/"}]
    downloads = [step["with"] for step in github["jobs"]["publish"]["steps"]
                 if "download-artifact" in step.get("uses", "")]
    assert {"pattern": "rebuilt-*", "path": "rebuilt", "merge-multiple": True} in downloads
    gitlab = yaml.safe_load(render_pipeline("gitlab", recipe, "r.yaml"))
    assert gitlab["rebuild"]["artifacts"]["paths"] == ["rebuilt/"] and "needs" not in gitlab["publish"]


def test_the_github_workflow_passes_actionlint(tmp_path, monkeypatch):
    actionlint = Path(sys.executable).parent / "actionlint"
    assert actionlint.exists(), "actionlint comes with the test extras: pip install -e '.[test]'"
    assert shutil.which("shellcheck"), "actionlint checks every run: step with shellcheck (qmail-pkg setup-host)"
    monkeypatch.chdir(RECIPE.parents[1])
    workflow = tmp_path / ".github" / "workflows" / "qmail-pkg.yml"
    assert main(["ci", "github", "recipes/qmail-syncdir.yaml", "--out", str(workflow)]) == 0
    result = subprocess.run([str(actionlint), "-no-color", str(workflow)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def gitlab_ci_local() -> Path:
    """gitlab-ci-local, installed with npm into a cache folder once."""
    folder = _tools_cache() / f"gitlab-ci-local-{GITLAB_CI_LOCAL}"
    program = folder / "node_modules" / ".bin" / "gitlab-ci-local"
    if not program.exists():
        assert shutil.which("npm"), "gitlab-ci-local needs Node 20 and npm"
        installed = subprocess.run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                                    f"gitlab-ci-local@{GITLAB_CI_LOCAL}"], capture_output=True, text=True, timeout=900)
        assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert shutil.which("rsync"), "gitlab-ci-local's shell isolation copies with rsync (./run.sh test installs it)"
    return program


def _signing_key(folder: Path) -> str:
    folder.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(folder)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "qmail-pkg pipeline <ci@example.org>",
                    "rsa2048", "sign", "never"], env=env, check=True, capture_output=True)
    return subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys"], env=env, check=True,
                          capture_output=True, text=True).stdout


def _job_minutes(output: str) -> dict[str, str]:
    return dict(re.findall(r"^(\S+(?: \[[^\]]*\])?)\s+finished in ([\d.]+ \w+)", output, re.MULTILINE))


def test_the_gitlab_pipeline_builds_verifies_rebuilds_and_publishes_the_miniature(engine, wheel, gitlab_ci_local,
                                                                                   tmp_path, monkeypatch, capsys):
    """The generated .gitlab-ci.yml, unchanged, in a throwaway repository
    holding only recipes/ and the pipeline: qmail-pkg installed with pipx from
    a wheel of this checkout, the debian-12 build job (build, verify,
    piuparts) and its rebuild green, then publish (as on a tag) signs what
    both agree on, and refuses once the rebuild's output differs."""
    mini, project = tmp_path / "mini", tmp_path / "project"
    assert main(["miniature", str(mini)]) == 0
    shutil.copytree(mini / "recipes", project / "recipes")
    monkeypatch.chdir(project)
    assert main(["ci", "gitlab", "recipes/qmail-syncdir.yaml"]) == 0
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit",
                                                     "-qm", "recipes and pipeline"]):
        subprocess.run(["git", *command], cwd=project, check=True, capture_output=True)
    assert sorted(p.name for p in project.iterdir()) == [".git", ".gitlab-ci.yml", "recipes"]
    bin_dir = tmp_path / "bin"  # pipx, as a runner has it (the jobs install qmail-pkg with it)
    bin_dir.mkdir()
    (bin_dir / "pipx").symlink_to(Path(sys.executable).parent / "pipx")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    variables = {"QMAIL_PKG_INSTALL": str(wheel), "QMAIL_PKG_SOURCES": str(mini / "sources"),
                 "QMAIL_PKG_BUILD_FLAGS": "--revision 7", "QMAIL_PKG_PIUPARTS_BASES": str(tmp_path / "bases")}
    command = [str(gitlab_ci_local), "--force-shell-executor", "--shell-isolation"]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *args], cwd=project, env=env, capture_output=True, text=True, timeout=1800)

    started = time.monotonic()
    pipeline = run(f"build: {JOB}", f"rebuild: {JOB}")
    assert pipeline.returncode == 0, pipeline.stdout[-6000:] + pipeline.stderr[-2000:]
    built = time.monotonic() - started
    assert "PASS  piuparts debian-12 qmail-syncdir_1.03-7+deb12_amd64.deb" in pipeline.stdout
    assert "qmail-syncdir_1.03-7+deb12_amd64.deb: OK" in pipeline.stdout  # the rebuild's sha256 comparison
    first = (project / "dist" / "debian-12" / "qmail-syncdir_1.03-7+deb12_amd64.deb").read_bytes()
    assert (project / "rebuilt" / "debian-12" / "qmail-syncdir_1.03-7+deb12_amd64.deb").read_bytes() == first

    tag = ["--variable", "CI_COMMIT_TAG=v1", "--variable", f"QMAIL_PKG_SIGNING_KEY={_signing_key(tmp_path / 'gpg')}"]
    published = run(*tag, "publish")
    assert published.returncode == 0, published.stdout[-6000:] + published.stderr[-2000:]
    assert "added      pool/main/q/qmail-syncdir/qmail-syncdir_1.03-7+deb12_amd64.deb" in published.stdout
    assert (project / "repo" / "dists" / "bookworm" / "InRelease").is_file()

    (rebuilt,) = (project / ".gitlab-ci-local" / "artifacts").glob("rebuild*debian-12*/rebuilt/debian-12/*.deb")
    rebuilt.write_bytes(first + b"\0")  # the rebuild's output handed to publish now differs
    refused = run(*tag, "publish")
    assert refused.returncode != 0 and "the independent rebuild made other bytes" in refused.stdout
    with capsys.disabled():
        times = ", ".join(f"{job} {took}" for job, took in _job_minutes(pipeline.stdout + published.stdout).items())
        print(f"\ngitlab-ci-local on the miniature recipe: {times}; build and rebuild {built:.0f} s")
