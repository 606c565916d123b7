"""`qmail-pkg source`: one target's source packages, from the same recipe,
staged tree and maintainer scripts as `build`: the pinned sources, the
source run in the target's build sandbox (builder/source/run.py: a patch per
change, the built tree, the staged tree), then one source packager per
format the target makes (builder/source/: Debian, SRPM, FreeBSD port).
Everything is written into a private folder inside --out and moved into
<out>/<target>/ only when every source package of the target is complete."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .engines import Engine, engine_for
from .environment import prepare_environment
from .errors import BuildError, SourceError
from .package import packager_for
from .plan import make_plan
from .progress import Progress
from .recipe.model import Recipe, Target
from .recipe.options import resolve as resolve_options
from .source import SOURCE_PACKAGERS, SourceResult, Upstream
from .source.run import run_source
from .source.spec import source_spec
from .sources import prepare


@dataclass(frozen=True)
class SourceOptions:
    out_dir: Path
    sources_dir: Path
    revision: int | None = None
    log_dir: Path | None = None
    quiet: bool = False
    engines: tuple[Engine, ...] = ()


@dataclass(frozen=True)
class SourceOutcome:
    target: str
    results: tuple[SourceResult, ...]
    log_path: Path
    durations: tuple[tuple[str, float], ...] = ()


def component(name: str) -> str:
    """The folder a source other than the first lies in (a Debian component name)."""
    return name.replace("_", "-")


def _upstreams(recipe: Recipe, sources_dir: Path, workdir: Path):
    prepared, upstreams, trees = [], [], {}
    for index, source in enumerate(recipe.sources):
        ready = prepare(source, sources_dir, workdir / "src")
        tarball = sources_dir / source.filename
        if not tarball.is_file():
            raise SourceError(f"source {source.name!r}: {tarball} is not in the source cache")
        prepared.append(ready)
        upstreams.append(Upstream.of(source.name, source.filename, tarball, ready.tree.name,
                                     "" if index == 0 else component(source.name), source.urls))
        trees[source.name] = ready.tree
    first = trees[recipe.sources[0].name]
    for upstream in upstreams[1:]:
        if (first / upstream.folder).exists() or (first / upstream.folder).is_symlink():
            raise SourceError(f"source {upstream.name!r} would lie in {upstream.folder}/ of "
                              f"{recipe.sources[0].name}, which has one of that name")
    return tuple(prepared), tuple(upstreams), trees


def _place(out_dir: Path, target: Target, staging: Path) -> None:
    """Move what was written into <out>/<target>/ (a folder replaces its
    namesake whole), under a lock on the output folder."""
    final = out_dir / target.name
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        final.mkdir(parents=True, exist_ok=True)
        for path in sorted(staging.iterdir()):
            destination = final / path.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(path, destination)
    finally:
        os.close(fd)


def make_sources(recipe: Recipe, target: Target, options: SourceOptions) -> SourceOutcome:
    log_dir = options.log_dir or options.out_dir / "logs"
    log_path = log_dir / f"{target.label.replace('/', '-')}.source.log"
    progress = Progress(f"{target.label} source", log_path, quiet=options.quiet)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-source-", dir=options.out_dir))
    workdir = Path(tempfile.mkdtemp(prefix="qmail-pkg-source-"))
    outcome = "failed"
    try:
        missing = [fmt for fmt in target.formats if fmt not in SOURCE_PACKAGERS]
        if missing:
            raise BuildError(f"{target.label}: no source package is made for format {missing[0]!r}")
        progress.stage("sources")
        prepared, upstreams, trees = _upstreams(recipe, options.sources_dir, workdir)
        # A farm builds natively: the changes are those of a native build (cc
        # in conf-cc, not this host's cross compiler). A target cross-built
        # here runs them in its cross image, whose own cc stands in for the
        # farm's: the patches are the same, the binaries are not shipped.
        plan = make_plan(recipe, target.with_method("native"), prepared, revision=options.revision,
                         option_values=resolve_options(recipe, ()))
        engine = engine_for(target.name, options.engines, target.architecture)
        progress.stage(f"environment {target.image}")
        environment = prepare_environment(target, "build", progress.line, engine)
        run = run_source(plan, upstreams, trees, environment, progress, workdir, engine, sandbox_target=target)
        results = []
        for fmt in target.formats:
            progress.stage(f"source package for {fmt}")
            spec = source_spec(plan, upstreams, run, packager_for(fmt))
            fmt_work = workdir / f"source-{fmt}"
            fmt_work.mkdir()
            results.append(SOURCE_PACKAGERS[fmt].write(spec, staging, fmt_work))
        _place(options.out_dir, target, staging)

        def moved(path: Path) -> Path:
            return options.out_dir / target.name / path.relative_to(staging)

        final = tuple(SourceResult(result.kind, tuple(moved(path) for path in result.files), moved(result.main))
                      for result in results)
        outcome = "ok: " + ", ".join(result.main.name for result in final)
        return SourceOutcome(target.label, final, log_path, tuple(progress.durations.items()))
    finally:
        progress.close(outcome)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["SourceOptions", "SourceOutcome", "component", "make_sources"]
