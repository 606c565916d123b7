"""`qmail-pkg selftest`: build the built-in miniature qmail + syncdir pair with
the real recipe, then install it in a clean sandbox and check it. Needs no
network: proves the engine, the images and the packager before real sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .fixtures import write_sources
from .pipeline import BuildOptions, build_target
from .recipe.loader import load_recipe
from .verify.checks import CheckResult
from .verify.install import install_and_check


def default_recipe() -> Path:
    if os.environ.get("QMAIL_PKG_RECIPE"):
        return Path(os.environ["QMAIL_PKG_RECIPE"])
    return Path(__file__).resolve().parents[1] / "recipes" / "qmail-syncdir.yaml"


def _dpkg_deb_checks(artifact: Path) -> list[CheckResult]:
    if not shutil.which("dpkg-deb"):
        return [CheckResult("dpkg-deb --info", False, "dpkg-deb is not installed on this host")]
    info = subprocess.run(["dpkg-deb", "--info", str(artifact)], capture_output=True, text=True)
    contents = subprocess.run(["dpkg-deb", "--contents", str(artifact)], capture_output=True, text=True)
    setuid = [line for line in contents.stdout.splitlines() if line.startswith("-rws") and "qmail-queue" in line]
    return [
        CheckResult("dpkg-deb --info", info.returncode == 0 and "Package:" in info.stdout, info.stderr.strip()[:200] or "control readable"),
        CheckResult("setuid qmail-queue in the archive", bool(setuid), setuid[0] if setuid else "no -rws qmail-queue entry"),
    ]


def run_selftest(out: Path | None, target_name: str = "debian-12") -> int:
    recipe = load_recipe(default_recipe())
    target = recipe.target(target_name)
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-selftest-") as tmp:
        work = Path(tmp)
        trees = write_sources(work / "sources")
        options = BuildOptions(
            out_dir=out or work / "dist",
            sources_dir=work / "empty-cache",
            overrides=tuple(trees.items()),
        )
        result = build_target(recipe, target, options)
        artifact = next(a for a in result.artifacts if a.format == "deb")
        checks = _dpkg_deb_checks(artifact.path)
        checks += install_and_check(recipe, target, artifact.path, result.record_path)
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.evidence}")
    failed = sum(not c.passed for c in checks)
    print(f"selftest: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0
