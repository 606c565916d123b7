"""One target, end to end: sources -> plan -> sandboxed build -> staged tree
-> packagers -> artifacts + build record, written atomically into the output
folder (a failed build leaves nothing there)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import __version__
from .cache import BuildCache, CacheEntry, default_cache_dir, tool_digest, tool_versions
from .engines import Engine, engine_for
from .environment import open_sandbox, prepare_environment, toolchain_of
from .errors import BuildError
from .formats.facts import PackageFacts
from .package import Artifact, BuildContext, packager_for
from .package.expect import expectation, expectation_problems
from .packaging import completed, package_spec
from .plan import PATCHES_IN_SANDBOX, SOURCES_IN_SANDBOX, Plan, make_plan
from .platforms import platform_for
from .progress import Board, Progress
from .provenance import statement
from .recipe.model import Recipe, Target
from .recipe.options import Choices, variant_recipe
from .recipe.options import resolve as resolve_options
from .record import SUFFIX as RECORD_SUFFIX
from .record import ArtifactRecord, BuildRecord, ImageRecord, ManifestEntry, PatchRecord, SourceRecord, UserRecord
from .sandbox import Environment
from .sources import PreparedSource, check_overrides, digest_file, prepare
from .staged import ContentStore, IdNames, StagedTree, harvest


@dataclass(frozen=True)
class Variation:
    """What a second build changes to show the output does not depend on it."""

    hostname: str = "build.invalid"
    timezone: str = "UTC"
    umask: str = "022"
    make_jobs: int | None = None


VARIED = Variation(hostname="other-builder.invalid", timezone="Pacific/Kiritimati", umask="002", make_jobs=1)


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path
    sources_dir: Path
    overrides: tuple[tuple[str, Path], ...] = ()
    revision: int | None = None
    jobs: int | None = None
    log_dir: Path | None = None
    quiet: bool = False
    use_cache: bool = True
    cache_dir: Path | None = None  # default: $QMAIL_PKG_CACHE, else the XDG cache
    run_id: str = ""  # labels this run's sandboxes (the matrix removes them on interrupt)
    variation: Variation = Variation()
    engines: tuple[Engine, ...] = ()  # which engine builds which target (builder/engines.py)
    choices: Choices = ()  # --with / --without: the recipe's build options (builder/recipe/options.py)
    board: Board | None = None  # the shared live display when several targets build at once


@dataclass(frozen=True)
class BuildResult:
    target: str
    artifacts: tuple[Artifact, ...]
    record_path: Path
    log_path: Path
    durations: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    companions: tuple[Path, ...] = ()  # written beside the artifacts for the formats' own tools


def _prepare_sources(recipe: Recipe, options: BuildOptions, workdir: Path) -> tuple[PreparedSource, ...]:
    overrides = dict(options.overrides)
    check_overrides(recipe.sources, overrides)
    return tuple(
        prepare(source, options.sources_dir, workdir / "src", overrides.get(source.name))
        for source in recipe.sources
    )


@dataclass(frozen=True)
class BuildOutput:
    """What comes out of the sandbox: the staged tree (data), the image the
    build ran in, and the libraries its binaries need (the family's syntax)."""

    tree: StagedTree
    environment: Environment
    library_depends: tuple[str, ...]
    engine: str = "local"  # where it ran: "local", or the URL of the builders setting


def _run_build(plan: Plan, progress: Progress, workdir: Path, environment: Environment, run_id: str,
               variation: Variation, engine: Engine | None = None) -> BuildOutput:
    target = plan.target
    labels = {"qmail-pkg.target": target.name, "qmail-pkg.package": plan.recipe.package.name,
              "qmail-pkg.architecture": target.architecture}
    if run_id:
        labels["qmail-pkg.run"] = run_id
    layout = plan.recipe.layout
    roots = (layout.prefix, *layout.harvest)
    probe = plan.platform.dependency_probe(roots)
    steps_folder = _steps_folder(plan, workdir, probe)
    trees = [(source.tree, f"{SOURCES_IN_SANDBOX}/{source.name}") for source in plan.sources]
    if target.active_patches:
        patch_dir = workdir / "patches"
        patch_dir.mkdir(exist_ok=True)
        for patch in target.active_patches:
            shutil.copy2(patch.file, patch_dir / patch.file.name)
        trees.append((patch_dir, PATCHES_IN_SANDBOX))
    trees.append((steps_folder, STEPS_IN_SANDBOX))
    with open_sandbox(target, environment.reference, role="build", labels=labels,
                      hostname=variation.hostname, engine=engine) as sandbox:
        progress.stage("copy sources in")
        sandbox.put_trees(trees)  # one copy: sources, patches and the steps
        env = {**dict(plan.env), "TZ": variation.timezone, "QMAIL_PKG_UMASK": variation.umask}
        _run_steps(sandbox, plan, progress, env)
        # the library probe runs in the sandbox while the tree is copied out
        progress.stage("harvest staged tree")
        tree = harvest(sandbox, roots, IdNames.of(target.accounts), ContentStore(workdir / "content"))
        library_depends: tuple[str, ...] = ()
        if probe is not None:
            progress.stage("find the libraries the binaries need")
            lines: list[str] = []

            def keep(line: str) -> None:  # `lines` as it is when the line comes
                lines.append(line)
                progress.line(line)

            code = sandbox.run(["sh", "-c", PROBE_RESULT, "sh", f"{STEPS_IN_SANDBOX}/probe-result"], env=env,
                               on_output=keep)
            if code != 0:
                # The background probe raced with the last steps (a binary
                # replaced while it read it): once more, now that they are over.
                progress.line(f"library probe exited {code} while the steps ran; probing again")
                lines = []
                code = sandbox.run(list(probe), env=env, on_output=keep)
            if code != 0:
                raise BuildError(f"{target.label}: finding library dependencies failed with exit {code} "
                                 f"(log: {progress.log_path})")
            library_depends = plan.platform.parse_dependencies(lines)
    return BuildOutput(tree, environment, library_depends, engine.url if engine else "local")


STEP_RUNNER = Path(__file__).resolve().parent / "sandbox" / "run-steps.sh"
STEPS_IN_SANDBOX = "/build/.steps"


# Waits for the background probe the step runner started, then replays its
# output and exit code.
PROBE_RESULT = 'while [ ! -f "$1.rc" ]; do sleep 0.05; done; cat "$1.out"; exit "$(cat "$1.rc")"'


def _argv_file(argv: tuple[str, ...]) -> bytes:
    return b"\0".join(arg.encode() for arg in argv) + b"\0"


def _steps_folder(plan: Plan, workdir: Path, probe: tuple[str, ...] | None) -> Path:
    """The step runner and one file per step with its argv, NUL-separated
    (and the library probe's, run after the last step)."""
    folder = workdir / "steps"
    folder.mkdir()
    width = len(str(len(plan.steps)))
    for step in plan.steps:
        if any("\0" in arg for arg in step.argv):
            raise BuildError(f"{plan.target.label}: step {step.number} holds a NUL byte")
        (folder / str(step.number).zfill(width)).write_bytes(_argv_file(step.argv))
    if probe is not None:
        (folder / "probe").write_bytes(_argv_file(probe))
        (folder / "probe-after").write_text(f"{plan.installed_after}\n")
    (folder / "run").write_bytes(STEP_RUNNER.read_bytes())
    return folder


def _run_steps(sandbox, plan: Plan, progress: Progress, env: dict[str, str]) -> None:
    """Every step in one exec: the runner script reads each step's argv from
    a file (NUL-separated), and its markers move the progress display."""
    width = len(str(len(plan.steps)))
    titles = {str(step.number).zfill(width): step for step in plan.steps}
    failed: list[tuple[int, str]] = []

    def on_output(line: str) -> None:
        if line.startswith("@@qmail-pkg step "):
            step = titles.get(line.split()[2])
            if step is not None:
                progress.stage(f"step {step.number}/{len(plan.steps)}: {step.title}")
                return
        if line.startswith("@@qmail-pkg failed "):
            _, _, number, code = line.split()
            failed.append((titles[number].number, code))
            return
        progress.line(line)

    code = sandbox.run(["sh", f"{STEPS_IN_SANDBOX}/run", STEPS_IN_SANDBOX], env=env, workdir="/build",
                       on_output=on_output)
    if code != 0:
        number, step_code = failed[0] if failed else (0, str(code))
        step = next((s for s in plan.steps if s.number == number), None)
        title = step.title if step else "the step runner"
        raise BuildError(
            f"{plan.target.label}: step {number} of {len(plan.steps)} failed with exit {step_code}: {title} "
            f"(log: {progress.log_path})"
        )










def _record(plan: Plan, output: BuildOutput, artifacts: list[Artifact], facts: list[PackageFacts],
            durations: dict[str, float], tree: StagedTree, key: str) -> BuildRecord:
    target = plan.target
    finished = time.time()
    environment = output.environment
    return BuildRecord(
        started=rfc3339_now(finished - sum(durations.values())),
        finished=rfc3339_now(finished),
        tool=f"qmail-pkg {__version__}",
        tools=tuple(sorted(tool_versions().items())),
        package=plan.recipe.package.name,
        version=f"{plan.version}-{plan.revision}",
        revision=plan.revision,
        target=target.name,
        family=target.family,
        release=target.release,
        suite=target.suite,
        architecture=target.architecture,
        userland=target.userland,
        method=target.method,
        toolchain=toolchain_of(target),
        engine=output.engine,
        image=ImageRecord(environment.reference, environment.identity, tuple(sorted(environment.details))),
        recipe_path=str(plan.recipe.path),
        recipe_sha256=digest_file(plan.recipe.path, "sha256"),
        official=not plan.overridden and not plan.variant,
        options=tuple(sorted(plan.option_values)),
        variant=tuple(sorted(plan.variant.items())),
        overridden_sources=tuple(plan.overridden),
        sources=tuple(SourceRecord(s.name, s.sha256, s.origin, s.overridden) for s in plan.sources),
        patches=tuple(PatchRecord(p.file.name, p.source, digest_file(p.file, "sha256")) for p in target.active_patches),
        groups=tuple((g.name, g.gid) for g in target.accounts.groups),
        users=tuple(UserRecord(u.name, u.uid, u.group, u.home) for u in target.accounts.users),
        library_depends=tuple(output.library_depends),
        steps=tuple(step.title for step in plan.steps),
        source_date_epoch=plan.source_date_epoch,
        cache_key=key,
        durations=tuple(durations.items()),
        artifacts=tuple(ArtifactRecord(a.path.name, a.format, a.version, a.sha256, a.size, f)
                        for a, f in zip(artifacts, facts, strict=True)),
        staged_manifest=tuple(ManifestEntry(e.path, e.kind, e.mode, e.owner, e.group, e.link_target, e.sha256)
                              for e in tree.entries),
    )


def describe_method(target: Target) -> str:
    """How this build builds, for the progress line: never left unsaid."""
    if target.method == "cross" and target.cross is not None:
        return f"cross build ({target.cross.toolchain}, {platform_for(target.family).cross_triple(target)})"
    return f"native build ({target.builder}, {target.image})"


def rfc3339_now(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@contextmanager
def _output_lock(out_dir: Path) -> Iterator[None]:
    """An exclusive lock on the output folder itself (no lock file is left)."""
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _place(options: BuildOptions, target: Target, files: list[Path]) -> list[Path]:
    """Move finished files from the private folder into dist/<target>/."""
    final_dir = options.out_dir / target.name
    placed = []
    # Two builds of one target may finish at once: the artifacts and their
    # record are placed together, never interleaved.
    with _output_lock(options.out_dir):
        final_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            destination = final_dir / path.name
            os.replace(path, destination)
            placed.append(destination)
    return placed


def _provenance(record_path: Path) -> Path:
    return record_path.with_name(record_path.name.replace(".build.json", ".intoto.json"))


def _from_cache(entry: CacheEntry, staging: Path) -> tuple[list[Artifact], Path, list[Path]]:
    """The cached artifacts, record and companions, copied into the private folder."""
    for name in entry.files:
        shutil.copyfile(entry.folder / name, staging / name)
    record_name = next(name for name in entry.files if name.endswith(RECORD_SUFFIX))
    record = BuildRecord.read(staging / record_name)
    artifacts = [Artifact(staging / row.file, row.format, row.sha256, row.size, row.version)
                 for row in record.artifacts]
    return artifacts, staging / record_name, [staging / name for name, _ in record.companions]


def _context(plan: Plan, output: BuildOutput) -> BuildContext:
    """What the format's own tools learn about this build (Debian's .buildinfo)."""
    packages = dict(output.environment.details).get("packages", "")
    return BuildContext(installed=tuple(packages.split()), build_path=f"{SOURCES_IN_SANDBOX}/{plan.sources[0].name}",
                        build_date=int(time.time()), architecture=plan.target.architecture,
                        environment=(("LC_ALL", "C"), ("SOURCE_DATE_EPOCH", str(plan.source_date_epoch))))


def build_target(recipe: Recipe, target: Target, options: BuildOptions) -> BuildResult:
    log_dir = options.log_dir or options.out_dir / "logs"
    log_path = log_dir / f"{target.label.replace('/', '-')}.log"
    progress = Progress(target.label, log_path, quiet=options.quiet, board=options.board)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    # Everything is written inside a private folder on the same filesystem and
    # renamed into place at the very end, so a failure leaves nothing behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=options.out_dir))
    workdir = Path(tempfile.mkdtemp(prefix="qmail-pkg-work-"))
    outcome = "failed"
    try:
        values = resolve_options(recipe, options.choices)
        recipe = variant_recipe(recipe, values)
        progress.stage("sources")
        sources = _prepare_sources(recipe, options, workdir)
        jobs = options.variation.make_jobs or options.jobs
        plan = make_plan(recipe, target, sources, revision=options.revision, jobs=jobs, option_values=values)
        engine = engine_for(target.name, options.engines, target.architecture)
        cache = BuildCache(options.cache_dir or default_cache_dir())  # a bad cache folder stops it before any image
        progress.stage(f"{describe_method(target)}: environment" + (f" on {engine.url}" if engine else ""))
        environment = prepare_environment(target, "build", progress.line, engine)
        key = plan.cache_key(environment.identity, tool_digest())
        entry = cache.get(key) if options.use_cache else None
        if entry is not None:
            progress.stage(f"cached build {key[:16]}")
            artifacts, record_path, companions = _from_cache(entry, staging)
            cached = True
        else:
            artifacts, record_path, companions = _build_and_package(plan, environment, key, options, progress, staging,
                                                                    workdir, engine)
            cache.put(key, [a.path for a in artifacts] + companions + [record_path, _provenance(record_path)])
            cached = False
        placed = _place(options, target, [a.path for a in artifacts] + [record_path, _provenance(record_path)]
                        + companions)
        final = [replace(artifact, path=path) for artifact, path in zip(artifacts, placed, strict=False)]
        outcome = ("ok (cached): " if cached else "ok: ") + ", ".join(a.path.name for a in final)
        return BuildResult(target.label, tuple(final), placed[len(artifacts)], log_path, dict(progress.durations),
                           cached, tuple(placed[len(artifacts) + 2:]))
    finally:
        progress.close(outcome)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _build_and_package(plan: Plan, environment: Environment, key: str, options: BuildOptions, progress: Progress,
                       staging: Path, workdir: Path, engine: Engine | None) -> tuple[list[Artifact], Path, list[Path]]:
    recipe, target = plan.recipe, plan.target
    output = _run_build(plan, progress, workdir, environment, options.run_id, options.variation, engine)
    tree, model = completed(plan, output.tree)
    artifacts: list[Artifact] = []
    facts: list[PackageFacts] = []
    companions: list[Path] = []
    manifest = tuple(ManifestEntry(e.path, e.kind, e.mode, e.owner, e.group, e.link_target, e.sha256)
                     for e in tree.entries)
    for fmt in target.formats:
        packager = packager_for(fmt)
        progress.stage(f"package {fmt}")
        spec = package_spec(plan, tree, model, packager, output.library_depends)
        fmt_work = workdir / f"pkg-{fmt}"
        fmt_work.mkdir()
        artifact = packager.build(spec, staging, fmt_work)
        # Read back what was written and hold it to the recipe's rules, as
        # publishing will: a packager bug fails the build, not the publish.
        read_back = packager.read(artifact.path, artifact.path.read_bytes())
        expected = expectation(packager, recipe, target, plan.revision, output.library_depends, manifest)
        problems = expectation_problems(read_back, packager, expected)
        if problems:
            raise BuildError(f"{target.label}: {artifact.path.name} is not what the recipe makes: {problems[0]}")
        artifacts.append(artifact)
        facts.append(read_back)
        companions += packager.companions(spec, artifact, _context(plan, output), staging)
    progress.stage("write build record")
    record = _record(plan, output, artifacts, facts, dict(progress.durations), tree, key)
    record = replace(record, companions=tuple((path.name, digest_file(path, "sha256")) for path in companions))
    record_path = record.write(staging)
    (staging / record.provenance_name).write_text(json.dumps(statement(record), indent=1, sort_keys=True) + "\n")
    return artifacts, record_path, companions
