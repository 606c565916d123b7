"""The recipe's JSON Schema and the one-line messages for what it finds.

The schema lives in schema.json; the enums of families and formats and one
options section per packager are filled in from the registries, so adding a
format or a family needs no edit here. Patterns are read as ECMA-262 regexes,
as JSON Schema means them."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Iterator

import jsonschema

from builder.package import PACKAGERS
from builder.platforms import PLATFORMS
from builder.recipe.yamlpos import FieldPath, Report, show
from builder.toolchains import TOOLCHAINS


def schema_text() -> str:
    """The JSON schema of the recipe format (draft 2020-12), with the enums
    and packager sections filled in from the registries."""
    return json.dumps(schema(), indent=2) + "\n"


def _fill_enums(node: Any, enums: dict[str, list[str]]) -> None:
    if isinstance(node, dict):
        source = node.pop("x-enum-from", None)
        if source is not None:
            node["enum"] = enums[source]
        for value in node.values():
            _fill_enums(value, enums)
    elif isinstance(node, list):
        for value in node:
            _fill_enums(value, enums)


@functools.cache
def schema() -> dict[str, Any]:
    schema = json.loads(resources.files("builder.recipe").joinpath("schema.json").read_text(encoding="utf-8"))
    _fill_enums(schema, {"platforms": sorted(PLATFORMS), "packagers": sorted(PACKAGERS),
                          "toolchains": sorted(TOOLCHAINS)})
    for packager in PACKAGERS.values():
        schema["properties"][packager.options_key] = packager.options_schema
    return schema


def format_families() -> dict[str, str]:
    return {fmt: packager.family for fmt, packager in PACKAGERS.items()}


def _is_int(_checker: Any, instance: Any) -> bool:
    # jsonschema counts 1.0 as an integer; a recipe should say 1
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """JSON Schema patterns are ECMA-262 regexes, where `$` matches only at
    the very end. Python's `$` also matches before a final newline, which let
    "libc6\\n" pass `^...$`: read every unescaped `$` as `\\Z`."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any,
             schema: dict[str, Any]) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("integer", _is_int)
    cls = jsonschema.validators.extend(base, {"pattern": _pattern}, type_checker=checker)
    return cls(schema())


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "number": "a number",
}


def describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"  # date, bytes... from YAML 1.1 scalars or tags


def _type_message(expected: Any, value: Any) -> str:
    if expected == "string" and value is not None and not isinstance(value, (list, dict)):
        # YAML read `1.03`, `yes` or `2024-01-01` as a number, boolean or date
        return "must be a string (quote it)"
    names = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
    return f"must be {wanted}, not {describe(value)}"


def _message(error: jsonschema.ValidationError) -> str:
    custom = error.schema.get("x-messages", {}) if isinstance(error.schema, dict) else {}
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind in custom:
        return str(custom[kind])
    if kind == "type":
        return _type_message(expected, value)
    if kind == "pattern":
        return f"{show(value)} does not match {expected}"
    if kind == "enum":
        return f"{show(value)} is not one of: {', '.join(map(str, expected))}"
    if kind == "const":
        return f"must be {expected!r}"
    if kind == "minimum":
        return f"must be at least {expected}"
    if kind == "maximum":
        return f"must be at most {expected}"
    if kind in ("minItems", "minLength"):
        return "must not be empty" if expected == 1 else f"must have at least {expected} items"
    if kind == "uniqueItems":
        return "items must be unique"
    return error.message


def check_schema(data: Any, report: Report) -> None:
    for error in _validator().iter_errors(data):
        path: FieldPath = tuple(error.absolute_path)
        if report.is_broken(path):
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            for key in _unexpected_keys(error.instance, error.schema):
                report.at_key(path + (key,), f"unknown key {show(key)}")
        elif error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    report.at_key(path, f"missing required key {key!r}")
        elif "propertyNames" in error.relative_schema_path and isinstance(error.instance, str):
            # the failing "instance" is a key of the mapping at `path`
            report.at_key(path + (error.instance,), f"{show(error.instance)} {_message(error)}")
        else:
            report.at_value(path, _message(error))


def _unexpected_keys(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    known = schema.get("properties", {})
    return [key for key in instance if key not in known]
