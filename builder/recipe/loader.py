"""Load a YAML recipe, validate it and turn it into the model's dataclasses.

Every problem is reported, all at once, as ``FILE:LINE:COL: field.path: message``:
yamlpos.py reads the YAML with positions, schema.py checks it against the
JSON Schema, rules.py checks what a schema cannot express, and only a
recipe without any problem is converted (convert.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from builder.errors import RecipeError
from builder.recipe.convert import convert
from builder.recipe.model import Recipe
from builder.recipe.rules import check_references, check_text
from builder.recipe.schema import check_schema, describe, schema_text
from builder.recipe.yamlpos import DOCUMENT, Report, parse, read_text


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and convert one recipe; RecipeError lists every problem."""
    problems, recipe = _load(path)
    if problems or recipe is None:
        raise RecipeError(problems)
    return recipe


def validate_paths(paths: Iterable[str | Path]) -> list[str]:
    """Every problem of every recipe file; an empty list means all are valid."""
    problems: list[str] = []
    for path in paths:
        problems.extend(_load(path)[0])
    return problems


def _load(path: str | Path) -> tuple[list[str], Recipe | None]:
    report = Report(file=str(path))
    text = read_text(path, report)
    data = parse(text, report) if text is not None else None
    if isinstance(data, dict):
        recipe_path = Path(path).absolute()
        check_text(data, DOCUMENT, report)
        check_schema(data, report)
        check_references(data, recipe_path, report)
        if not report.found:
            return [], convert(data, recipe_path, report)
    elif data is not None:
        report.at_value(DOCUMENT, f"a recipe must be a mapping of keys, not {describe(data)}")
    elif not report.found:  # `---` alone or `~`: a document holding null
        report.add((1, 1), DOCUMENT, "empty recipe")
    return report.problems(), None


__all__ = ["load_recipe", "schema_text", "validate_paths"]
