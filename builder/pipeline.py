"""One target, end to end: sources -> plan -> sandboxed build -> staged tree
-> packagers -> artifacts + build record, written atomically into the output
folder (a failed build leaves nothing there)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import BuildError, SourceError
from .package import Artifact, PackageSpec, packager_for
from .plan import PATCHES_IN_SANDBOX, SOURCES_IN_SANDBOX, Plan, make_plan
from .progress import Progress
from .recipe.model import Recipe, Target
from .sandbox.docker import DockerSandbox
from .sandbox.images import ensure_image, image_spec
from .scripts import ScriptModel, StateEntry, render_maintainer_scripts, render_service_files, script_model
from .sources import PreparedSource, digest_file, prepare
from .staged import ContentStore, IdNames, StagedTree, harvest

@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path
    sources_dir: Path
    overrides: tuple[tuple[str, Path], ...] = ()
    release: int | None = None
    jobs: int | None = None
    log_dir: Path | None = None
    quiet: bool = False


@dataclass(frozen=True)
class BuildResult:
    target: str
    artifacts: tuple[Artifact, ...]
    record_path: Path
    log_path: Path
    durations: dict[str, float] = field(default_factory=dict)


def _prepare_sources(recipe: Recipe, options: BuildOptions, workdir: Path) -> tuple[PreparedSource, ...]:
    overrides = dict(options.overrides)
    unknown = sorted(set(overrides) - {source.name for source in recipe.sources})
    if unknown:
        raise SourceError(f"--source {unknown[0]}=...: the recipe has no source named '{unknown[0]}'")
    return tuple(
        prepare(source, options.sources_dir, workdir / "src", overrides.get(source.name))
        for source in recipe.sources
    )


def _run_build(plan: Plan, progress: Progress, stage_root: Path) -> tuple[StagedTree, str]:
    target = plan.target
    spec = image_spec(target, "build")
    progress.stage(f"image {spec.reference}")
    image_id = ensure_image(spec, progress.line)
    labels = {"qmail-pkg.target": target.name, "qmail-pkg.package": plan.recipe.package.name}
    with DockerSandbox(spec.reference, role="build", labels=labels) as sandbox:
        progress.stage("copy sources in")
        for source in plan.sources:
            sandbox.put_tree(source.tree, f"{SOURCES_IN_SANDBOX}/{source.name}")
        if target.patches:
            patch_dir = stage_root.parent / "patches"
            patch_dir.mkdir(exist_ok=True)
            for patch in target.patches:
                shutil.copy2(patch.file, patch_dir / patch.file.name)
            sandbox.put_tree(patch_dir, PATCHES_IN_SANDBOX)
        env = dict(plan.env)
        for step in plan.steps:
            progress.stage(f"step {step.number}/{len(plan.steps)}: {step.title}")
            code = sandbox.run(step.argv, env=env, workdir="/build", on_output=progress.line)
            if code != 0:
                raise BuildError(
                    f"{target.name}: step {step.number} of {len(plan.steps)} failed with exit {code}: "
                    f"{step.title} (log: {progress.log_path})"
                )
        progress.stage("harvest staged tree")
        layout = plan.recipe.layout
        tree = harvest(sandbox, (layout.prefix, *layout.harvest), IdNames.of(target.accounts), ContentStore(stage_root))
    return tree, image_id


def _script_model(plan: Plan, tree: StagedTree) -> ScriptModel:
    layout = plan.recipe.layout
    state = tuple(
        StateEntry(e.path, e.kind, e.owner, e.group, e.mode)
        for e in tree.entries
        if any(e.is_below(folder) for folder in layout.state)
    )
    return script_model(
        plan.recipe,
        plan.target,
        version=plan.full_version,
        state=state,
        smtpd=tree.has(f"{layout.prefix}/bin/qmail-smtpd"),
        sendmail=tree.has(f"{layout.prefix}/bin/sendmail"),
    )


def _complete_tree(tree: StagedTree, model: ScriptModel, recipe: Recipe) -> StagedTree:
    """Add what the package supplies beyond `make setup`: services, rc, links, docs."""
    if recipe.package.copyright:
        tree = tree.with_file(f"/usr/share/doc/{recipe.package.name}/copyright", recipe.package.copyright, 0o644)
    for service_file in render_service_files(model):
        tree = tree.with_file(service_file.path, service_file.content, service_file.mode)
    for link, target in model.sendmail_links:
        tree = tree.with_symlink(link, target)
    return tree


def _description(plan: Plan) -> str:
    meta = plan.recipe.package
    summary, body = meta.summary, meta.description.rstrip()
    if plan.overridden:
        # A development build must never pass for an official one.
        names = ", ".join(plan.overridden)
        summary = f"UNOFFICIAL BUILD: {summary}"
        notice = f"This package was built from locally overridden sources ({names}); it is not an official build."
        body += "\n\n" + textwrap.fill(notice, width=72)
    return f"{summary}\n{body}"


def _package_spec(plan: Plan, tree: StagedTree, model: ScriptModel, script_set: str) -> PackageSpec:
    layout = plan.recipe.layout
    shipped = tuple(e for e in tree.entries if not any(e.is_below(folder) for folder in layout.state))
    conffiles = tuple(
        e.path for e in shipped if e.kind == "file" and any(e.is_below(folder) for folder in layout.config)
    )
    scripts = tuple(sorted(render_maintainer_scripts(model, script_set).items()))
    return PackageSpec(
        meta=plan.recipe.package,
        release=plan.release,
        architecture=plan.target.architecture,
        description=_description(plan),
        tree=tree,
        shipped=shipped,
        conffiles=conffiles,
        scripts=scripts,
        source_date_epoch=plan.source_date_epoch,
        lintian_overrides=plan.recipe.debian.lintian_overrides,
    )


def _record(plan: Plan, image_id: str, artifacts: list[Artifact], durations: dict[str, float], tree: StagedTree) -> dict:
    target = plan.target
    return {
        "tool": f"qmail-pkg {__version__}",
        "package": plan.recipe.package.name,
        "version": plan.full_version,
        "target": target.name,
        "family": target.family,
        "release": target.release,
        "image": {"reference": image_spec(target, "build").reference, "id": image_id},
        "recipe": {"path": str(plan.recipe.path), "sha256": digest_file(plan.recipe.path, "sha256")},
        "official": not plan.overridden,
        "overridden_sources": list(plan.overridden),
        "sources": [
            {"name": s.name, "sha256": s.sha256, "origin": s.origin, "overridden": s.overridden} for s in plan.sources
        ],
        "accounts": {
            "groups": {g.name: g.gid for g in target.accounts.groups},
            "users": {u.name: {"uid": u.uid, "group": u.group, "home": u.home} for u in target.accounts.users},
        },
        "steps": [step.title for step in plan.steps],
        "source_date_epoch": plan.source_date_epoch,
        "cache_key": plan.cache_key,
        "durations": durations,
        "artifacts": [
            {"file": a.path.name, "format": a.format, "sha256": a.sha256, "size": a.size} for a in artifacts
        ],
        "staged_manifest": tree.manifest(),
    }


@contextmanager
def _output_lock(out_dir: Path) -> Iterator[None]:
    """An exclusive lock on the output folder itself (no lock file is left)."""
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def build_target(recipe: Recipe, target: Target, options: BuildOptions) -> BuildResult:
    log_dir = options.log_dir or options.out_dir / "logs"
    log_path = log_dir / f"{target.name}.log"
    progress = Progress(target.name, log_path, quiet=options.quiet)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    # Everything is written inside a private folder on the same filesystem and
    # renamed into place at the very end, so a failure leaves nothing behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=options.out_dir))
    workdir = Path(tempfile.mkdtemp(prefix="qmail-pkg-work-"))
    outcome = "failed"
    try:
        progress.stage("sources")
        sources = _prepare_sources(recipe, options, workdir)
        plan = make_plan(recipe, target, sources, release=options.release, jobs=options.jobs)
        tree, image_id = _run_build(plan, progress, workdir / "root")
        model = _script_model(plan, tree)
        tree = _complete_tree(tree, model, recipe)
        artifacts = []
        for fmt in target.formats:
            packager = packager_for(fmt)
            progress.stage(f"package {fmt}")
            spec = _package_spec(plan, tree, model, packager.script_set)
            fmt_work = workdir / f"pkg-{fmt}"
            fmt_work.mkdir()
            artifacts.append(packager.build(spec, staging, fmt_work))
        progress.stage("write build record")
        record = _record(plan, image_id, artifacts, dict(progress.durations), tree)
        record_name = f"{recipe.package.name}_{plan.full_version}_{target.name}.build.json"
        (staging / record_name).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        final_dir = options.out_dir / target.name
        placed = []
        # Two builds of one target may finish at once: the artifacts and
        # their record are placed together, never interleaved.
        with _output_lock(options.out_dir):
            final_dir.mkdir(parents=True, exist_ok=True)
            for artifact in artifacts:
                destination = final_dir / artifact.path.name
                os.replace(artifact.path, destination)
                placed.append(Artifact(destination, artifact.format, artifact.sha256, artifact.size))
            os.replace(staging / record_name, final_dir / record_name)
        outcome = "ok: " + ", ".join(a.path.name for a in placed)
        return BuildResult(target.name, tuple(placed), final_dir / record_name, log_path, dict(progress.durations))
    finally:
        progress.close(outcome)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
