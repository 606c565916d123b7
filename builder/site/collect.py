"""The site's data, from the tree: every package the state file names (each
format's writer lists its own), the file as served (size, sha256), and the
copies of its build record, provenance statement and evidence that publish
keeps in records/<format>/, so that a later publish renders earlier
versions too. Those copies were checked when they were admitted; they are
read back bounded and strictly all the same (the tree may have been
touched since), and one that cannot be read becomes a gap on the page, not
a failed publish after the indexes were signed."""

from __future__ import annotations

import hashlib
import stat
import urllib.parse
from collections.abc import Sequence

from ..errors import printable
from ..evidence import KINDS, MAX_FILES, Evidence, evidence_files
from ..evidence import MAX_BYTES as MAX_EVIDENCE
from ..record import SUFFIX as RECORD_SUFFIX
from ..record import BuildRecord, RecordError
from ..record.reading import MAX_BYTES as MAX_RECORD
from ..repo.base import Admitted, Listed
from ..safefs import Folder, FsError
from .chart import chart
from .model import EvidenceView, PackageView, gaps

RECORDS = "records"
PAGES = "packages"
PROVENANCE_SUFFIX = ".intoto.json"
MAX_PACKAGE = 2 << 30


def href(*parts: str) -> str:
    """A relative link to a place in the tree, each component quoted."""
    return "/".join(urllib.parse.quote(part, safe="") for part in parts)


def keep_records(tree: Folder, admitted: Sequence[Admitted]) -> None:
    """Copy what was admitted with each artifact into records/<format>/: the
    record and statement as they were read (re-written from the checked
    values), the evidence for exactly these bytes."""
    for item in admitted:
        with tree.sub(RECORDS, item.format, create=True) as folder:
            folder.write(f"{item.name}{RECORD_SUFFIX}", item.record.dumps().encode())
            if item.provenance:
                folder.write(f"{item.name}{PROVENANCE_SUFFIX}", item.provenance.encode())
            for evidence in item.evidence:
                folder.write(evidence.file_name, evidence.dumps().encode())


def record_names(tree: Folder, fmt: str) -> list[str]:
    """The files in records/<format>/ (copies of records, statements, evidence)."""
    if tree.lstat(RECORDS) is None:
        return []
    with tree.sub(RECORDS) as records:
        info = records.lstat(fmt)
        if info is None or not stat.S_ISDIR(info.st_mode):
            return []
        with records.sub(fmt) as folder:
            return [name for name, entry in folder.entries(100_000) if stat.S_ISREG(entry.st_mode)]


def _record(folder: Folder, listed: Listed, names: list[str]) -> tuple[BuildRecord | None, str]:
    name = f"{listed.file}{RECORD_SUFFIX}"
    if name not in names:
        return None, ""
    try:
        record = BuildRecord.loads(folder.read(name, MAX_RECORD), folder.path_of(name))
    except (RecordError, FsError) as exc:
        return None, f"The copy of its build record in this tree cannot be read: {printable(str(exc))[:300]}"
    if not record.names(listed.file):
        return None, "The copy of its build record in this tree names another file."
    return record, ""


def _evidence(folder: Folder, listed: Listed, names: list[str], sha256: str) -> tuple[Evidence, ...]:
    found = []
    for name in evidence_files(names, listed.file)[:MAX_FILES]:
        try:
            evidence = Evidence.loads(folder.read(name, MAX_EVIDENCE), folder.path_of(name))
        except (RecordError, FsError):
            continue  # not shown: the page shows only what reads back as evidence for these bytes
        if evidence.file_name == name and evidence.artifact == listed.file and evidence.sha256 == sha256:
            found.append(evidence)
    return tuple(sorted(found, key=lambda item: (KINDS.index(item.kind), item.qualifier)))


def _served(tree: Folder, listed: Listed) -> tuple[int, str]:
    *folders, name = listed.path
    with tree.sub(*folders) as folder:
        info = folder.lstat(name)
        if info is None or not stat.S_ISREG(info.st_mode):
            return 0, ""
        return info.st_size, folder.digest(name, MAX_PACKAGE)


def package_view(tree: Folder, fmt: str, family: str, listed: Listed, names: list[str]) -> PackageView:
    size, sha256 = _served(tree, listed)
    record, problem, provenance = None, "", False
    evidence: tuple[Evidence, ...] = ()
    if names:
        with tree.sub(RECORDS, fmt) as folder:
            record, problem = _record(folder, listed, names)
            if record is not None:
                evidence = _evidence(folder, listed, names, record.artifact(listed.file).sha256)
                provenance = f"{listed.file}{PROVENANCE_SUFFIX}" in names
    page = (PAGES, fmt, f"{listed.file}.html")
    # ids unique on the front page too, where every package's chart is shown
    ident = f"chart-{hashlib.sha256(f'{fmt}/{listed.file}'.encode()).hexdigest()[:16]}"
    views = tuple(EvidenceView(item, href(RECORDS, fmt, item.file_name),
                               chart(ident, listed.file, item.power_cut) if item.power_cut else None)
                  for item in evidence)
    return PackageView(
        format=fmt, family=family, listed=listed, size=size, sha256=sha256, href=href(*listed.path), page=href(*page),
        page_path=page, record=record,
        record_href=href(RECORDS, fmt, f"{listed.file}{RECORD_SUFFIX}") if record is not None else "",
        provenance_href=href(RECORDS, fmt, f"{listed.file}{PROVENANCE_SUFFIX}") if provenance else "",
        evidence=views, gaps=gaps(family, record, problem, provenance, evidence))


def file_sha256(tree: Folder, name: str, limit: int = 1 << 20) -> str:
    """The sha256 of a key file at the top of the tree ("" when there is none)."""
    info = tree.lstat(name)
    if info is None or not stat.S_ISREG(info.st_mode):
        return ""
    return hashlib.sha256(tree.read(name, limit)).hexdigest()


def sweep(tree: Folder, fmt: str, files: set[str]) -> None:
    """Remove the copies and pages of packages no longer published (--prune)."""
    owned = {RECORDS: lambda name: any(name.startswith(f"{file}.") for file in files),
             PAGES: lambda name: name.removesuffix(".html") in files}
    for top, keep in owned.items():
        if tree.lstat(top) is None:
            continue
        with tree.sub(top) as folder:
            if folder.lstat(fmt) is None:
                continue
            with folder.sub(fmt) as area:
                for name, info in area.entries(100_000):
                    if not stat.S_ISDIR(info.st_mode) and not keep(name):
                        area.unlink(name)


__all__ = ["PAGES", "RECORDS", "file_sha256", "href", "keep_records", "package_view", "record_names", "sweep"]
