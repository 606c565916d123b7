"""The source run: the target's build once more, in its build sandbox with
the network off and without the qmail accounts (a farm has none), one change
at a time. Each recipe patch and each prepare step is diffed against the tree
before it: one patch of the source package each. Then the build steps run,
the built tree is hashed, and the install steps lay out the staged tree,
whose every file the source package's install then takes from the built
file with the same content (builder/source/spec.py).

The sources lie as the source package unpacks them: the first at the top,
each other one in a folder named after it ($SRC_SYNCDIR is ./syncdir).
Everything read back out of the sandbox is data: bounded, never followed.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..environment import open_sandbox
from ..errors import BuildError, printable
from ..plan import Plan
from ..progress import Progress
from ..recipe.model import Target
from ..sandbox import Environment
from ..staged import ContentStore, IdNames, StagedTree, harvest, read_tree
from .base import HUNK, SourcePatch, Upstream

BUILD = "/build"
SOURCE_TOP = f"{BUILD}/pkg"  # the tree, as the source package unpacks it
DIFFS = f"{BUILD}/diffs"
RUN_FILES = f"{BUILD}/.qmail-pkg"
PATCH_FILES = f"{BUILD}/patches"
# the sandbox side of the run: static scripts, copied in beside the patches
RUN_SCRIPTS = Path(__file__).resolve().parent / "templates" / "run"
MAX_DIFF = 16 << 20  # bytes of one change's diff and listings



@dataclass(frozen=True)
class Change:
    """One change to the pristine sources: a recipe patch or a prepare step."""

    subject: str
    description: tuple[str, ...]
    origin: str
    argv: tuple[str, ...]
    architectures: tuple[str, ...] = ()  # empty: every architecture


@dataclass(frozen=True)
class SourceRun:
    patches: tuple[SourcePatch, ...]
    tree: StagedTree  # what the install steps laid out (before any stripping)
    built: tuple[tuple[str, str], ...]  # (path in the tree, sha256) after the build phase
    made_by_install: tuple[str, ...]  # paths in the tree that only the install phase made


def folder_of(upstream: Upstream) -> str:
    return f"{SOURCE_TOP}/{upstream.folder}" if upstream.folder else SOURCE_TOP


def source_env(plan: Plan, upstreams: tuple[Upstream, ...]) -> dict[str, str]:
    """The plan's environment with each $SRC_<NAME> where the source package has it."""
    env = dict(plan.env)
    for upstream in upstreams:
        env[f"SRC_{upstream.name.upper()}"] = folder_of(upstream)
    env["TZ"] = "UTC"
    return env


def step_comment(script: str) -> tuple[str, ...]:
    """The leading comment of a step, one line each, without the '#'."""
    lines = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        lines.append(stripped.lstrip("#").strip())
    return tuple(lines)


def changes_of(plan: Plan, upstreams: tuple[Upstream, ...]) -> tuple[list[Change], list[Change]]:
    """(The changes every architecture's build makes: the recipe's patches
    and its prepare steps, in the order a build runs them; the patches of
    some of the target's architectures only, each made on top of those.)"""
    target = plan.target
    folders = {upstream.name: folder_of(upstream) for upstream in upstreams}
    everywhere: list[Change] = []
    some: list[Change] = []
    for patch in target.patches:
        argv = ("patch", "--batch", "--forward", f"-p{patch.strip}", "-d", folders[patch.source],
                "-i", f"{PATCH_FILES}/{patch.file.name}")
        only = tuple(a for a in patch.architectures if a in target.architectures)
        if patch.architectures and not only:
            continue  # for architectures this target is not built for
        restricted = only if set(only) != set(target.architectures) else ()
        change = Change(f"{patch.file.name}, the recipe's patch to {patch.source}",
                        (f"The recipe's patches/{patch.file.name}, applied to {patch.source}"
                         + (f" on {', '.join(restricted)} only." if restricted else "."),),
                        f"patches/{patch.file.name}", argv, restricted)
        (some if restricted else everywhere).append(change)
    values = dict(plan.option_values)
    steps = []
    for number, (phase, script) in enumerate(target.phased_steps(values), 1):
        if phase == "prepare":
            comment = step_comment(script) or (script.strip().splitlines()[0],)
            steps.append(Change(comment[0], comment[1:], f"step {number} of target {target.name} (phase prepare)",
                                ("sh", "-eu", "-c", script)))
    return everywhere + steps, some


def _slug(number: int, subject: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:48].strip("-") or "change"
    return f"{number:04d}-{words}"


def _names(listing: bytes) -> set[str]:
    return {line[2:] for line in listing.decode("utf-8", "surrogateescape").splitlines() if line.startswith("./")}


def rewrite_diff(raw: str, created: set[str], removed: set[str], where: str) -> str:
    """`diff -Naur before pkg` as a patch of the source tree: a/ and b/
    paths, /dev/null for files made or removed, no time stamps. Hunks are
    counted, so a changed line that looks like a header stays a line."""
    out: list[str] = []
    lines = raw.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("diff "):
            index += 1
            continue
        if line.startswith(("Binary files ", "Symbolic links ", "File ")):
            raise BuildError(f"{where}: {printable(line.strip())}: a patch of a source package carries text only")
        if line.startswith("--- before/") and index + 1 < len(lines) and lines[index + 1].startswith("+++ pkg/"):
            old = line[len("--- before/"):].split("\t")[0].rstrip("\n")
            new = lines[index + 1][len("+++ pkg/"):].split("\t")[0].rstrip("\n")
            if old != new or old.startswith('"'):
                raise BuildError(f"{where}: {printable(old)}: a file name a patch cannot carry")
            out.append("--- /dev/null\n" if old in created else f"--- a/{old}\n")
            out.append("+++ /dev/null\n" if old in removed else f"+++ b/{old}\n")
            index += 2
            continue
        match = HUNK.match(line)
        if not match:
            raise BuildError(f"{where}: unexpected line in diff's output: {printable(line.rstrip()[:80])}")
        old_left = int(match.group(2) or 1)
        new_left = int(match.group(4) or 1)
        out.append(line)
        index += 1
        while (old_left > 0 or new_left > 0) and index < len(lines):
            body = lines[index]
            if body.startswith("\\"):
                out.append(body)
            elif body.startswith(" "):
                old_left, new_left = old_left - 1, new_left - 1
                out.append(body)
            elif body.startswith("-"):
                old_left -= 1
                out.append(body)
            elif body.startswith("+"):
                new_left -= 1
                out.append(body)
            else:
                raise BuildError(f"{where}: a hunk of diff's output ends early")
            index += 1
        while index < len(lines) and lines[index].startswith("\\"):
            out.append(lines[index])
            index += 1
    return "".join(out)


def _read_folder(sandbox, folder: str) -> dict[str, bytes]:
    """The regular files directly in a sandbox folder, by name, bounded."""
    found: dict[str, bytes] = {}
    top = posixpath.basename(folder)
    with sandbox.open_tar(folder) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 2 or parts[0] != top or not member.isreg():
                continue
            if member.size > MAX_DIFF:
                raise BuildError(f"{folder}/{printable(parts[1])}: larger than {MAX_DIFF} bytes")
            handle = tar.extractfile(member)
            found[parts[1]] = handle.read(MAX_DIFF + 1) if handle else b""
    return found


class _Runner:
    """One sandbox's commands, each a step of the progress display and log."""

    def __init__(self, sandbox, plan: Plan, progress: Progress, env: dict[str, str]):
        self.sandbox, self.plan, self.progress, self.env = sandbox, plan, progress, env

    def run(self, argv, what: str) -> None:
        code = self.sandbox.run(list(argv), env=self.env, workdir=BUILD, on_output=self.progress.line)
        if code != 0:
            raise BuildError(f"{self.plan.target.label}: source run: {what} failed with exit {code} "
                             f"(log: {self.progress.log_path})")

    def tree_files(self) -> dict[str, str]:
        """Path below the source top -> sha256 of every regular file."""
        with self.sandbox.open_tar(SOURCE_TOP) as stream:
            entries = read_tree(stream, SOURCE_TOP, IdNames({}, {}), None, strict=False)
        return {entry.path[len(SOURCE_TOP) + 1:]: entry.sha256 for entry in entries
                if entry.kind == "file" and entry.path.startswith(SOURCE_TOP + "/")}


def _patch_of(change: Change, number: int, listing: dict[str, bytes], where: str) -> SourcePatch | None:
    raw = listing.get(f"{number}.diff", b"")
    if not raw.strip():
        return None
    before, after = _names(listing[f"{number}.before"]), _names(listing[f"{number}.after"])
    xbefore, xafter = _names(listing[f"{number}.xbefore"]), _names(listing[f"{number}.xafter"])
    for path in sorted((xbefore ^ xafter) & after):
        raise BuildError(f"{where}: it makes {printable(path)} {'executable' if path in xafter else 'not executable'}, "
                         "which a patch cannot carry; let the build steps run it with sh instead")
    diff = rewrite_diff(raw.decode("utf-8", "surrogateescape"), after - before, before - after, where)
    return SourcePatch(number, _slug(number, change.subject), change.subject, change.description, change.origin,
                       diff, change.architectures)


def _check_apart(patches: list[SourcePatch], label: str) -> None:
    """A patch of some architectures comes after the others in the source
    package, before them in a build: only files no other patch changes keep
    the two orders equal."""
    for patch in patches:
        if not patch.architectures:
            continue
        for other in patches:
            if other is patch or (other.architectures and not set(other.architectures) & set(patch.architectures)):
                continue
            shared = sorted(set(patch.files) & set(other.files))
            if shared:
                raise BuildError(f"{label}: {patch.origin}, for {', '.join(patch.architectures)} only, changes "
                                 f"{printable(shared[0])}, which {other.origin} changes too; a source package applies "
                                 "it after the others, so it must change files of its own")


def run_source(plan: Plan, upstreams: tuple[Upstream, ...], trees: dict[str, Path], environment: Environment,
               progress: Progress, workdir: Path, engine=None, sandbox_target: Target | None = None) -> SourceRun:
    """The plan's changes and build, run in `environment`: the sandbox of
    `sandbox_target` (the plan's target unless given: a cross-built target's
    source run plans a native build and runs in its cross image)."""
    target, layout = plan.target, plan.recipe.layout
    env = source_env(plan, upstreams)
    common, restricted = changes_of(plan, upstreams)
    changes = common + restricted
    patch_dir = workdir / "recipe-patches"
    patch_dir.mkdir()
    for patch in target.patches:
        shutil.copy2(patch.file, patch_dir / patch.file.name)
    run_dir = workdir / "run"
    shutil.copytree(RUN_SCRIPTS, run_dir)
    puts = [(trees[upstream.name], folder_of(upstream)) for upstream in upstreams]
    puts += [(patch_dir, PATCH_FILES), (run_dir, RUN_FILES)]
    labels = {"qmail-pkg.target": target.name, "qmail-pkg.package": plan.recipe.package.name,
              "qmail-pkg.architecture": target.architecture}
    with open_sandbox(sandbox_target or target, environment.reference, role="build", labels=labels,
                      engine=engine) as sandbox:
        progress.stage("copy sources in")
        sandbox.put_trees(puts)
        runner = _Runner(sandbox, plan, progress, env)
        runner.run(["sh", f"{RUN_FILES}/start.sh"], "copying the pristine tree")
        for number, change in enumerate(changes, 1):
            if number == len(common) + 1:
                runner.run(["sh", f"{RUN_FILES}/keep-common.sh"], "keeping the tree of every architecture")
            if change.architectures:
                # each on top of the changes every architecture makes, alone
                runner.run(["sh", f"{RUN_FILES}/restore-common.sh"], "restoring the tree of every architecture")
            progress.stage(f"change {number}/{len(changes)}: {change.subject}")
            runner.run(change.argv, f"change {number} ({change.subject})")
            runner.run(["sh", f"{RUN_FILES}/after-change.sh", str(number)], f"diffing change {number}")
        if restricted:
            runner.run(["sh", f"{RUN_FILES}/restore-common.sh"], "restoring the tree of every architecture")
            for change in restricted:  # this build's own, as its architecture's farm build applies them
                if target.architecture in change.architectures:
                    runner.run(change.argv, change.subject)
        listing = _read_folder(sandbox, DIFFS)
        patches: list[SourcePatch] = []
        for number, change in enumerate(changes, 1):
            source_patch = _patch_of(change, number, listing, f"{target.label}: {change.origin} ({change.subject})")
            if source_patch is not None:
                patches.append(source_patch)
        _check_apart(patches, target.label)
        values = dict(plan.option_values)
        phased = target.phased_steps(values)
        for number, (phase, script) in enumerate(phased, 1):
            if phase == "build":
                progress.stage(f"build step {number}: {(step_comment(script) or ('',))[0]}")
                runner.run(["sh", "-eu", "-c", script], f"build step {number}")
        progress.stage("hash the built tree")
        built = runner.tree_files()
        for number, (phase, script) in enumerate(phased, 1):
            if phase == "install":
                progress.stage(f"install step {number}: {(step_comment(script) or ('',))[0]}")
                runner.run(["sh", "-eu", "-c", script], f"install step {number}")
        progress.stage("harvest the installed tree")
        tree = harvest(sandbox, (layout.prefix, *layout.harvest), IdNames.of(target.accounts),
                       ContentStore(workdir / "content"))
        after = runner.tree_files()
    made = tuple(sorted(path for path, digest in after.items() if built.get(path) != digest))
    return SourceRun(tuple(patches), tree, tuple(sorted(built.items())), made)


__all__ = ["Change", "SourceRun", "changes_of", "folder_of", "rewrite_diff", "run_source", "source_env", "step_comment"]
