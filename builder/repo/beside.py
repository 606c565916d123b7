"""What travels beside an artifact from the jobs that built and checked it:
the provenance statement and the evidence files. Read as the build record
is (bounded, regular files only, never through a link, strict), because
they come from the same untrusted jobs.

What they may say is limited by the artifact they are about: evidence is
kept only when it names the artifact's file and sha256 (evidence for other
bytes, an earlier build of the same name, says nothing about these bytes:
it is ignored and counted, not an error), and the statement only when it
names exactly the record's artifacts and digests. Evidence that is not
evidence at all (not JSON, a field of the wrong type, a name that says
another kind or artifact than its contents) is refused like a malformed
record: one line, before anything is written."""

from __future__ import annotations

import json

from ..errors import printable
from ..evidence import MAX_BYTES as MAX_EVIDENCE
from ..evidence import MAX_FILES, Evidence, evidence_files
from ..evidence import SUFFIX as EVIDENCE_SUFFIX
from ..record import BuildRecord, RecordError
from ..record.reading import strict_json
from ..safefs import Folder, FsError
from .base import PublishError

MAX_PROVENANCE = 16 << 20


def provenance(record: BuildRecord, folder: Folder, required: bool, ignored: list[str]) -> str:
    """The statement beside the record, as canonical JSON, when it names the
    record's artifacts and digests; "" when there is none or it does not
    (refused instead with --require-provenance)."""
    name = record.provenance_name
    where = folder.path_of(name)
    if folder.lstat(name) is None and not required:
        return ""
    try:
        data = strict_json(folder.read(name, MAX_PROVENANCE), where, "an in-toto statement")
        subjects = {item["name"]: item["digest"]["sha256"] for item in data["subject"]}
    except FsError as exc:
        raise PublishError(f"--require-provenance: {exc}" if required else str(exc)) from None
    except (RecordError, KeyError, TypeError):
        if required:
            raise PublishError(f"--require-provenance: {where} is not an in-toto statement") from None
        ignored.append(f"{where}: not an in-toto statement")
        return ""
    if subjects != {row.file: row.sha256 for row in record.artifacts}:
        message = f"{where}: the provenance statement {name} names other artifacts or digests than the record"
        if required:
            raise PublishError(message)
        ignored.append(message)
        return ""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def evidence(folder: Folder, names: list[str], file: str, sha256: str, ignored: list[str]) -> tuple[Evidence, ...]:
    """The evidence for the artifact `file` whose bytes have `sha256`, from
    the evidence files named after it among `names` (this folder's)."""
    kept = []
    candidates = evidence_files(names, file)
    if len(candidates) > MAX_FILES:
        raise PublishError(f"{folder.path_of(file)}: more than {MAX_FILES} evidence files")
    for name in candidates:
        where = folder.path_of(name)
        try:
            found = Evidence.loads(folder.read(name, MAX_EVIDENCE), where)
        except (RecordError, FsError) as exc:
            raise PublishError(str(exc)) from None
        if found.artifact != file or found.sha256 != sha256:
            ignored.append(f"{where}: evidence for another artifact ({printable(found.artifact)}, sha256 "
                           f"{found.sha256[:16]}...) than {file} ({sha256[:16]}...)")
            continue
        if found.file_name != name:
            raise PublishError(f"{where}: its name is not the one its contents give ({printable(found.file_name)}); "
                               "evidence is kept under the name `qmail-pkg` wrote")
        kept.append(found)
    return tuple(kept)


def unclaimed(folder: Folder, names: list[str], files: list[str], ignored: list[str]) -> None:
    """Evidence files in a folder that are named after no artifact being published from it."""
    claimed = {name for file in files for name in evidence_files(names, file)}
    for name in names:
        if name.endswith(EVIDENCE_SUFFIX) and name not in claimed:
            ignored.append(f"{folder.path_of(name)}: evidence for no artifact published from here")


__all__ = ["evidence", "provenance", "unclaimed"]
