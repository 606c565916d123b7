"""What each `qmail-pkg` subcommand does: read the recipe, check every
value the command line and the environment hand it before anything starts,
call the stage, print the outcome. No command knows a family or a format:
those come from the registries."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from .. import emulation
from ..cache import default_cache_dir as default_build_cache_dir
from ..ci import default_destination, render_pipeline, write_pipeline
from ..commands import run_shown
from ..engines import check_engines, load_settings
from ..environ import PATH_SHOWN, check_integer_settings, folder_path
from ..environment import prepare_environment
from ..errors import QmailPkgError, printable, quoted
from ..evidence import Evidence
from ..fixtures import miniature_recipe
from ..matrix import Matrix
from ..package import PACKAGERS
from ..pipeline import BuildOptions
from ..preflight import load_checked, problems_of
from ..recipe.loader import schema_text
from ..recipe.options import resolve
from ..record import BuildRecord, RecordError
from ..repo.publish import publish
from ..sandbox.docker import remove_leftovers
from ..sandbox.images import ROLES
from ..selftest import run_selftest
from ..shipped import example_recipe, host_setup_script
from ..source import SourceResult
from ..source.farm import COMMANDS as FARM_COMMANDS
from ..source.farm import rebuild
from ..source.obs import obs_package
from ..sources import default_cache_dir as default_sources_dir
from ..sources import digest_file, fetch_all
from ..sourcing import SourceOptions, make_sources
from ..verify import run_verify
from ..verify.hosts import HOSTS, host_named
from ..verify.lint import lint_artifact
from ..verify.piuparts import bases_dir as piuparts_bases_dir
from ..verify.piuparts import run_piuparts
from ..verify.powercut import FILESYSTEMS, PowerCutOptions, power_cut_inputs, run_power_cut, runs_folder
from ..verify.powercut.images import cache_dir as machine_cache_dir

DEFAULT_RECIPE = "recipes/qmail-syncdir.yaml"
MINIATURE_SOURCES = ["qmail", "syncdir"]  # what builder/fixtures has small stand-ins for


def _load(recipe_path: str):
    return load_checked(recipe_path)


def _recipe_of(given: str | None, artifacts: list[str]):
    """The recipe a command on built packages reads: the one given, else the
    one the first package's build record names (when it is still there with
    the same sha256), else recipes/qmail-syncdir.yaml in the current folder."""
    if given:
        return _load(given)
    for text in artifacts[:1]:
        try:
            record = BuildRecord.beside(Path(text))
        except (RecordError, OSError):
            break
        named = Path(record.recipe_path)
        if named.is_file() and digest_file(named, "sha256") == record.recipe_sha256:
            return _load(str(named))
    if not Path(DEFAULT_RECIPE).is_file():
        raise QmailPkgError(f"no recipe: give --recipe (the build record names none that is still there, and there "
                            f"is no {DEFAULT_RECIPE} here)")
    return _load(DEFAULT_RECIPE)


def _builds(targets, architectures: list[str] | None, method: str | None = None):
    """Each target once per architecture asked for: its first (primary)
    architecture without --arch, every one it lists with --arch all.
    Every value but `all` is checked even beside `all`, and one asked for
    twice is built once. Emulated architectures first: they take longest."""
    asked = list(dict.fromkeys(architectures or ()))
    builds = []
    for target in targets:
        for architecture in asked:
            if architecture != "all" and architecture not in target.architectures:
                raise QmailPkgError(f"{target.name} is not built for {architecture} "
                                    f"(its architectures: {', '.join(target.architectures)})")
        if not asked:
            chosen = [target.architectures[0]]
        elif "all" in asked:
            chosen = list(target.architectures)
        else:
            chosen = asked
        for architecture in chosen:
            build = target.for_architecture(architecture)
            if method is not None:
                try:
                    build = build.with_method(method)
                except ValueError as exc:
                    raise QmailPkgError(str(exc)) from None
            builds.append(build)
    native = emulation.host_architecture()
    return sorted(builds, key=lambda build: build.architecture == native)


def _targets(recipe, names: list[str] | None, all_targets: bool):
    if all_targets:
        return list(recipe.targets)
    if not names:
        raise QmailPkgError(
            f"{recipe.path}: name a target with --target (one of: {', '.join(t.name for t in recipe.targets)}) "
            "or use --all"
        )
    chosen = []
    for name in names:
        try:
            chosen.append(recipe.target(name))
        except KeyError:
            known = ", ".join(t.name for t in recipe.targets)
            raise QmailPkgError(f"{recipe.path}: no target '{name}' (known: {known})") from None
    return chosen


def _evidence_folder(args) -> Path | None:
    """--evidence DIR, checked before the command starts (a folder, or a path
    where one can be made); None: beside each artifact."""
    if not args.evidence:
        return None
    return folder_path(args.evidence, f"--evidence {quoted(args.evidence, PATH_SHOWN)}").resolve()


def _keep(evidence: Evidence, artifact: Path, folder: Path | None) -> None:
    """Evidence beside the artifact it is about, or in --evidence DIR, so the
    publishing job (elsewhere) has it."""
    path = evidence.write(folder or artifact.parent)
    print(printable(f"evidence: {path}"), file=sys.stderr)


# -- commands -----------------------------------------------------------------
def validate(args) -> int:
    problems = problems_of(args.recipes)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems and not args.quiet:
        for path in args.recipes:
            print(f"{path}: ok")
    return 1 if problems else 0


def schema(args) -> int:
    sys.stdout.write(schema_text())
    return 0


def _build_options(args, targets):
    """Everything a build takes from the command line and the environment,
    checked before its first container: the folders (each a folder, or a
    path where one can be made), the integer settings, the engines."""
    check_integer_settings()
    engines = tuple(args.engine or ()) + load_settings()
    check_engines(targets, engines)
    return BuildOptions(
        out_dir=folder_path(args.out, f"--out {quoted(args.out, PATH_SHOWN)}").resolve(),
        sources_dir=(folder_path(args.sources, f"--sources {quoted(args.sources, PATH_SHOWN)}").resolve()
                     if args.sources else default_sources_dir()),
        overrides=tuple(args.source or ()),
        revision=args.revision,
        jobs=args.make_jobs,
        quiet=args.json,
        use_cache=not args.no_cache,
        cache_dir=default_build_cache_dir(),
        engines=engines,
        choices=tuple(args.choices or ()),
    )


def build(args) -> int:
    recipe = _load(args.recipe)
    targets = _builds(_targets(recipe, args.target, args.all), args.arch, args.method)
    resolve(recipe, tuple(args.choices or ()))  # an unknown option stops here, before any sandbox
    options = _build_options(args, targets)
    evidence_folder = _evidence_folder(args)
    # once, not once per target: offline, a missing tarball is one error
    fetch_all(recipe.sources, options.sources_dir, [target.label for target in targets],
              overridden={name for name, _ in options.overrides})
    jobs = args.jobs or min(len(targets), os.cpu_count() or 1)
    matrix = Matrix(recipe, targets, options, jobs=jobs, skip_unavailable=args.skip_unavailable,
                    check_reproducible=args.check_reproducible)
    outcomes = matrix.run()
    for outcome in outcomes:
        placed = {artifact.path.name: artifact.path for artifact in outcome.result.artifacts} if outcome.result else {}
        for comparison in outcome.comparisons:
            if comparison.artifact in placed:
                _keep(comparison.evidence(placed[comparison.artifact]), placed[comparison.artifact], evidence_folder)
    if args.json:
        print(json.dumps([outcome.as_dict() for outcome in outcomes], indent=1))
    else:
        for outcome in outcomes:
            if outcome.result is not None:
                for artifact in outcome.result.artifacts:
                    print(f"{artifact.path}  sha256={artifact.sha256}  {artifact.size} bytes"
                          + ("  (cached)" if outcome.status == "cached" else ""))
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    for outcome in outcomes:
        if len(outcomes) == 1 and outcome.status == "failed":
            print(printable(f"qmail-pkg: error: {outcome.reason}"), file=sys.stderr)
        elif outcome.status in ("failed", "skipped"):
            print(printable(f"qmail-pkg: {outcome.target}: {outcome.status}: {outcome.reason}"), file=sys.stderr)
    return 1 if failed else 0


def source(args) -> int:
    recipe = _load(args.recipe)
    targets = _builds(_targets(recipe, args.target, args.all), args.arch)
    check_integer_settings()
    engines = load_settings()
    check_engines(targets, engines)
    out = folder_path(args.out, f"--out {quoted(args.out, PATH_SHOWN)}").resolve()
    options = SourceOptions(
        out_dir=out,
        sources_dir=(folder_path(args.sources, f"--sources {quoted(args.sources, PATH_SHOWN)}").resolve()
                     if args.sources else default_sources_dir()),
        revision=args.revision, quiet=args.json, engines=engines)
    obs = folder_path(args.obs, f"--obs {quoted(args.obs, PATH_SHOWN)}").resolve() if args.obs else None
    if obs is not None and not {"deb", "rpm"} <= {fmt for target in targets for fmt in target.formats}:
        raise QmailPkgError("--obs lays out a Debian source package and an RPM .spec together: name a Debian "
                            "target and an RPM target (e.g. --target debian-12 --target el-9)")
    summary: list[dict[str, Any]] = []  # printed as JSON
    written: list[SourceResult] = []
    for target in targets:
        outcome = make_sources(recipe, target, options)
        written += outcome.results
        row: dict[str, Any] = {"target": outcome.target, "log": str(outcome.log_path),
               "sources": [{"kind": r.kind, "main": str(r.main), "files": [str(p) for p in r.files]}
                           for r in outcome.results]}
        for result in outcome.results:
            if not args.json:
                print(f"{result.main}  ({result.kind}: {len(result.files)} files)")
        if args.rebuild:
            for result in outcome.results:
                if result.kind not in FARM_COMMANDS:
                    continue
                done = rebuild(target, result, out / target.name / "rebuilt", options.out_dir / "logs", args.json)
                row.setdefault("rebuilt", []).extend(str(path) for path in done.files)
                if not args.json:
                    for path in done.files:
                        print(f"{path}  (rebuilt from the {result.kind} source in {done.image}, "
                              f"{done.seconds:.1f} s)")
        summary.append(row)
    if obs is not None:
        folder = obs_package(written, obs / recipe.package.name, recipe.package.name)
        summary.append({"obs": str(folder)})
        if not args.json:
            print(f"{folder}  (Open Build Service package: the Debian source and the .spec)")
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


def images(args) -> int:
    recipe = _load(args.recipe)
    check_integer_settings()  # image bootstraps inherit SOURCE_DATE_EPOCH
    roles = ROLES if args.verify else ("build",)
    for target in _builds(_targets(recipe, args.target, args.all), args.arch, args.method):
        for role in roles:
            environment = prepare_environment(target, role, lambda line: print(line, file=sys.stderr))
            print(f"{environment.reference} {environment.identity[:19]}")
    return 0


def selftest(args) -> int:
    check_integer_settings()
    default_build_cache_dir()  # checked here: the build reaches its cache after its image
    return run_selftest(Path(args.out).resolve() if args.out else None, target_name=args.target)


def verify(args) -> int:
    check_integer_settings()  # harvests from sandboxes are bounded by them
    if args.power_cut:
        machine_cache_dir()  # QMAIL_PKG_VM_CACHE (or the XDG cache) is a folder, before any machine is made
    recipe = _recipe_of(args.recipe, args.artifacts)
    target = _targets(recipe, [args.target], False)[0]
    evidence_folder = _evidence_folder(args)
    if args.power_cut:
        return _power_cut(args, recipe, target, evidence_folder)
    hosts = list(HOSTS.values()) if args.host == "all" else [host_named(args.host)]
    verified = Path(args.artifacts[-1]).resolve()  # the package the lifecycle ends with
    reports = []
    for host in hosts:
        if len(hosts) > 1 and not args.json:
            print(f"== {target.name} on a {host.name} host", file=sys.stderr, flush=True)
        reports.append(run_verify(
            recipe,
            target,
            [Path(p).resolve() for p in args.artifacts],
            previous=Path(args.previous).resolve() if args.previous else None,
            messages=args.messages,
            stream=None if args.json else sys.stderr,
            host=host,
        ))
        _keep(reports[-1].evidence(verified, digest_file(verified, "sha256"), host.name), verified, evidence_folder)
    if args.json:
        print(json.dumps(reports[0].as_dict() if len(reports) == 1 else [r.as_dict() for r in reports], indent=1))
    return 0 if all(report.passed for report in reports) else 1


def _power_cut(args, recipe, target, evidence_folder: Path | None) -> int:
    inputs = power_cut_inputs(target, [Path(p) for p in args.artifacts], Path(args.baseline) if args.baseline else None)
    keep = Path(args.keep).resolve() if args.keep else runs_folder(inputs.package)
    options = PowerCutOptions(cycles=args.power_cut, filesystems=tuple(args.fs or FILESYSTEMS),
                              baseline=inputs.baseline, seed=args.seed, jobs=args.jobs or 0, keep=keep)
    report = run_power_cut(recipe, inputs.target, inputs.package, inputs.name, options,
                           log=lambda line: print(f"power cut: {line}", file=sys.stderr, flush=True),
                           baseline_name=inputs.baseline_name)
    _keep(report.evidence(inputs.package, digest_file(inputs.package, "sha256")), inputs.package, evidence_folder)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(report.table())
        failed = [r for r in report.results if r.error]
        for result in failed:
            print(f"{result.cycle.name}: {result.error}", file=sys.stderr)
        print(f"{'PASS' if report.passed else 'FAIL'}: acknowledged mail "
              f"{'survived every power cut' if report.passed else 'was not safe in every cycle'} "
              f"with {inputs.package.name} (details: {options.keep}/report.json)")
    return 0 if report.passed else 1


def piuparts(args) -> int:
    check_integer_settings()
    piuparts_bases_dir()  # QMAIL_PKG_PIUPARTS_BASES (or the XDG cache) is a folder, before any container
    recipe = _recipe_of(args.recipe, args.artifacts)
    target = _targets(recipe, [args.target], False)[0]
    if args.log and len(args.artifacts) > 1:
        raise QmailPkgError("--log names one log file: give one package with it")
    evidence_folder = _evidence_folder(args)
    results = []
    for text in args.artifacts:
        result = run_piuparts(target, Path(text).resolve(), log_path=Path(args.log).resolve() if args.log else None,
                              progress=lambda line: print(line, file=sys.stderr))
        results.append(result)
        _keep(result.evidence(digest_file(result.artifact, "sha256")), result.artifact, evidence_folder)
        if not args.json:
            print(f"{'PASS' if result.passed else 'FAIL'}  piuparts {target.name} {result.artifact.name}: "
                  f"{'strict, nothing left after purge' if result.passed else 'see below'} "
                  f"({result.seconds:.1f} s); log: {result.log}")
            for line in result.findings[:40]:
                print(f"    {line}")
            if len(result.findings) > 40:
                print(f"    ... {len(result.findings) - 40} more lines in the log")
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=1))
    return 0 if all(result.passed for result in results) else 1


def lint(args) -> int:
    recipe = _recipe_of(args.recipe, args.artifacts)
    evidence_folder = _evidence_folder(args)
    failed = 0
    for text in args.artifacts:
        path = Path(text)
        fmt = path.suffix.lstrip(".")
        if fmt not in PACKAGERS:
            made = ", ".join(f".{name}" for name in PACKAGERS)
            raise QmailPkgError(f"{path}: not a package this tool makes ({made})")
        if not path.is_file():
            raise QmailPkgError(f"{path}: no such file")
        results = lint_artifact(path, recipe)
        for result in results:
            failed += not result.passed
            print(f"{result.word}  {path.name}: {result.name}: {result.evidence}")
        evidence = Evidence.made("lint", path, digest_file(path, "sha256"), all(r.passed for r in results), results)
        _keep(evidence, path.resolve(), evidence_folder)
    return 1 if failed else 0


def repo_publish(args) -> int:
    report = publish(
        Path(args.artifacts), Path(args.repo), recipe=_load(args.recipe), key=args.key,
        pkg_key=Path(args.pkg_key) if args.pkg_key else None, prune=args.prune,
        base_url=args.base_url or "",
        rebuilt=Path(args.rebuilt) if args.rebuilt else None, require_provenance=args.require_provenance,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        for where in report.added:
            print(f"added      {where}")
        for where in report.unchanged:
            print(f"unchanged  {where}")
        for where in report.pruned:
            print(f"pruned     {where}")
        for where in report.indexes:
            print(f"signed     {where}")
        for why in report.ignored:
            print(printable(f"ignored    {why}"))
        if report.pages:
            print(f"wrote      index.html and {len(report.pages) - 1} package page(s)")
    return 0


def clean(args) -> int:
    removed, kept = remove_leftovers(keep_live=not args.all)
    print(f"removed {len(removed)} container(s)" + (f": {' '.join(removed)}" if removed else ""))
    if kept:
        print(f"kept {len(kept)} of runs still going on this machine: {' '.join(kept)} (--all removes them too)")
    return 0


def ci(args) -> int:
    recipe = _load(args.recipe)
    text = render_pipeline(args.provider, recipe, args.recipe)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    destination = args.out if args.out else str(default_destination(args.provider))
    write_pipeline(destination, text)
    print(printable(f"wrote {destination}"))
    return 0


def miniature(args) -> int:
    """The example recipe pinned to the miniature sources, and those sources:
    the whole chain (build, verify, publish, a pipeline) without the real
    tarballs, offline or in CI."""
    folder = folder_path(args.folder, f"folder {quoted(args.folder, PATH_SHOWN)}")
    recipe = _load(args.recipe) if args.recipe else None  # a recipe given is checked first, in one line each
    names = sorted(source.name for source in recipe.sources) if recipe else MINIATURE_SOURCES
    if names != MINIATURE_SOURCES:
        raise QmailPkgError(f"{args.recipe}: its sources are {', '.join(names)}; the miniature stands in for "
                            f"{' and '.join(MINIATURE_SOURCES)} only")
    recipe_path, sources = miniature_recipe(Path(args.recipe) if args.recipe else example_recipe(), folder)
    print(f"recipe   {recipe_path}\nsources  {sources}")
    print(printable(f"try: qmail-pkg build {recipe_path} --target debian-12 --sources {sources}"))
    return 0


def setup_host(args) -> int:
    if os.geteuid() != 0:
        raise QmailPkgError("setup-host installs packages, registers qemu and may start dockerd: run it as root "
                            "(sudo qmail-pkg setup-host)")
    run_shown(["sh", host_setup_script()], what="setting up this host", error=QmailPkgError)
    return 0
