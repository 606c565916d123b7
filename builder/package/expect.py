"""What an artifact of a recipe's target must say about itself, and where it
says otherwise. The build checks its own artifacts with this before it
records them; publishing checks them again before it signs
(builder/repo/admit.py): a name, version or architecture the recipe does
not make, a relation or metadata field the packager never writes
(Essential, Protected, triggers...), a file the build did not stage or a
file in the state folders is a problem, named."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..errors import printable
from ..formats.facts import PackageFacts
from ..platforms import platform_for
from ..recipe.model import Recipe, Target
from ..record import ManifestEntry
from .base import Packager


@dataclass(frozen=True)
class Expectation:
    """What an artifact of this recipe and target must say about itself."""

    name: str
    version: str
    architecture: str
    relations: dict[str, tuple[str, ...]]
    manifest: tuple[ManifestEntry, ...]
    state: tuple[str, ...]
    own_paths: tuple[str, ...]  # files the packager adds beyond the staged tree


def expectation(packager: Packager, recipe: Recipe, target: Target, revision: int, library_depends: tuple[str, ...],
                manifest: tuple[ManifestEntry, ...]) -> Expectation:
    platform = platform_for(target.family)
    name = recipe.package.name
    version = packager.version_of(recipe.package.version, revision, platform.version_suffix(target))
    architecture = packager.architecture_of(target.architecture, target.release)
    return Expectation(
        name=name,
        version=version,
        architecture=architecture,
        relations=packager.relations_of(recipe.options.get(packager.options_key), library_depends,
                                        (name, version, architecture)),
        manifest=manifest,
        state=recipe.layout.state,
        own_paths=packager.own_paths(recipe.package.name),
    )


def _below(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def expectation_problems(facts: PackageFacts, packager: Packager, expected: Expectation) -> list[str]:
    """Where the artifact says something its recipe does not allow."""
    problems = []
    for key in ("name", "version", "architecture"):
        have, want = getattr(facts, key), getattr(expected, key)
        if have != want:
            problems.append(f"{key} is {printable(have)!r}, the recipe makes {want!r}")
    extra = sorted(set(dict(facts.fields)) - packager.allowed_fields)
    if extra:
        problems.append(f"metadata field {printable(extra[0])!r} is one this tool never writes")
    scripts = sorted(set(dict(facts.scripts)) - set(packager.allowed_scripts))
    if scripts:
        problems.append(f"script {printable(scripts[0])!r} is one this tool never writes")
    # the order of a relation's items means nothing to a package manager
    have_relations = {name: tuple(sorted(values)) for name, values in facts.relations if values}
    want_relations = {name: tuple(sorted(values)) for name, values in expected.relations.items() if values}
    for name in sorted(set(have_relations) | set(want_relations)):
        if have_relations.get(name, ()) != want_relations.get(name, ()):
            problems.append(f"relation {printable(name)!r} is {printable(', '.join(have_relations.get(name, ())))!r}, "
                            f"the recipe makes {', '.join(want_relations.get(name, ()))!r}")
    staged = {entry.path: entry for entry in expected.manifest}
    carried = {entry.path: entry for entry in facts.contents}
    own = set(expected.own_paths)
    own_parents = {parent for path in own for parent in _parents(path)}
    for path, entry in carried.items():
        if any(_below(path, folder) for folder in expected.state):
            problems.append(f"{printable(path)}: below {next(f for f in expected.state if _below(path, f))}, which is "
                            "state the install scripts make, never shipped")
            continue
        if path in own or (entry.kind == "dir" and path in own_parents and path not in staged):
            continue
        want = staged.get(path)
        if want is None:
            problems.append(f"{printable(path)}: carried by the package, not staged by the build")
        elif not packager.same_entry(entry, want):
            problems.append(f"{printable(path)}: the package has {printable(entry.describe())}, the build staged "
                            f"{want.kind} {want.mode:04o} {want.owner}:{want.group}")
    for path, want in staged.items():
        if want.kind != "dir" and path not in carried and not any(_below(path, f) for f in expected.state):
            problems.append(f"{printable(path)}: staged by the build, missing from the package")
    return problems


def _parents(path: str) -> list[str]:
    found = []
    while (path := posixpath.dirname(path)) not in ("/", ""):
        found.append(path)
    return found


__all__ = ["Expectation", "expectation", "expectation_problems"]
