"""Admission: nothing is signed that was not verified.

The folder a publishing job is handed comes from build jobs, which may be
compromised. Every artifact is checked before the repository is touched:

- the build record is read as hostile data (builder/record.py): strict
  names, bounded, no symlink followed, and it must come from this recipe
  (its sha256), for one of its targets, as that target is defined;
- the artifact is copied into a private folder (a regular file, bounded,
  never through a link) and only that copy is hashed, read and published:
  what is checked is what is signed;
- its bytes match the record (sha256, size); what it says about itself
  (read back by its packager) matches what the record says it said, field
  by field, entry by entry, script by script;
- and what it says matches the recipe: its name, version, architecture,
  relations exactly as the packager writes them, no metadata field the
  packager never writes (Essential, Protected, triggers...), no file the
  build did not stage, nothing in the state folders;
- the provenance statement and the evidence files beside it are kept
  only when they name its digest (beside.py); --require-provenance refuses
  an artifact without a matching statement, and an independent rebuild
  (another runner) must have produced the same bytes when one is given.

A problem anywhere refuses the whole publish, naming the artifact and the
field, before anything is written.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import QmailPkgError
from ..package import PACKAGERS
from ..package.expect import expectation, expectation_problems
from ..recipe.model import Recipe, Target
from ..record import SUFFIX, TARGET, BuildRecord, RecordError
from ..safefs import Folder, FsError
from ..sources import digest_file
from . import beside
from .base import Admitted, PublishError, checked

MAX_ARTIFACT = 2 << 30
MAX_RECORDS = 1000


@dataclass(frozen=True)
class Admission:
    """How strict the publish is, beyond the checks that always run."""

    recipe: Recipe
    require_provenance: bool = False
    rebuilt: Path | None = None  # the output folder of an independent rebuild


@dataclass(frozen=True)
class Admissions:
    """What passed, and what travelled with it but was left out (evidence or
    a statement about other bytes), each with the reason."""

    artifacts: tuple[Admitted, ...]
    ignored: tuple[str, ...] = ()


def _records(folder: Folder) -> list[tuple[str, str]]:
    """(target folder, record file) for every record below the folder."""
    found = []
    for name, info in folder.entries(10_000):
        if name.startswith(".") or name == "logs":
            continue
        if stat.S_ISLNK(info.st_mode):
            raise PublishError(f"{folder.path_of(name)}: a symlink where a folder of build records would be; refused")
        if not stat.S_ISDIR(info.st_mode):
            continue
        checked(name, TARGET, "folder")
        with folder.sub(name) as target_folder:
            for file, file_info in target_folder.entries(10_000):
                if file.endswith(SUFFIX):
                    if not stat.S_ISREG(file_info.st_mode):
                        raise PublishError(f"{target_folder.path_of(file)}: not a regular file; refused")
                    found.append((name, file))
    if len(found) > MAX_RECORDS:
        raise PublishError(f"{folder.where}: more than {MAX_RECORDS} build records")
    return found


def _check_identity(record: BuildRecord, folder_name: str, where: str, admission: Admission) -> Target:
    recipe = admission.recipe
    if record.target != folder_name:
        raise PublishError(f"{where}: the record is for target {record.target!r} but lies in {folder_name}/")
    if record.variant:
        said = ", ".join(f"{'with' if on else 'without'} {name}" for name, on in record.variant)
        raise PublishError(f"{where}: a variant build ({said}) is never published; build variants into another "
                           "folder than the one you publish")
    if record.package != recipe.package.name:
        raise PublishError(f"{where}: package {record.package!r} is not the recipe's ({recipe.package.name})")
    recipe_digest = digest_file(recipe.path, "sha256")
    if record.recipe_sha256 != recipe_digest:
        raise PublishError(f"{where}: built from another recipe (sha256 {record.recipe_sha256[:16]}...), not "
                           f"{recipe.path} ({recipe_digest[:16]}...)")
    try:
        target = recipe.target(record.target)
    except KeyError:
        raise PublishError(f"{where}: the recipe has no target {record.target!r}") from None
    if record.architecture not in target.architectures:
        raise PublishError(f"{where}: architecture {record.architecture!r} is not one target {target.name} builds")
    target = target.for_architecture(record.architecture)
    for key, want in (("family", target.family), ("release", target.release), ("suite", target.suite),
                      ("version", f"{recipe.package.version}-{record.revision}")):
        if getattr(record, key) != want:
            raise PublishError(f"{where}: {key} {getattr(record, key)!r} is not the recipe's {want!r}")
    if record.test_only:
        raise PublishError(f"{where}: a test-only build (made by an older qmail-pkg for its own tests) is never "
                           "published")
    if record.method == "cross" and target.cross is None:
        raise PublishError(f"{where}: built by cross-compilation, which target {target.name} does not offer")
    if record.overridden_sources or any(source.overridden for source in record.sources):
        raise PublishError(f"{where}: built from locally overridden sources (--source); an unofficial build is "
                           "never published")
    return target


def _rebuilt_sha256(rebuilt: Path, target: str, file: str) -> str:
    """The sha256 of the independent rebuild's file of that name (its bytes, not its record's word)."""
    try:
        with Folder.open(rebuilt, what=f"--rebuilt {rebuilt}") as top, top.sub(target) as folder:
            if folder.lstat(file) is not None:
                return folder.digest(file, MAX_ARTIFACT)
    except FsError as exc:
        raise PublishError(f"--rebuilt: {exc}") from None
    raise PublishError(f"--rebuilt {rebuilt}: no rebuild of {target}/{file}; nothing is signed that two builds "
                       "do not agree on")


def admit(artifact_dir: Path, admission: Admission, private: Path) -> Admissions:
    """Every artifact below artifact_dir, verified, with its statement and
    evidence; copies in `private`."""
    admitted: list[Admitted] = []
    ignored: list[str] = []
    try:
        top = Folder.open(artifact_dir, what=str(artifact_dir))
    except FsError as exc:
        raise PublishError(str(exc)) from None
    with top:
        records = _records(top)
        if not records:
            raise PublishError(f"{artifact_dir}: no build records (*/*{SUFFIX}): give the folder "
                               "`qmail-pkg build --out` wrote")
        for folder_name in sorted({name for name, _ in records}):
            with top.sub(folder_name) as folder:
                names = [name for name, _ in folder.entries(10_000)]
                files = []
                for file in [file for name, file in records if name == folder_name]:
                    where = folder.path_of(file)
                    try:
                        record = BuildRecord.loads(folder.read(file, 16 << 20), where)
                    except (RecordError, FsError) as exc:
                        raise PublishError(str(exc)) from None
                    target = _check_identity(record, folder_name, where, admission)
                    statement = beside.provenance(record, folder, admission.require_provenance, ignored)
                    for row in record.artifacts:
                        one = _admit_one(folder, record, row, target, admission, private)
                        admitted.append(replace(one, provenance=statement, evidence=beside.evidence(
                            folder, names, row.file, row.sha256, ignored)))
                        files.append(row.file)
                beside.unclaimed(folder, names, files, ignored)
    names = [f"{item.format}/{item.name}" for item in admitted]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PublishError(f"{duplicates[0]} is named by two build records; give one build of each package")
    return Admissions(tuple(admitted), tuple(ignored))


def _admit_one(folder: Folder, record: BuildRecord, row, target: Target, admission: Admission,
               private: Path) -> Admitted:
    what = f"{folder.path_of(row.file)}"
    if row.format not in target.formats:
        raise PublishError(f"{what}: format {row.format!r} is not one target {target.name} makes")
    packager = PACKAGERS[row.format]
    copy = private / f"{len(list(private.iterdir()))}-{row.file}"
    try:
        digest, size = folder.copy_out(row.file, copy, MAX_ARTIFACT)
    except FsError as exc:
        raise PublishError(str(exc)) from None
    if (digest, size) != (row.sha256, row.size):
        raise PublishError(f"{what}: its bytes are not the ones the build recorded (sha256 {digest[:16]}..., "
                           f"{size} bytes; the record says {row.sha256[:16]}..., {row.size} bytes)")
    if row.facts is None:
        raise PublishError(f"{what}: its record holds no facts read back from the package (made by an older "
                           "qmail-pkg); build it again")
    try:
        facts = packager.read(copy, copy.read_bytes())
    except QmailPkgError as exc:
        raise PublishError(f"{what}: {exc}") from None
    differences = facts.differences(row.facts)
    if differences:
        raise PublishError(f"{what}: the package is not what its record says: {differences[0]}")
    if row.version != facts.version:
        raise PublishError(f"{what}: version {facts.version!r}, the record says {row.version!r}")
    expected = expectation(packager, admission.recipe, target, record.revision, record.library_depends,
                           record.staged_manifest)
    problems = expectation_problems(facts, packager, expected)
    if problems:
        raise PublishError(f"{what}: {problems[0]}")
    if admission.rebuilt is not None:
        other = _rebuilt_sha256(admission.rebuilt, record.target, row.file)
        if other != digest:
            raise PublishError(f"{what}: the independent rebuild made other bytes (sha256 {other[:16]}... against "
                               f"{digest[:16]}...); nothing is signed that two builds do not agree on")
    return Admitted(copy, record, row, facts, packager.format)


__all__ = ["Admission", "Admissions", "admit"]
