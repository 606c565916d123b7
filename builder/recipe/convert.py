"""Conversion of a recipe that passed every check into the model's frozen
dataclasses (later stages never see YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder.package import PACKAGERS
from builder.platforms import platform_for
from builder.recipe.model import (
    Accounts,
    BuildOption,
    Cross,
    Group,
    Layout,
    PackageMeta,
    Patch,
    Recipe,
    Services,
    Source,
    Target,
    User,
)
from builder.recipe.rules import patch_file
from builder.recipe.yamlpos import Position, Report


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


def _package(raw: dict[str, Any]) -> PackageMeta:
    return PackageMeta(**raw)


def _source(raw: dict[str, Any]) -> Source:
    digests = {algo: raw[algo].lower() for algo in ("sha256", "sha512", "md5") if algo in raw}
    return Source(
        name=raw["name"], filename=raw["filename"], urls=_strings(raw["urls"]), size=raw.get("size"), **digests
    )


def _accounts(raw: dict[str, Any]) -> Accounts:
    return Accounts(
        groups=tuple(Group(**group) for group in raw["groups"]),
        users=tuple(User(**user) for user in raw["users"]),
    )


def _tuples(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: _strings(value) if isinstance(value, list) else value for key, value in raw.items()}


def _target(raw: dict[str, Any], data: dict[str, Any], patches: tuple[Patch, ...], position: Position) -> Target:
    build = data["build"]
    env = dict(build.get("env", {}))
    env.update(raw.get("env", {}))  # target wins, build's order is kept
    architectures = tuple(raw.get("architectures") or [raw.get("architecture", "amd64")])
    items = raw.get("steps_before", []) + raw.get("steps", build["steps"]) + raw.get("steps_after", [])
    steps = [item["run"] if isinstance(item, dict) else item for item in items]
    when = [_step_rule(item) for item in items]
    phases = [step_phase(item) for item in items]
    name = raw["name"]
    return Target(
        name=name,
        family=raw["family"],
        release=raw["release"],
        image=raw["image"],
        formats=_strings(raw["formats"]),
        make=raw.get("make", build.get("make", "make")),
        jobs=raw.get("jobs", build.get("jobs", 0)),
        env=tuple(env.items()),
        cflags=_strings(raw.get("cflags")),
        ldflags=_strings(build.get("ldflags")) + _strings(raw.get("ldflags")),
        steps=tuple(steps),
        patches=tuple(patch for patch in patches if not patch.targets or name in patch.targets),
        accounts=_accounts(raw["accounts"] if "accounts" in raw else data["accounts"]),
        suite=raw.get("suite", ""),
        architecture=architectures[0],
        architectures=architectures,
        native_builder=raw.get("builder", platform_for(raw["family"]).default_builder),
        cross=_cross(raw["cross"]) if "cross" in raw else None,
        method="cross" if "cross" in raw and architectures[0] in raw["cross"]["architectures"] else "native",
        source_date_epoch=build.get("source_date_epoch"),
        position=position,
        step_when=tuple(when) if any(when) else (),
        step_phases=tuple(phases),
    )


def _cross(raw: dict[str, Any]) -> Cross:
    return Cross(toolchain=raw["toolchain"], architectures=_strings(raw["architectures"]))


def step_phase(item: Any) -> str:
    return item.get("phase", "build") if isinstance(item, dict) else "build"


def _step_rule(item: Any) -> tuple[str, bool] | None:
    if isinstance(item, dict) and ("if" in item or "unless" in item):
        return (item["if"], True) if "if" in item else (item["unless"], False)
    return None


def _patch(raw: dict[str, Any], recipe_path: Path) -> Patch:
    return Patch(
        file=patch_file(recipe_path, raw["file"]),
        source=raw["source"],
        strip=raw.get("strip", 1),
        targets=_strings(raw.get("targets")),
        architectures=_strings(raw.get("architectures")),
    )


def convert(data: dict[str, Any], recipe_path: Path, report: Report) -> Recipe:
    patches = tuple(_patch(raw, recipe_path) for raw in data.get("patches", []))
    return Recipe(
        path=recipe_path,
        package=_package(data["package"]),
        sources=tuple(_source(raw) for raw in data["sources"]),
        layout=Layout(**_tuples(data.get("layout", {}))),
        services=Services(**_tuples(data.get("services", {}))),
        targets=tuple(
            _target(raw, data, patches, report.value_position(("targets", index)))
            for index, raw in enumerate(data["targets"])
        ),
        options={packager.options_key: packager.options(data.get(packager.options_key, {}))
                 for packager in PACKAGERS.values()},
        build_options=tuple(BuildOption(name, spec["default"], spec["description"])
                            for name, spec in data.get("options", {}).items()),
    )
