"""Everything `validate` checks, which is everything a build checks before its
first container starts: the recipe loader's own checks, then a dry run of
the later stages that need no sandbox (the script model, every maintainer
script and service file rendered, every package file name) for every target.

A build that gets past this can still fail in its sandbox (a step exits
non-zero), but never on a value of the recipe.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import BuildError, RecipeError
from .package import packager_for
from .recipe import load_recipe
from .recipe.model import Recipe, Target
from .scripts import render_maintainer_scripts, render_service_files, script_model


def _dry_run(recipe: Recipe, target: Target) -> None:
    model = script_model(
        recipe, target, version=f"{recipe.package.version}-{recipe.package.release}",
        state=(), smtpd=True, sendmail=True,
    )
    render_service_files(model)
    for fmt in target.formats:
        render_maintainer_scripts(model, packager_for(fmt).script_set)


def target_problems(recipe: Recipe) -> list[str]:
    problems = []
    for index, target in enumerate(recipe.targets):
        try:
            _dry_run(recipe, target)
        except (ValueError, TypeError, KeyError, BuildError, NotImplementedError) as exc:
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
