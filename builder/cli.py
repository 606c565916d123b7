"""`qmail-pkg`: thin command line over the stages. Parses arguments, calls the
stages, renders progress and errors (one line each, non-zero exit)."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import sys
import traceback
from pathlib import Path

from . import __version__, emulation
from .cache import default_cache_dir as default_build_cache_dir
from .ci import default_destination, render_pipeline, write_pipeline
from .engines import EngineError, check_engines, load_settings, parse_flag
from .environ import PATH_SHOWN, check_integer_settings, folder_path
from .errors import QmailPkgError, RecipeError, printable, quoted
from .sources import default_cache_dir as default_sources_dir
from .verify.piuparts import bases_dir as piuparts_bases_dir
from .verify.powercut.images import cache_dir as machine_cache_dir

EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
MAX_REVISION = 999999  # as the recipe schema's package.revision


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that every `finally` and every
    sandbox's __exit__ runs exactly as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the cleanup short
    raise Terminated


def _whole_number(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, printable(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _source_override(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path).resolve()


def _option(value: bool):
    def parse(text: str) -> tuple[str, bool]:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", text):
            raise argparse.ArgumentTypeError(f"{text!r} is not an option name (lower-case letters, digits and -)")
        return text, value

    return parse


def _engine(text: str):
    try:
        return parse_flag(text)
    except EngineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(recipe_path: str):
    from .preflight import load_checked

    return load_checked(recipe_path)


def _builds(targets, architectures: list[str] | None):
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
            builds.append(target.for_architecture(architecture))
    native = emulation.host_architecture()
    return sorted(builds, key=lambda build: build.architecture == native)


def _targets(recipe, names: list[str] | None, all_targets: bool):
    if all_targets:
        return list(recipe.targets)
    if not names:
        raise QmailPkgError(
            f"{recipe.path}: name a target with --target (one of: {', '.join(t.name for t in recipe.targets)}) or use --all"
        )
    chosen = []
    for name in names:
        try:
            chosen.append(recipe.target(name))
        except KeyError:
            known = ", ".join(t.name for t in recipe.targets)
            raise QmailPkgError(f"{recipe.path}: no target '{name}' (known: {known})") from None
    return chosen


# -- commands -----------------------------------------------------------------
def cmd_validate(args) -> int:
    from .preflight import problems_of

    problems = problems_of(args.recipes)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems and not args.quiet:
        for path in args.recipes:
            print(f"{path}: ok")
    return 1 if problems else 0


def cmd_schema(args) -> int:
    from .recipe.loader import schema_text

    sys.stdout.write(schema_text())
    return 0


def _build_options(args, targets):
    """Everything a build takes from the command line and the environment,
    checked before its first container: the folders (each a folder, or a
    path where one can be made), the integer settings, the engines."""
    from .pipeline import BuildOptions

    check_integer_settings()
    engines = tuple(args.engine or ()) + load_settings()
    check_engines(targets, engines)
    return BuildOptions(
        out_dir=folder_path(args.out, f"--out {quoted(args.out, PATH_SHOWN)}").resolve(),
        sources_dir=(folder_path(args.sources, f"--sources {quoted(args.sources, PATH_SHOWN)}").resolve() if args.sources
                     else default_sources_dir()),
        overrides=tuple(args.source or ()),
        revision=args.revision,
        jobs=args.make_jobs,
        quiet=args.json,
        use_cache=not args.no_cache,
        cache_dir=default_build_cache_dir(),
        engines=engines,
        choices=tuple(args.choices or ()),
    )


def cmd_build(args) -> int:
    from .matrix import Matrix

    from .recipe.options import resolve

    recipe = _load(args.recipe)
    targets = _builds(_targets(recipe, args.target, args.all), args.arch)
    resolve(recipe, tuple(args.choices or ()))  # an unknown option stops here, before any sandbox
    options = _build_options(args, targets)
    jobs = args.jobs or min(len(targets), os.cpu_count() or 1)
    matrix = Matrix(recipe, targets, options, jobs=jobs, skip_unavailable=args.skip_unavailable,
                    check_reproducible=args.check_reproducible)
    outcomes = matrix.run()
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


def cmd_images(args) -> int:
    from .environment import prepare_environment

    recipe = _load(args.recipe)
    from .sandbox.images import ROLES

    check_integer_settings()  # image bootstraps inherit SOURCE_DATE_EPOCH
    roles = ROLES if args.verify else ("build",)
    for target in _builds(_targets(recipe, args.target, args.all), args.arch):
        for role in roles:
            environment = prepare_environment(target, role, lambda line: print(line, file=sys.stderr))
            print(f"{environment.reference} {environment.identity[:19]}")
    return 0


def cmd_selftest(args) -> int:
    from .selftest import run_selftest

    check_integer_settings()
    default_build_cache_dir()  # checked here: the build reaches its cache after its image
    return run_selftest(Path(args.out).resolve() if args.out else None, target_name=args.target)


def cmd_verify(args) -> int:
    from .verify import run_verify

    recipe = _load(args.recipe)
    target = _targets(recipe, [args.target], False)[0]
    check_integer_settings()  # harvests from sandboxes are bounded by them
    if args.power_cut:
        return _power_cut(args, recipe, target)
    from .verify.hosts import HOSTS, host_named

    hosts = list(HOSTS.values()) if args.host == "all" else [host_named(args.host)]
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
    if args.json:
        print(json.dumps(reports[0].as_dict() if len(reports) == 1 else [r.as_dict() for r in reports], indent=1))
    return 0 if all(report.passed for report in reports) else 1


def _power_cut(args, recipe, target) -> int:
    from .errors import VerifyError
    from .verify.lifecycle import find_record
    from .verify.powercut import FILESYSTEMS, PowerCutOptions, run_power_cut

    machine_cache_dir()  # QMAIL_PKG_VM_CACHE (or the XDG cache) is a folder, before any machine is made
    if len(args.artifacts) != 1:
        raise VerifyError("--power-cut takes one package (and --baseline for the comparison)")
    package = Path(args.artifacts[0]).resolve()
    for path in [package, *([Path(args.baseline)] if args.baseline else [])]:
        if not path.is_file():
            raise VerifyError(f"{path}: no such package")
    record = find_record(package)
    target = target.for_architecture(record.architecture)
    if record.variant:
        raise VerifyError(f"{package.name} is a variant build ({dict(record.variant)}); give the package itself, "
                          "and the variant as --baseline")
    baseline_name = ""
    if args.baseline:
        baseline_record = find_record(Path(args.baseline).resolve())
        if not baseline_record.variant:
            raise VerifyError(f"--baseline {args.baseline}: not a variant build; build it with --without syncdir")
        baseline_name = baseline_record.package
    options = PowerCutOptions(cycles=args.power_cut, filesystems=tuple(args.fs or FILESYSTEMS),
                              baseline=Path(args.baseline).resolve() if args.baseline else None, seed=args.seed,
                              jobs=args.jobs or 0, keep=Path(args.keep).resolve())
    report = run_power_cut(recipe, target, package, record.package, options,
                           log=lambda line: print(f"power cut: {line}", file=sys.stderr, flush=True),
                           baseline_name=baseline_name)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        print(report.table())
        failed = [r for r in report.results if r.error]
        for result in failed:
            print(f"{result.cycle.name}: {result.error}", file=sys.stderr)
        print(f"{'PASS' if report.passed else 'FAIL'}: acknowledged mail "
              f"{'survived every power cut' if report.passed else 'was not safe in every cycle'} "
              f"with {package.name} (details: {options.keep}/report.json)")
    return 0 if report.passed else 1


def cmd_piuparts(args) -> int:
    from .verify.piuparts import run_piuparts

    check_integer_settings()
    piuparts_bases_dir()  # QMAIL_PKG_PIUPARTS_BASES (or the XDG cache) is a folder, before any container
    recipe = _load(args.recipe)
    target = _targets(recipe, [args.target], False)[0]
    if args.log and len(args.artifacts) > 1:
        raise QmailPkgError("--log names one log file: give one package with it")
    results = []
    for text in args.artifacts:
        result = run_piuparts(target, Path(text).resolve(), log_path=Path(args.log).resolve() if args.log else None,
                              progress=lambda line: print(line, file=sys.stderr))
        results.append(result)
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


def cmd_lint(args) -> int:
    from .package import PACKAGERS

    recipe = _load(args.recipe)
    failed = 0
    for text in args.artifacts:
        path = Path(text)
        fmt = path.suffix.lstrip(".")
        if fmt not in PACKAGERS:
            made = ", ".join(f".{name}" for name in PACKAGERS)
            raise QmailPkgError(f"{path}: not a package this tool makes ({made})")
        if not path.is_file():
            raise QmailPkgError(f"{path}: no such file")
        result = PACKAGERS[fmt].lint(path, recipe)
        failed += not result.passed
        print(f"{'PASS' if result.passed else 'FAIL'}  {path.name}: {result.name}: {result.evidence}")
    return 1 if failed else 0


def cmd_repo_publish(args) -> int:
    from .repo.publish import publish

    report = publish(
        Path(args.artifacts), Path(args.repo), recipe=_load(args.recipe), key=args.key,
        pkg_key=Path(args.pkg_key) if args.pkg_key else None, prune=args.prune,
        allow_test_only=args.allow_test_only, base_url=args.base_url or "",
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
    return 0


def cmd_clean(args) -> int:
    from .sandbox.docker import remove_leftovers

    removed = remove_leftovers()
    print(f"removed {len(removed)} container(s)" + (f": {' '.join(removed)}" if removed else ""))
    return 0


def cmd_ci(args) -> int:
    recipe = _load(args.recipe)
    text = render_pipeline(args.provider, recipe, args.recipe)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    destination = args.out if args.out else str(default_destination(args.provider))
    write_pipeline(destination, text)
    print(printable(f"wrote {destination}"))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qmail-pkg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"qmail-pkg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="check recipes; one line per problem")
    p.add_argument("recipes", nargs="+")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the recipe JSON Schema")
    p.set_defaults(func=cmd_schema)

    def target_args(p):
        p.add_argument("recipe")
        p.add_argument("--target", action="append", help="target name (repeatable)")
        p.add_argument("--all", action="store_true", help="every target of the recipe")
        p.add_argument("--arch", action="append", metavar="ARCH",
                       help="build for this architecture (Debian's spelling, repeatable; `all`: every one the "
                            "target lists; default: its first). Another than this host's runs under qemu-user "
                            "emulation")

    p = sub.add_parser("build", help="build packages for targets of a recipe")
    target_args(p)
    p.add_argument("--out", default="dist", help="output folder (default: dist)")
    p.add_argument("--sources", help="source cache folder (default: $QMAIL_PKG_SOURCES or XDG cache)")
    p.add_argument("--source", action="append", type=_source_override, metavar="NAME=PATH",
                   help="development override: use a local tarball or directory (marks the build unofficial)")
    p.add_argument("--revision", type=_whole_number(1, MAX_REVISION),
                   help="package revision instead of the recipe's release")
    p.add_argument("--jobs", "-j", type=_whole_number(1, 64), metavar="N",
                   help="targets built at once (default: as many as cores, at most the targets)")
    p.add_argument("--make-jobs", type=_whole_number(1, 1024), metavar="N",
                   help="parallel make jobs inside each build (default: the target's, else CPUs)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--no-cache", action="store_true", help="build even when the build cache holds the result")
    p.add_argument("--engine", action="append", type=_engine, metavar="PATTERN=URL",
                   help="build targets matching PATTERN on another Docker engine (unix://, ssh://; tcp:// needs "
                        "the settings file's TLS) or, with jail+ssh://, on a FreeBSD jail host; also read from "
                        "$QMAIL_PKG_BUILDERS or ~/.config/qmail-pkg/builders.yaml")
    p.add_argument("--check-reproducible", action="store_true",
                   help="build twice (other folder, host name, time zone, umask, make -j1) and compare the bytes; "
                        "a difference is explained by diffoscope, its report kept beside the artifacts")
    p.add_argument("--with", dest="choices", action="append", type=_option(True), metavar="OPTION",
                   help="turn a build option of the recipe on (see its `options:`)")
    p.add_argument("--without", dest="choices", action="append", type=_option(False), metavar="OPTION",
                   help="turn a build option off: the result is a variant, renamed and never published "
                        "(e.g. --without syncdir, the power-cut baseline)")
    p.add_argument("--skip-unavailable", action="store_true",
                   help="report targets whose image or jail this host cannot have as skipped, not failed")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("images", help="make sure the base images exist (bootstrap them if not)")
    target_args(p)
    p.add_argument("--verify", action="store_true", help="also the verification images")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("selftest", help="build and check a tiny built-in package, offline")
    p.add_argument("--out", help="keep the artifacts in this folder")
    p.add_argument("--target", default="debian-12")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("verify", help="install/upgrade/remove lifecycle checks in clean sandboxes")
    p.add_argument("artifacts", nargs="+",
                   help="packages with their build records beside them; the upgrade goes from the first "
                        "(or --previous) to the last; a single package is upgraded over itself")
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "qmail-syncdir.yaml"))
    p.add_argument("--target", required=True)
    p.add_argument("--previous", help="artifact to upgrade from (default: the first of several artifacts)")
    p.add_argument("--messages", type=_whole_number(1, 100000),
                   help="messages in flight during the upgrade (default: 200; 1000 under emulation, where the "
                        "package manager takes long to reach its scripts)")
    p.add_argument("--host", default="svscan", choices=["svscan", "systemd-daemontools", "systemd", "systemd-apt", "all"],
                   help="the kind of host: svscan as the main process (default), systemd with Debian's "
                        "daemontools-run, systemd without daemontools (the package's own units), systemd "
                        "where `apt install ./PKG.deb` pulls the recommended daemontools-run, or all of them")
    p.add_argument("--json", action="store_true")
    p.add_argument("--power-cut", type=_whole_number(1, 10000), metavar="N",
                   help="instead of the lifecycle: N power cuts per file system in a virtual machine, every "
                        "acknowledged message classified (delivered, queued, stranded, lost)")
    p.add_argument("--fs", action="append", choices=["ext4", "ext4-nojournal", "xfs"],
                   help="file system for --power-cut (repeatable; default: all three)")
    p.add_argument("--baseline", help="the same package built --without syncdir, to show the difference")
    p.add_argument("--seed", type=_whole_number(0, 2**31), default=1,
                   help="first seed of the power-cut moments (a cycle's seed replays its cut delay)")
    p.add_argument("--jobs", "-j", type=_whole_number(1, 64), metavar="N",
                   help="machines at once for --power-cut (default: as many as cores)")
    p.add_argument("--keep", default="power-cut", help="folder for consoles, repairs and classifications")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("piuparts", help="Debian's package tester, strictly, on the target's own base image",
                       description="piuparts on .deb packages of a Debian target: install, remove, install again, "
                                   "purge, and fail on anything left behind (no --warn-on-* option), with adequate. "
                                   "The base system is the target's verification image (exported once per image id); "
                                   "the mirror is the host's apt mirror. Needs root and piuparts.")
    p.add_argument("artifacts", nargs="+", help=".deb packages of the target")
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "qmail-syncdir.yaml"))
    p.add_argument("--target", required=True)
    p.add_argument("--log", help="piuparts' full log (default: beside the package, <package>.piuparts.log)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_piuparts)

    p = sub.add_parser("lint", help="the format's linter as a gate: lintian, rpmlint, .pkg read-back")
    p.add_argument("artifacts", nargs="+")
    p.add_argument("--recipe", default=str(Path(__file__).resolve().parents[1] / "recipes" / "qmail-syncdir.yaml"))
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("repo", help="signed package repositories")
    repo_sub = p.add_subparsers(dest="repo_command", required=True, parser_class=_Parser)
    p = repo_sub.add_parser("publish", help="add built artifacts to a repository tree and re-sign its indexes")
    p.add_argument("artifacts", help="the folder `qmail-pkg build --out` wrote (all targets at once)")
    p.add_argument("--repo", required=True, help="the repository tree (created if missing)")
    p.add_argument("--key", help="GnuPG key id or fingerprint (keyring or agent), or a secret-key file; "
                                 "passphrase from $QMAIL_PKG_SIGNING_PASSPHRASE or the agent")
    p.add_argument("--pkg-key", help="RSA private key (PEM) that signs FreeBSD pkg catalogues")
    p.add_argument("--prune", type=_whole_number(1, 1000), metavar="N", help="keep only the newest N versions")
    p.add_argument("--allow-test-only", action="store_true",
                   help="publish test-only packages too (the repository then says it is a test)")
    p.add_argument("--base-url", help="where users will fetch the tree from (for the snippets; default file://)")
    p.add_argument("--recipe", default="recipes/qmail-syncdir.yaml",
                   help="the recipe the artifacts were built from: every artifact is checked against it (and its "
                        "record must name this recipe's sha256) before anything is signed "
                        "(default: recipes/qmail-syncdir.yaml)")
    p.add_argument("--rebuilt", metavar="DIR",
                   help="the output folder of an independent rebuild: every artifact must have a byte-identical twin "
                        "there, or nothing is signed")
    p.add_argument("--require-provenance", action="store_true",
                   help="the in-toto statement beside each record must name the same artifacts and digests")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_repo_publish)

    p = sub.add_parser("ci", help="write a CI pipeline: a job per target, an independent rebuild, publishing on tags")
    p.add_argument("provider", choices=["github", "gitlab"])
    p.add_argument("recipe")
    p.add_argument("--out", help="file to write (default: .github/workflows/qmail-pkg.yml or .gitlab-ci.yml); - for stdout")
    p.set_defaults(func=cmd_ci)

    p = sub.add_parser("clean", help="remove containers left behind by killed runs")
    p.set_defaults(func=cmd_clean)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except RecipeError as exc:
        for line in exc.problems:
            print(printable(line), file=sys.stderr)
        return 1
    except QmailPkgError as exc:
        # messages quote names from archives, sandboxes and the environment:
        # whatever a module forgot to escape, one error stays one line
        print(printable(f"qmail-pkg: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("qmail-pkg: interrupted; sandboxes removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("qmail-pkg: terminated; sandboxes removed", file=sys.stderr)
        return EXIT_TERMINATED
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            where = f" ({exc.filename})" if exc.filename else ""
            print(printable(f"qmail-pkg: error: no space left on the device{where}; free some space "
                            "(`docker image prune` removes unused images) and run again"), file=sys.stderr)
            return 1
        return _internal(exc)
    except Exception as exc:  # a bug: say so in one line, traceback only on request
        return _internal(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _internal(exc: BaseException) -> int:
    if os.environ.get("QMAIL_PKG_DEBUG"):
        traceback.print_exception(exc)
    print(
        printable(f"qmail-pkg: internal error: {type(exc).__name__}: {exc} (set QMAIL_PKG_DEBUG=1 for details)"),
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
