"""`qmail-pkg lint`: the format's own linter (the packager's: lintian,
rpmlint, pkg's read-back), and the programs the package carries checked
against the target's systems (binaries.py), for the target and architecture
its build record names."""

from __future__ import annotations

from pathlib import Path

from ..evidence import CheckResult
from ..package import PACKAGERS
from ..platforms import platform_for
from ..recipe.model import Recipe
from ..record import BuildRecord, RecordError
from .binaries import check_programs

MAX_PACKAGE = 2 << 30


def lint_artifact(path: Path, recipe: Recipe) -> list[CheckResult]:
    packager = PACKAGERS[path.suffix.lstrip(".")]
    results = [packager.lint(path, recipe)]
    try:
        record = BuildRecord.beside(path)
        target = recipe.target(record.target).for_architecture(record.architecture)
    except (RecordError, KeyError) as exc:
        return results + [CheckResult("programs", False, f"cannot tell the target: {exc}")]
    data = path.read_bytes()
    if len(data) > MAX_PACKAGE:
        return results + [CheckResult("programs", False, f"{path.name} is larger than {MAX_PACKAGE} bytes")]
    rules = platform_for(target.family).binary_rules(target)
    syncdir = dict(record.options).get("syncdir", True)
    return results + check_programs(packager.files(path, data), rules, recipe.layout.prefix, syncdir)


__all__ = ["lint_artifact"]
