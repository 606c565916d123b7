"""The command line's grammar: argument types that refuse bad values in one
line, and every subcommand with its options, each wired to its function in
commands.py."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .. import __version__
from ..engines import EngineError, parse_flag
from ..errors import printable
from . import commands

EXIT_USAGE = 2
MAX_REVISION = 999999  # as the recipe schema's package.revision
EVIDENCE_HELP = ("write the evidence (JSON, <artifact>.<kind>.evidence.json) into DIR instead of beside each "
                 "artifact; `repo publish` reads it beside the artifacts")
RECIPE_HELP = (f"the recipe (default: the one the build record names, when it is still there with the same sha256, "
               f"else {commands.DEFAULT_RECIPE})")


def whole_number(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text!r}")
        return value

    return parse


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, printable(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def source_override(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path).resolve()


def option(value: bool):
    def parse(text: str) -> tuple[str, bool]:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", text):
            raise argparse.ArgumentTypeError(f"{text!r} is not an option name (lower-case letters, digits and -)")
        return text, value

    return parse


def engine(text: str):
    try:
        return parse_flag(text)
    except EngineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="qmail-pkg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"qmail-pkg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("validate", help="check recipes; one line per problem")
    p.add_argument("recipes", nargs="+")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=commands.validate)

    p = sub.add_parser("schema", help="print the recipe JSON Schema")
    p.set_defaults(func=commands.schema)

    def target_args(p):
        p.add_argument("recipe")
        p.add_argument("--target", action="append", help="target name (repeatable)")
        p.add_argument("--all", action="store_true", help="every target of the recipe")
        how = p.add_mutually_exclusive_group()
        how.add_argument("--native", dest="method", action="store_const", const="native",
                         help="build natively: in an image of the target's own userland (EL: its distribution's "
                              "image, which needs a container registry) or a FreeBSD jail")
        how.add_argument("--cross", dest="method", action="store_const", const="cross",
                         help="cross-compile on this Linux host's Docker engine (the target's `cross:` toolchain). "
                              "Without either, each target builds as its recipe says: EL and FreeBSD cross-compiled "
                              "with Zig, Debian natively on amd64 and with Debian's cross gcc on arm64")
        p.add_argument("--arch", action="append", metavar="ARCH",
                       help="build for this architecture (Debian's spelling, repeatable; `all`: every one the "
                            "target lists; default: its first). A native build for another architecture than "
                            "this host's runs under qemu-user emulation; a cross build does not")

    p = sub.add_parser("build", help="build packages for targets of a recipe")
    target_args(p)
    p.add_argument("--out", default="dist", help="output folder (default: dist)")
    p.add_argument("--sources", help="source cache folder (default: $QMAIL_PKG_SOURCES or XDG cache)")
    p.add_argument("--source", action="append", type=source_override, metavar="NAME=PATH",
                   help="development override: use a local tarball or directory (marks the build unofficial)")
    p.add_argument("--revision", type=whole_number(1, MAX_REVISION),
                   help="package revision instead of the recipe's release")
    p.add_argument("--jobs", "-j", type=whole_number(1, 64), metavar="N",
                   help="targets built at once (default: as many as cores, at most the targets)")
    p.add_argument("--make-jobs", type=whole_number(1, 1024), metavar="N",
                   help="parallel make jobs inside each build (default: the target's, else CPUs)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--no-cache", action="store_true", help="build even when the build cache holds the result")
    p.add_argument("--engine", action="append", type=engine, metavar="PATTERN=URL",
                   help="build targets matching PATTERN on another Docker engine (unix://, ssh://; tcp:// needs "
                        "the settings file's TLS) or, with jail+ssh://, on a FreeBSD jail host; also read from "
                        "$QMAIL_PKG_BUILDERS or ~/.config/qmail-pkg/builders.yaml")
    p.add_argument("--check-reproducible", action="store_true",
                   help="build twice (other folder, host name, time zone, umask, make -j1) and compare the bytes; "
                        "a difference is explained by diffoscope, its report kept beside the artifacts, and the "
                        "outcome written as evidence (<artifact>.reproducible.evidence.json)")
    p.add_argument("--evidence", metavar="DIR",
                   help=EVIDENCE_HELP)
    p.add_argument("--with", dest="choices", action="append", type=option(True), metavar="OPTION",
                   help="turn a build option of the recipe on (see its `options:`)")
    p.add_argument("--without", dest="choices", action="append", type=option(False), metavar="OPTION",
                   help="turn a build option off: the result is a variant, renamed and never published "
                        "(e.g. --without syncdir, the power-cut baseline)")
    p.add_argument("--skip-unavailable", action="store_true",
                   help="report targets whose image or jail this host cannot have as skipped, not failed")
    p.set_defaults(func=commands.build)

    p = sub.add_parser("source", help="write the targets' source packages for build farms: a Debian source "
                                      "package, an SRPM and its .spec, a FreeBSD port")
    target_args(p)
    p.add_argument("--out", default="dist", help="output folder (default: dist); each target's go to OUT/<target>/")
    p.add_argument("--sources", help="source cache folder (default: $QMAIL_PKG_SOURCES or XDG cache)")
    p.add_argument("--revision", type=whole_number(1, MAX_REVISION),
                   help="package revision instead of the recipe's release")
    p.add_argument("--rebuild", action="store_true",
                   help="then build each source package as a farm does: in a clean container of the target "
                        "(build-essential, fakeroot, the declared build dependencies), network off, as a user that "
                        "is not root; the packages go to OUT/<target>/rebuilt/")
    p.add_argument("--obs", metavar="DIR",
                   help="also lay out the first Debian source and the first .spec of the targets as one Open Build "
                        "Service package in DIR/<package>/ (name a Debian and an RPM target)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.set_defaults(func=commands.source)

    p = sub.add_parser("images", help="make sure the base images exist (bootstrap them if not)")
    target_args(p)
    p.add_argument("--verify", action="store_true", help="also the verification images")
    p.set_defaults(func=commands.images)

    p = sub.add_parser("selftest", help="build and check a tiny built-in package, offline")
    p.add_argument("--out", help="keep the artifacts in this folder")
    p.add_argument("--target", default="debian-12")
    p.set_defaults(func=commands.selftest)

    p = sub.add_parser("miniature", help="write the example recipe pinned to miniature sources, and those sources, "
                                         "into a folder: the whole chain offline, or in CI")
    p.add_argument("folder", help="where to write recipes/ (the recipe and its patches) and sources/ (the tarballs)")
    p.add_argument("--recipe", help="the recipe to pin (default: the example recipe this tool ships)")
    p.set_defaults(func=commands.miniature)

    p = sub.add_parser("setup-host", help="as root: the host packages, qemu-user for other architectures and a "
                                          "Docker engine when none answers (what ./run.sh setup does for a checkout)")
    p.set_defaults(func=commands.setup_host)

    p = sub.add_parser("verify", help="install/upgrade/remove lifecycle checks in clean sandboxes")
    p.add_argument("artifacts", nargs="+",
                   help="packages with their build records beside them; the upgrade goes from the first "
                        "(or --previous) to the last; a single package is upgraded over itself")
    p.add_argument("--recipe", help=RECIPE_HELP)
    p.add_argument("--target", required=True)
    p.add_argument("--previous", help="artifact to upgrade from (default: the first of several artifacts)")
    p.add_argument("--messages", type=whole_number(1, 100000),
                   help="messages in flight during the upgrade (default: 200; 1000 under emulation, where the "
                        "package manager takes long to reach its scripts)")
    p.add_argument("--host", default="svscan",
                   choices=["svscan", "systemd-daemontools", "systemd", "systemd-apt", "all"],
                   help="the kind of host: svscan as the main process (default), systemd with Debian's "
                        "daemontools-run, systemd without daemontools (the package's own units), systemd "
                        "where `apt install ./PKG.deb` pulls the recommended daemontools-run, or all of them")
    p.add_argument("--json", action="store_true")
    p.add_argument("--power-cut", type=whole_number(1, 10000), metavar="N",
                   help="instead of the lifecycle: N power cuts per file system in a virtual machine, every "
                        "acknowledged message classified (delivered, queued, stranded, lost)")
    p.add_argument("--fs", action="append", choices=["ext4", "ext4-nojournal", "xfs"],
                   help="file system for --power-cut (repeatable; default: all three)")
    p.add_argument("--baseline", help="the same package built --without syncdir, to show the difference")
    p.add_argument("--seed", type=whole_number(0, 2**31), default=1,
                   help="first seed of the power-cut moments (a cycle's seed replays its cut delay)")
    p.add_argument("--jobs", "-j", type=whole_number(1, 64), metavar="N",
                   help="machines at once for --power-cut (default: as many as cores)")
    p.add_argument("--keep", help="folder for consoles, repairs and classifications (default: a new folder in the "
                                  "power-cut cache, $QMAIL_PKG_VM_CACHE or the XDG cache)")
    p.add_argument("--evidence", metavar="DIR",
                   help=EVIDENCE_HELP)
    p.set_defaults(func=commands.verify)

    p = sub.add_parser("piuparts", help="Debian's package tester, strictly, on the target's own base image",
                       description="piuparts on .deb packages of a Debian target: install, remove, install again, "
                                   "purge, and fail on anything left behind (no --warn-on-* option), with adequate. "
                                   "The base system is the target's verification image (exported once per image id); "
                                   "the mirror is the host's apt mirror. Needs root and piuparts.")
    p.add_argument("artifacts", nargs="+", help=".deb packages of the target")
    p.add_argument("--recipe", help=RECIPE_HELP)
    p.add_argument("--target", required=True)
    p.add_argument("--log", help="piuparts' full log (default: beside the package, <package>.piuparts.log)")
    p.add_argument("--evidence", metavar="DIR",
                   help=EVIDENCE_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.piuparts)

    p = sub.add_parser("lint", help="the format's linter as a gate: lintian, rpmlint, .pkg read-back")
    p.add_argument("artifacts", nargs="+")
    p.add_argument("--recipe", help=RECIPE_HELP)
    p.add_argument("--evidence", metavar="DIR",
                   help=EVIDENCE_HELP)
    p.set_defaults(func=commands.lint)

    p = sub.add_parser("repo", help="signed package repositories")
    repo_sub = p.add_subparsers(dest="repo_command", required=True, parser_class=Parser)
    p = repo_sub.add_parser("publish", help="add built artifacts to a repository tree and re-sign its indexes")
    p.add_argument("artifacts", help="the folder `qmail-pkg build --out` wrote (all targets at once)")
    p.add_argument("--repo", required=True, help="the repository tree (created if missing)")
    p.add_argument("--key", help="GnuPG key id or fingerprint (keyring or agent), or a secret-key file; "
                                 "passphrase from $QMAIL_PKG_SIGNING_PASSPHRASE or the agent")
    p.add_argument("--pkg-key", help="RSA private key (PEM) that signs FreeBSD pkg catalogues")
    p.add_argument("--prune", type=whole_number(1, 1000), metavar="N", help="keep only the newest N versions")
    p.add_argument("--base-url", help="where users will fetch the tree from (for the snippets; default file://)")
    p.add_argument("--recipe", default=commands.DEFAULT_RECIPE,
                   help="the recipe the artifacts were built from: every artifact is checked against it (and its "
                        f"record must name this recipe's sha256) before anything is signed (default: "
                        f"{commands.DEFAULT_RECIPE})")
    p.add_argument("--rebuilt", metavar="DIR",
                   help="the output folder of an independent rebuild: every artifact must have a byte-identical twin "
                        "there, or nothing is signed")
    p.add_argument("--require-provenance", action="store_true",
                   help="the in-toto statement beside each record must name the same artifacts and digests")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=commands.repo_publish)

    p = sub.add_parser("ci", help="write a CI pipeline: a job per target, an independent rebuild, publishing on tags")
    p.add_argument("provider", choices=["github", "gitlab"])
    p.add_argument("recipe")
    p.add_argument("--out",
                   help="file to write (default: .github/workflows/qmail-pkg.yml or .gitlab-ci.yml); - for stdout")
    p.set_defaults(func=commands.ci)

    p = sub.add_parser("clean", help="remove containers left behind by killed runs (those of runs still going "
                                      "on this machine are kept)")
    p.add_argument("--all", action="store_true", help="remove every container qmail-pkg made, running or not")
    p.set_defaults(func=commands.clean)
    return parser


__all__ = ["Parser", "build_parser"]
