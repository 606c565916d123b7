"""Build options, as pkgsrc has them: `options:` in the recipe, each on or
off per build (`--with NAME`, `--without NAME`), steps that run only with or
without one (`if:`, `unless:`).

A build whose options differ from the recipe's defaults is a variant, not
the package: it gets another name (qmail-syncdir-no-syncdir), a summary that
says what it lacks, and a build record that says it is not official, so it
can never be taken for the real one or published. The one variant we need
is the power-cut baseline: qmail without syncdir, to show what syncdir buys.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import QmailPkgError
from .model import Recipe

Choices = tuple[tuple[str, bool], ...]  # as given on the command line, in order


class OptionError(QmailPkgError):
    """--with or --without names no option of the recipe."""


def resolve(recipe: Recipe, choices: Choices) -> dict[str, bool]:
    """Every option's value for one build: the recipe's defaults, then the
    choices in order (the last one for a name wins)."""
    values = recipe.option_defaults()
    for name, value in choices:
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            flag = "--with" if value else "--without"
            raise OptionError(f"{recipe.path}: {flag} {name}: the recipe has no option {name!r} (options: {known})")
        values[name] = value
    return values


def differences(recipe: Recipe, values: dict[str, bool]) -> dict[str, bool]:
    """The options set otherwise than the recipe's defaults."""
    defaults = recipe.option_defaults()
    return {name: value for name, value in sorted(values.items()) if defaults.get(name) != value}


def variant_recipe(recipe: Recipe, values: dict[str, bool]) -> Recipe:
    """The recipe a build with these option values packages: itself with the
    defaults, else renamed and described as the variant it is."""
    changed = differences(recipe, values)
    if not changed:
        return recipe
    suffix = "".join(f"-{'with' if value else 'no'}-{name}" for name, value in changed.items())
    said = ", ".join(f"{'with' if value else 'without'} {name}" for name, value in changed.items())
    meta = recipe.package
    warning = (f"VARIANT BUILD ({said}): not the {meta.name} package, for comparison only; "
               "never install it on a real system.")
    return replace(recipe, package=replace(
        meta,
        name=f"{meta.name}{suffix}",
        # the recipe's summary would describe what this build lacks
        summary=f"{meta.name} variant {said} (for comparison only)",
        description=f"{warning}\n\n{meta.description}",
    ))
