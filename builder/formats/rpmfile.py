"""Reading an .rpm as data with rpm itself: its digests checked first
(`rpm -K --nosignature`: the header's SHA256 and the payload digest the
header records), then the whole header as rpm prints it (`--xml`), so the
file list, relations and scriptlets read here are the ones the payload was
checked against."""

from __future__ import annotations

import hashlib
import stat
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ..errors import QmailPkgError, printable
from .facts import ContentEntry, PackageFacts

MAX_HEADER_XML = 64 << 20
TIMEOUT = 120
# rpm's sense flags: how a relation compares versions
_LESS, _GREATER, _EQUAL = 0x02, 0x04, 0x08
RELATIONS = {"Requires": "Require", "Provides": "Provide", "Conflicts": "Conflict", "Obsoletes": "Obsolete",
             "Recommends": "Recommend", "Suggests": "Suggest", "Supplements": "Supplement", "Enhances": "Enhance"}
SCRIPT_TAGS = ("Prein", "Postin", "Preun", "Postun", "Pretrans", "Posttrans", "Preuntrans", "Postuntrans",
               "Verifyscript", "Triggerscripts", "Filetriggerscripts", "Transfiletriggerscripts")
# identity and metadata kept as fields (the file list, relations and scripts are kept apart)
FIELD_TAGS = ("Epoch", "Os", "Summary", "Description", "License", "Url", "Group", "Vendor", "Packager", "Buildhost",
              "Buildtime", "Sourcerpm", "Payloadcompressor", "Payloadformat", "Prefixes", "Triggername",
              "Filetriggername", "Transfiletriggername", "Changelogtext", "Changelogname")


class RpmError(QmailPkgError):
    """An .rpm that cannot be read as one, or whose digests do not match."""


def _run(argv: list[str], where: str) -> bytes:
    try:
        result = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise RpmError(f"{where}: reading an .rpm needs rpm (apt-get install rpm)") from None
    except subprocess.TimeoutExpired:
        raise RpmError(f"{where}: rpm did not finish reading it within {TIMEOUT} s") from None
    if result.returncode != 0 or len(result.stdout) > MAX_HEADER_XML:
        tail = printable(result.stderr.decode("utf-8", "replace").strip()[-200:]) or "no output"
        raise RpmError(f"{where}: rpm cannot read it: {tail}")
    return result.stdout


def header(path: Path) -> dict[str, list[str]]:
    """Every tag of the header: name -> its values as text."""
    where = str(path)
    _run(["rpm", "-K", "--nosignature", "--", str(path)], where)
    text = _run(["rpm", "-qp", "--nosignature", "--xml", "--", str(path)], where)
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise RpmError(f"{where}: rpm printed a header that is not XML ({exc})") from None
    tags: dict[str, list[str]] = {}
    for tag in root.iter("rpmTag"):
        tags[tag.get("name", "")] = [value.text or "" for value in tag]
    return tags


def rpm_files(path: Path):
    """(absolute path, content) of each regular file in the payload, read from
    rpm2cpio's newc archive (the payload rpm -K checked)."""
    where = str(path)
    data = _run(["rpm2cpio", str(path)], where)
    offset = 0
    while offset + 110 <= len(data):
        header = data[offset:offset + 110]
        if header[:6] not in (b"070701", b"070702"):
            raise RpmError(f"{where}: the payload is not a newc cpio archive")
        fields = [int(header[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + name_size - 1].decode("utf-8", "replace")
        data_start = (name_start + name_size + 3) & ~3
        if name == "TRAILER!!!":
            return
        content = data[data_start:data_start + size]
        offset = (data_start + size + 3) & ~3
        if stat.S_ISREG(mode):
            relative = name[2:] if name.startswith("./") else name.lstrip("/")
            yield "/" + relative, content
    raise RpmError(f"{where}: the payload ends without its trailer")


def _relation(name: str, flags: int, version: str) -> str:
    op = {_LESS: "<", _LESS | _EQUAL: "<=", _EQUAL: "=", _GREATER | _EQUAL: ">=", _GREATER: ">"}.get(
        flags & (_LESS | _GREATER | _EQUAL), "")
    return f"{name} {op} {version}" if op and version else name


def _owner(name: str) -> str:
    return name if name else "#?"


def read_rpm(path: Path) -> PackageFacts:
    where = str(path)
    tags = header(path)

    def one(name: str) -> str:
        values = tags.get(name, [])
        return values[0] if values else ""

    for required in ("Name", "Version", "Release", "Arch"):
        if not one(required):
            raise RpmError(f"{where}: the header has no {required}")
    relations = []
    for label, stem in RELATIONS.items():
        names = tags.get(f"{stem}name", [])
        flags = tags.get(f"{stem}flags", [])
        versions = tags.get(f"{stem}version", [])
        if names:
            if not len(names) == len(flags) == len(versions):
                raise RpmError(f"{where}: {label} lists of different lengths")
            relations.append((label, tuple(_relation(n, int(f), v)
                                           for n, f, v in zip(names, flags, versions, strict=True)
                                           if not n.startswith("rpmlib("))))
    dirnames, basenames = tags.get("Dirnames", []), tags.get("Basenames", [])
    indexes = [int(i) for i in tags.get("Dirindexes", [])]
    columns = [tags.get(name, []) for name in ("Filemodes", "Fileusername", "Filegroupname", "Filedigests",
                                                  "Filelinktos")]
    if any(len(column) != len(basenames) for column in columns) or len(indexes) != len(basenames):
        raise RpmError(f"{where}: the file list's columns differ in length")
    contents = []
    for number, base in enumerate(basenames):
        if indexes[number] >= len(dirnames):
            raise RpmError(f"{where}: file {number} names a folder that is not listed")
        full = dirnames[indexes[number]] + base
        mode, owner, group, digest, link = (column[number] for column in columns)
        bits = int(mode)
        if stat.S_ISDIR(bits):
            kind = "dir"
        elif stat.S_ISLNK(bits):
            kind = "symlink"
        elif stat.S_ISREG(bits):
            kind = "file"
        else:
            raise RpmError(f"{where}: {printable(full)} is a device, FIFO or other special file")
        contents.append(ContentEntry(full, kind, 0o777 if kind == "symlink" else bits & 0o7777, _owner(owner),
                                     _owner(group), sha256=digest if kind == "file" else "",
                                     link=link if kind == "symlink" else ""))
    if one("Filedigestalgo") not in ("", "8") and contents:
        raise RpmError(f"{where}: file digests are not SHA-256 (algorithm {one('Filedigestalgo')})")
    scripts = {tag.lower(): hashlib.sha256("\n".join(tags[tag]).encode()).hexdigest()
               for tag in SCRIPT_TAGS if tag in tags}
    fields = tuple(sorted((tag, "\n".join(tags[tag])) for tag in FIELD_TAGS if tag in tags))
    return PackageFacts(
        name=one("Name"),
        version=f"{one('Version')}-{one('Release')}",
        architecture=one("Arch"),
        fields=fields,
        relations=tuple(sorted(relations)),
        contents=tuple(sorted(contents, key=lambda entry: entry.path)),
        scripts=tuple(sorted(scripts.items())),
    )


__all__ = ["RpmError", "header", "read_rpm", "rpm_files"]
