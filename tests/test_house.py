"""The house's shape, checked: imports run one way, the mechanism names no
family, each registry lists every format, family and toolchain the recipe
schema accepts."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from builder.environment import BACKENDS
from builder.package import PACKAGERS
from builder.platforms import PLATFORMS, platform_for
from builder.recipe.loader import load_recipe
from builder.recipe.schema import schema
from builder.toolchains import TOOLCHAINS

from .conftest import ROOT

BUILDER = ROOT / "builder"
LARGEST_MODULE = 450  # lines: one idea per file


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(BUILDER.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The builder modules `name` imports at any depth of its body,
    resolved as Python resolves them (relative names, submodules named in
    `from package import module`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    # importing a.b.c runs a/__init__ and a/b/__init__ first: those are edges
    # too, but for the packages `name` itself sits in (they ran before it did)
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    closure = set()
    for module in found:
        parts = module.split(".")
        closure.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {module for module in closure - own if module in known}


def import_graph() -> dict[str, set[str]]:
    table = modules()
    known = set(table)
    return {name: imported(name, path, known) for name, path in table.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)  # for this walk only: other tests depend on the default
    try:
        for node in graph:
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(previous)
    return found


def test_no_module_imports_in_a_circle():
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    # a package's __init__ is an edge: importing builder.package.base runs builder.package first
    table = modules()
    assert "builder.package" in imported("builder.repo.admit", table["builder.repo.admit"], set(table))


def test_no_import_inside_a_function_or_behind_type_checking():
    """An import in a function (or only for the type checker) hides a
    circle instead of removing it."""
    hidden = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                hidden += [f"{name}:{sub.lineno}" for sub in ast.walk(node)
                           if isinstance(sub, (ast.Import, ast.ImportFrom))]
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                hidden.append(f"{name}:{node.lineno} (TYPE_CHECKING)")
    assert hidden == []


def test_the_sandbox_mechanism_names_no_family():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("builder.sandbox"):
            above = sorted(t for t in targets if t.startswith(("builder.platforms", "builder.package", "builder.verify",
                                                               "builder.environment", "builder.pipeline")))
            assert above == [], f"{name} imports {above}"
    for family in PLATFORMS:
        for path in (BUILDER / "sandbox").glob("*.py"):
            code = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("#"))
            assert f'"{family}"' not in code and f"'{family}'" not in code, (path, family)


def test_one_idea_per_file():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert max(sizes.values()) <= LARGEST_MODULE, sorted(sizes.items(), key=lambda item: -item[1])[:3]


# -- registries: what the schema accepts, each registry provides ---------------------------
# The schema's enums for these come from the registries (x-enum-from), so a new
# family, format or toolchain is accepted exactly when it is registered.
FILLED = {("$defs", "target", "properties", "family"): "platforms",
          ("$defs", "target", "properties", "formats", "items"): "packagers",
          ("$defs", "target", "properties", "cross", "properties", "toolchain"): "toolchains"}
PACKAGER_PARTS = ("read", "files", "lint", "build", "file_name", "version_of", "architecture_of", "relations_of",
                  "own_paths", "same_entry", "options")
WRITER_PARTS = ("publish", "listing", "instructions")
VERBS = ("install", "upgrade", "remove", "verify", "version", "installed")


def node_at(tree: dict, path: tuple[str, ...]) -> dict:
    for key in path:
        tree = tree[key]
    return tree


def test_the_schema_takes_families_formats_and_toolchains_from_the_registries():
    raw = json.loads((BUILDER / "recipe" / "schema.json").read_text())
    filled = schema()
    registries = {"platforms": PLATFORMS, "packagers": PACKAGERS, "toolchains": TOOLCHAINS}
    for path, source in FILLED.items():
        assert node_at(raw, path).get("x-enum-from") == source, path
        assert set(node_at(filled, path)["enum"]) == set(registries[source]), path
    assert set(node_at(filled, ("$defs", "target", "properties", "builder"))["enum"]) == set(BACKENDS)


def test_every_family_has_one_platform_with_every_verb():
    for family, platform in PLATFORMS.items():
        assert platform.family == family and platform_for(family) is platform
        for verb in VERBS:
            assert getattr(platform.package_manager, verb), (family, verb)
        assert platform.noise_paths, family  # what verify does not judge the package by
        assert {"tcpserver", "multilog"} <= set(platform.program_packages), family
        assert "{package}" in platform.program_install, family
        assert platform.default_builder in BACKENDS, family
        assert any(packager.family == family for packager in PACKAGERS.values()), family


def test_every_format_has_one_packager_with_its_linter_reader_and_writer():
    for fmt, packager in PACKAGERS.items():
        assert packager.format == fmt and packager.family in PLATFORMS
        for part in PACKAGER_PARTS:
            assert callable(getattr(packager, part, None)), (fmt, part)
        for part in WRITER_PARTS:
            assert callable(getattr(packager.repository, part, None)), (fmt, part)
        assert packager.options_key in schema()["properties"], fmt


def test_every_target_of_the_recipe_is_served_by_the_registries():
    recipe = load_recipe(ROOT / "recipes" / "qmail-syncdir.yaml")
    for target in recipe.targets:
        assert target.family in PLATFORMS
        assert set(target.formats) <= set(PACKAGERS)
        assert target.native_builder in BACKENDS
        if target.cross is not None:
            assert target.cross.toolchain in TOOLCHAINS


def _linter(name: str) -> list[str]:
    """How to run one of the test extras' linters: as a module of this
    Python, else as the program beside it; skipped where neither is."""
    if importlib.util.find_spec(name) is not None:
        return [sys.executable, "-m", name]
    program = shutil.which(name, path=str(Path(sys.executable).parent))
    if program is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return [program]


def test_ruff_finds_nothing():
    result = subprocess.run([*_linter("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = subprocess.run([*_linter("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyproject_configures_both_linters():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = settings["tool"]
    assert tool["ruff"]["line-length"] == 120
    assert tool["ruff"]["lint"]["select"]
    assert tool["mypy"]["packages"] == ["builder"]
    extras = " ".join(settings["project"]["optional-dependencies"]["test"])
    assert "ruff" in extras and "mypy" in extras  # pip install -e '.[test]' brings both
