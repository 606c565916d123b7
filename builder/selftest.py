"""`qmail-pkg selftest`: build the built-in miniature qmail + syncdir pair with
the recipe (pinned to the miniature tarballs, so an official build from a
source cache), read the package back with its own packager, then install it
in a clean sandbox and check it. Needs no network: proves the engine, the
images and the packager before real sources."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .evidence import CheckResult
from .fixtures import miniature_recipe
from .package import PACKAGERS
from .pipeline import BuildOptions, build_target
from .recipe.loader import load_recipe
from .shipped import example_recipe
from .verify.install import install_and_check


def default_recipe() -> Path:
    if os.environ.get("QMAIL_PKG_RECIPE"):
        return Path(os.environ["QMAIL_PKG_RECIPE"])
    return example_recipe()


def _read_back(path: Path, fmt: str, prefix: str) -> list[CheckResult]:
    """The package read back as its publishing would read it: its identity,
    and qmail-queue setuid in the archive."""
    facts = PACKAGERS[fmt].read(path, path.read_bytes())
    queue = next((entry for entry in facts.contents if entry.path == f"{prefix}/bin/qmail-queue"), None)
    return [
        CheckResult(f"{fmt} read back", bool(facts.name and facts.version), f"{facts.name} {facts.version} "
                    f"{facts.architecture}, {len(facts.contents)} entries"),
        CheckResult("setuid qmail-queue in the archive", queue is not None and queue.mode & 0o4000 != 0,
                    queue.describe() if queue else "no qmail-queue entry"),
    ]


def run_selftest(out: Path | None, target_name: str = "debian-12") -> int:
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-selftest-") as tmp:
        work = Path(tmp)
        recipe_path, sources = miniature_recipe(default_recipe(), work / "miniature")
        recipe = load_recipe(recipe_path)
        target = recipe.target(target_name)
        result = build_target(recipe, target, BuildOptions(out_dir=out or work / "dist", sources_dir=sources))
        checks: list[CheckResult] = []
        for artifact in result.artifacts:
            checks += _read_back(artifact.path, artifact.format, recipe.layout.prefix)
            checks += install_and_check(recipe, target, artifact.path, result.record_path)
    for check in checks:
        print(f"{check.word}  {check.name}: {check.evidence}")
    failed = sum(not c.passed for c in checks)
    print(f"selftest: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0
