"""Everything `validate` checks, which is everything a build checks before its
first container starts: the recipe loader's own checks, then a dry run of
the later stages that need no sandbox (the script model, every maintainer
script and service file rendered, every package file name) for every target.

A build that gets past this can still fail in its sandbox (a step exits
non-zero), but never on a value of the recipe.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import BuildError, RecipeError
from .package import packager_for
from .packaging import package_spec
from .plan import DEFAULT_EPOCH, make_plan
from .recipe.loader import load_recipe
from .recipe.model import Recipe, Target
from .scripts import render_service_files, script_model
from .staged import ContentStore, StagedTree


def _dry_run(recipe: Recipe, target: Target, scratch: Path) -> None:
    plan = make_plan(recipe, target, (), jobs=1, epoch=DEFAULT_EPOCH)
    model = script_model(recipe, target, version=f"{plan.version}-{plan.revision}", state=(), smtpd=True, sendmail=True)
    render_service_files(model)
    empty = StagedTree(ContentStore(scratch / target.name), ())
    for fmt in target.formats:
        packager = packager_for(fmt)
        spec = package_spec(plan, empty, model, packager)
        packager.file_name(spec)


def target_problems(recipe: Recipe) -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-preflight-") as scratch:
        for index, target in enumerate(recipe.targets):
            try:
                _dry_run(recipe, target, Path(scratch))
            except (ValueError, TypeError, KeyError, BuildError) as exc:
                line, column = target.position
                problems.append(f"{recipe.path}:{line}:{column}: targets[{index}]: {exc}")
    return problems


def load_checked(path: str | Path) -> Recipe:
    """The recipe, or a RecipeError with every problem validate would print."""
    recipe = load_recipe(path)
    problems = target_problems(recipe)
    if problems:
        raise RecipeError(problems)
    return recipe


def problems_of(paths: Iterable[str | Path]) -> list[str]:
    found: list[str] = []
    for path in paths:
        try:
            load_checked(path)
        except RecipeError as exc:
            found.extend(exc.problems)
    return found
