"""From a staged tree to what each packager gets: the script model (with
the queue skeleton the build harvested), the files the package adds beyond
`make setup` (services, rc, links, copyright), the description (marked when
the build is unofficial or for tests), and the PackageSpec. The build uses
it, and so does validate's dry run (preflight.py)."""

from __future__ import annotations

import textwrap
from dataclasses import replace

from .package import Packager, PackageSpec, packager_for
from .plan import Plan
from .platforms import platform_for
from .scripts import ScriptModel, StateEntry, render_maintainer_scripts, render_service_files, script_model
from .staged import StagedTree


def script_model_of(plan: Plan, tree: StagedTree) -> ScriptModel:
    layout = plan.recipe.layout
    state = tuple(
        StateEntry(e.path, e.kind, e.owner, e.group, e.mode)
        for e in tree.entries
        if any(e.is_below(folder) for folder in layout.state)
    )
    # the scripts name versions as the target's package manager does (1.03_1 for pkg)
    packager = packager_for(plan.target.formats[0])
    version = packager.version_of(plan.version, plan.revision,
                                  platform_for(plan.target.family).version_suffix(plan.target))
    options = plan.recipe.options.get(packager.options_key)
    return script_model(
        plan.recipe,
        plan.target,
        version=version,
        conflicts=tuple(getattr(options, "conflicts", ())),
        state=state,
        smtpd=tree.has(f"{layout.prefix}/bin/qmail-smtpd"),
        sendmail=tree.has(f"{layout.prefix}/bin/sendmail"),
    )


def complete_tree(tree: StagedTree, model: ScriptModel, plan: Plan) -> StagedTree:
    """Add what the package supplies beyond `make setup`: services, rc, links, docs."""
    package, platform = plan.recipe.package, plan.platform
    if package.copyright:
        tree = tree.with_file(f"{platform.doc_root}/{package.name}/copyright", package.copyright, 0o644)
    for service_file in render_service_files(model):
        tree = tree.with_file(service_file.path, service_file.content, service_file.mode)
    if platform.ships_sendmail_links:
        for link, target in model.sendmail_links:
            tree = tree.with_symlink(link, target)
    return tree


def completed(plan: Plan, tree: StagedTree) -> tuple[StagedTree, ScriptModel]:
    """The staged tree with what the package adds, and the script model that
    knows every file it ships (a takeover backs those up)."""
    model = script_model_of(plan, tree)
    tree = complete_tree(tree, model, plan)
    state = plan.recipe.layout.state
    model = replace(model, shipped=tuple(
        e.path for e in tree.entries
        if e.kind in ("file", "symlink") and not any(e.is_below(folder) for folder in state)))
    return tree, model


def description(plan: Plan) -> str:
    meta = plan.recipe.package
    summary, body = meta.summary, meta.description.rstrip()
    if plan.overridden:
        # A development build must never pass for an official one.
        names = ", ".join(plan.overridden)
        summary = f"UNOFFICIAL BUILD: {summary}"
        notice = f"This package was built from locally overridden sources ({names}); it is not an official build."
        body += "\n\n" + textwrap.fill(notice, width=72)
    return f"{summary}\n{body}"


def package_spec(plan: Plan, tree: StagedTree, model: ScriptModel, packager: Packager,
                 library_depends: tuple[str, ...] = ()) -> PackageSpec:
    """The spec one packager gets for one target (also used by preflight's dry run)."""
    layout = plan.recipe.layout
    shipped = tuple(e for e in tree.entries if not any(e.is_below(folder) for folder in layout.state))
    conffiles = tuple(
        e.path for e in shipped if e.kind == "file" and any(e.is_below(folder) for folder in layout.config)
    )
    scripts = tuple(sorted(render_maintainer_scripts(model, packager.script_set, packager.script_names).items()))
    family = platform_for(packager.family)
    # Folders the package owns: its prefix, its harvested trees and its doc
    # folder. Any other folder in the tree (/usr, /usr/share/doc...) is the
    # system's; rpm and pkg must not claim those.
    own = (layout.prefix, *layout.harvest, f"{family.doc_root}/{plan.recipe.package.name}")
    shared = tuple(e.path for e in shipped if e.kind == "dir" and not any(e.is_below(root) for root in own))
    return PackageSpec(
        meta=plan.recipe.package,
        revision=plan.revision,
        version_suffix=family.version_suffix(plan.target),
        architecture=plan.target.architecture,
        release=plan.target.release,
        description=description(plan),
        tree=tree,
        shipped=shipped,
        conffiles=conffiles,
        scripts=scripts,
        source_date_epoch=plan.source_date_epoch,
        options=plan.recipe.options.get(packager.options_key),
        library_depends=library_depends,
        install_prefix=layout.prefix,
        shared_dirs=shared,
        users=tuple(user.name for user in plan.target.accounts.users),
        groups=tuple(group.name for group in plan.target.accounts.groups),
        suite=plan.target.suite,
    )


__all__ = ["complete_tree", "completed", "description", "package_spec", "script_model_of"]
