"""From a source run to the SourceSpec every source packager writes from:
the staged tree completed as `build` completes it (services, units, links,
copyright), the same maintainer scripts, and for every staged entry where
the source build takes it: a built file of the same content, or one of the
packaging's own files. The owners are the recipe's accounts, by name and id:
a farm has no such accounts, so nothing is looked up where it builds."""

from __future__ import annotations

import posixpath
import re
from dataclasses import replace

from ..errors import BuildError, printable
from ..package import Packager
from ..packaging import completed, package_spec
from ..plan import Plan
from ..staged import Entry, StagedTree
from .base import InstallItem, SourceSpec, Upstream
from .run import SourceRun

ELF = b"\x7fELF"
# What the steps' environment holds that belongs to the machine it runs on:
# the farm's own PATH and parallelism, and the sources' folders (relative to
# the unpacked tree there). The rest travels with the source package.
MACHINE = re.compile(r"^(PATH|JOBS|TZ|SRC_[A-Z0-9_]+)$")
# Paths a spec, a plist and a Makefile take without quoting of their own.
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._+,:=@/-]+$")


def _ids(plan: Plan) -> tuple[dict[str, int], dict[str, int]]:
    accounts = plan.target.accounts
    users = {"root": 0, **{user.name: user.uid for user in accounts.users}}
    groups = {"root": 0, **{group.name: group.gid for group in accounts.groups}}
    return users, groups


def _source_of(entry: Entry, built: dict[str, list[str]], made_by_install: set[str], label: str) -> str:
    """The built file a staged file was copied from: the one with its content
    (of several, the one with its name)."""
    candidates = built.get(entry.sha256, [])
    if not candidates:
        name = posixpath.basename(entry.path)
        made = sorted(path for path in made_by_install if posixpath.basename(path) == name)
        if made:
            raise BuildError(f"{label}: {printable(entry.path)} is copied from {printable(made[0])}, which an install "
                             "step made: the build phase must make everything the install copies (qmail: "
                             "`make it man`), for a source package's build runs no install step")
        raise BuildError(f"{label}: {printable(entry.path)}: no file of the built tree has its content, so a source "
                         "package cannot install it")
    same_name = [path for path in candidates if posixpath.basename(path) == posixpath.basename(entry.path)]
    return sorted(same_name or candidates)[0]


def install_items(plan: Plan, run: SourceRun, tree: StagedTree) -> tuple[tuple[InstallItem, ...], dict[str, bytes]]:
    """Every shipped entry of the completed tree and where the source build
    takes it; the packaging's own files by path."""
    layout, label = plan.recipe.layout, plan.target.label
    users, groups = _ids(plan)
    built: dict[str, list[str]] = {}
    for path, digest in run.built:
        built.setdefault(digest, []).append(path)
    made = set(run.made_by_install)
    items, files = [], {}
    for entry in tree.entries:
        if any(entry.is_below(folder) for folder in layout.state):
            continue
        if not PLAIN_PATH.match(entry.path) or (entry.link_target and "\n" in entry.link_target):
            raise BuildError(f"{label}: {printable(entry.path)}: a path a spec, a plist or a Makefile cannot carry "
                             "as it is (letters, digits and ._+,:=@/- only)")
        if entry.owner not in users or entry.group not in groups:
            raise BuildError(f"{label}: {printable(entry.path)} belongs to {printable(entry.owner)}:"
                             f"{printable(entry.group)}, not to the recipe's accounts")
        common = InstallItem(path=entry.path, kind=entry.kind, mode=entry.mode, owner=entry.owner, group=entry.group,
                             uid=users[entry.owner], gid=groups[entry.group])
        if entry.kind == "dir":
            items.append(common)
        elif entry.kind == "symlink":
            items.append(replace(common, link=entry.link_target))
        elif entry.kind == "file":
            content = tree.store.read(entry.sha256)
            conffile = any(entry.is_below(folder) for folder in layout.config)
            original = run.tree.has(entry.path) and run.tree.entry(entry.path).sha256 == entry.sha256
            if original:
                items.append(replace(common, source=_source_of(entry, built, made, label),
                                     strip=content.startswith(ELF), conffile=conffile))
            else:
                files[entry.path] = content
                items.append(replace(common, source=entry.path.lstrip("/"), packaged=True, conffile=conffile))
        else:
            raise BuildError(f"{label}: {printable(entry.path)} is a {entry.kind} outside the state folders; "
                             "a package cannot ship it")
    return tuple(items), files


def source_spec(plan: Plan, upstreams: tuple[Upstream, ...], run: SourceRun, packager: Packager) -> SourceSpec:
    tree, model = completed(plan, run.tree)
    package = package_spec(plan, tree, model, packager)
    items, files = install_items(plan, run, tree)
    steps = tuple(script for phase, script in plan.target.phased_steps(dict(plan.option_values)) if phase == "build")
    env = tuple((key, value) for key, value in plan.env if not MACHINE.match(key))
    return SourceSpec(plan=plan, package=package, upstreams=upstreams, patches=run.patches, build_steps=steps,
                      install=items, files=tuple(sorted(files.items())), env=env)


__all__ = ["install_items", "source_spec"]
