"""Reading a .deb as data: the ar container, the control paragraph, the
control members and the data tar, bounded and without extracting anything.

Used to record what a built .deb says about itself and, when it is
published, to read the same file again (a publishing job must not trust the
tools or the files of the job that built it, so this needs no dpkg)."""

from __future__ import annotations

import hashlib
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import zstandard

from ..errors import QmailPkgError, printable
from .facts import ContentEntry, PackageFacts

MAX_MEMBER = 1 << 30  # bytes in one ar member, compressed
MAX_UNPACKED = 2 << 30  # bytes a tar may unpack to
MAX_ENTRIES = 100_000
_CHUNK = 1 << 16
RELATION_FIELDS = ("Pre-Depends", "Depends", "Recommends", "Suggests", "Enhances", "Breaks", "Conflicts",
                   "Provides", "Replaces", "Built-Using", "Static-Built-Using")
# control.tar members that are data about the package, not scripts
_CONTROL_DATA = ("control", "md5sums")


class DebError(QmailPkgError):
    """A .deb that cannot be read as one."""


def _ar_members(data: bytes, where: str) -> list[tuple[str, bytes]]:
    if not data.startswith(b"!<arch>\n"):
        raise DebError(f"{where}: not a Debian package (no ar header)")
    members, offset = [], 8
    while offset < len(data):
        header = data[offset:offset + 60]
        if len(header) < 60 or header[58:60] != b"`\n":
            raise DebError(f"{where}: damaged ar header at byte {offset}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DebError(f"{where}: damaged ar member size at byte {offset}") from None
        if size < 0 or size > MAX_MEMBER or offset + 60 + size > len(data):
            raise DebError(f"{where}: ar member {printable(name)!r} runs past the end of the file")
        members.append((name, data[offset + 60:offset + 60 + size]))
        offset += 60 + size + (size & 1)
        if len(members) > 16:
            raise DebError(f"{where}: more ar members than a .deb has")
    return members


class _Bounded(io.RawIOBase):
    """A decompressed stream that stops at MAX_UNPACKED bytes."""

    def __init__(self, chunks, where: str):
        self._chunks = chunks
        self._pending = b""
        self._total = 0
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._total += len(chunk)
            if self._total > MAX_UNPACKED:
                raise DebError(f"{self._where}: unpacks to more than {MAX_UNPACKED} bytes")
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _decompressed(name: str, payload: bytes, where: str) -> io.BufferedReader:
    def chunks():
        if name.endswith(".xz"):
            decompressor = lzma.LZMADecompressor()
            feed = decompressor.decompress
        elif name.endswith(".gz"):
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            feed = decompressor.decompress
        elif name.endswith(".zst"):
            feed = zstandard.ZstdDecompressor().decompressobj().decompress
        elif name.endswith(".tar"):
            feed = bytes
        else:
            raise DebError(f"{where}: {printable(name)!r}: compression not known")
        for start in range(0, len(payload), _CHUNK):
            out = feed(payload[start:start + _CHUNK])
            # a bomb grows per input chunk: bound it before it is all in memory
            while len(out) > _CHUNK * 64:
                yield out[:_CHUNK * 64]
                out = out[_CHUNK * 64:]
            if out:
                yield out

    return io.BufferedReader(_Bounded(chunks(), where), _CHUNK)


def _entries(name: str, payload: bytes, where: str) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """(TarInfo, content or None) of each member, streamed."""
    try:
        with tarfile.open(fileobj=_decompressed(name, payload, where), mode="r|") as tar:
            count = 0
            for member in tar:
                count += 1
                if count > MAX_ENTRIES:
                    raise DebError(f"{where}: {name}: more than {MAX_ENTRIES} entries")
                content = None
                if member.isreg():
                    handle = tar.extractfile(member)
                    content = handle.read() if handle is not None else b""
                yield member, content
    except (tarfile.TarError, lzma.LZMAError, zlib.error, zstandard.ZstdError, EOFError, OSError) as exc:
        raise DebError(f"{where}: {name}: cannot be read ({printable(str(exc))[:120]})") from None


def parse_control(text: str, where: str) -> list[tuple[str, str]]:
    """A deb822 paragraph as (field, value) in order; continuation lines kept
    with their newline. Duplicate fields and a second paragraph are refused."""
    fields: list[tuple[str, str]] = []
    seen: set[str] = set()
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        if not line:
            raise DebError(f"{where}: the control file has more than one paragraph")
        if line[0] in " \t":
            if not fields:
                raise DebError(f"{where}: the control file starts with a continuation line")
            name, value = fields[-1]
            fields[-1] = (name, f"{value}\n{line}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or any(ch in name for ch in " \t") or not name.isascii():
            raise DebError(f"{where}: control line {printable(line[:60])!r} is not a field")
        if name.lower() in seen:
            raise DebError(f"{where}: field {printable(name)!r} appears twice")
        seen.add(name.lower())
        fields.append((name, value.strip()))
    return fields


def _relation_items(value: str) -> tuple[str, ...]:
    return tuple(" ".join(item.split()) for item in value.split(",") if item.strip())


def _owner(name: str, number: int) -> str:
    return name if name else f"#{number}"


def _relative(name: str) -> str:
    """A tar member name without its leading ./ (dpkg-deb and nfpm write one)."""
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/")
    return "" if name == "." else name.rstrip("/")


def _content(member: tarfile.TarInfo, data: bytes | None, where: str) -> ContentEntry:
    raw = member.name
    path = PurePosixPath("/" + _relative(raw))
    if ".." in path.parts or any(ord(ch) < 0x20 for ch in raw):
        raise DebError(f"{where}: data member {printable(raw)!r} is not a clean path")
    owner, group = _owner(member.uname, member.uid), _owner(member.gname, member.gid)
    if member.isdir():
        return ContentEntry(str(path), "dir", member.mode & 0o7777, owner, group)
    if member.issym():
        return ContentEntry(str(path), "symlink", 0o777, owner, group, link=member.linkname)
    if member.isreg():
        return ContentEntry(str(path), "file", member.mode & 0o7777, owner, group,
                            sha256=hashlib.sha256(data or b"").hexdigest())
    if member.islnk():
        raise DebError(f"{where}: data member {printable(raw)!r} is a hard link (this tool never makes one)")
    raise DebError(f"{where}: data member {printable(raw)!r} is a device, FIFO or other special file")


def _members(data: bytes, where: str) -> tuple[tuple[str, bytes], tuple[str, bytes]]:
    """The control.tar and data.tar members of a format 2.0 .deb."""
    members = _ar_members(data, where)
    names = [name for name, _ in members]
    if not names or names[0] != "debian-binary" or members[0][1] != b"2.0\n":
        raise DebError(f"{where}: not a format 2.0 Debian package")
    control_members = [m for m in members if m[0].startswith("control.tar")]
    data_members = [m for m in members if m[0].startswith("data.tar")]
    if len(control_members) != 1 or len(data_members) != 1 or len(members) != 3:
        raise DebError(f"{where}: members are {printable(', '.join(names))}; a .deb has debian-binary, "
                       "one control.tar and one data.tar")
    return control_members[0], data_members[0]


def _control(archive: tuple[str, bytes], where: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The control paragraph's fields in order, and the other control members by sha256."""
    scripts: dict[str, str] = {}
    control_text = None
    for member, content in _entries(*archive, where):
        name = _relative(member.name)
        if member.isdir() and name == "":
            continue
        if not member.isreg() or "/" in name or not name:
            raise DebError(f"{where}: control member {printable(member.name)!r} is not a plain file")
        if name == "control":
            control_text = (content or b"").decode("utf-8", "replace")
        elif name not in _CONTROL_DATA:
            scripts[name] = hashlib.sha256(content or b"").hexdigest()
    if control_text is None:
        raise DebError(f"{where}: no control file")
    fields = parse_control(control_text, where)
    values = dict(fields)
    for required in ("Package", "Version", "Architecture"):
        if not values.get(required):
            raise DebError(f"{where}: the control file has no {required}")
    return fields, scripts


def read_deb_control(path: Path, data: bytes) -> list[tuple[str, str]]:
    """The control fields of a .deb, in the order the package has them."""
    control, _ = _members(data, str(path))
    return _control(control, str(path))[0]


def deb_files(path: Path, data: bytes):
    """(absolute path, content) of each regular file the .deb's data carries."""
    _, payload = _members(data, str(path))
    for member, content in _entries(*payload, str(path)):
        if member.isreg():
            yield "/" + _relative(member.name), content or b""


def read_deb(path: Path, data: bytes) -> PackageFacts:
    """The facts of the .deb whose bytes are `data` (`path` names it in messages)."""
    where = str(path)
    control, payload = _members(data, where)
    fields, scripts = _control(control, where)
    values = dict(fields)
    contents = [_content(member, content, where) for member, content in _entries(*payload, where)]
    contents = [entry for entry in contents if entry.path != "/"]
    relations = tuple((name, _relation_items(values[name])) for name in RELATION_FIELDS if name in values)
    other = tuple((name, value) for name, value in fields
                  if name not in RELATION_FIELDS and name not in ("Package", "Version", "Architecture"))
    return PackageFacts(
        name=values["Package"],
        version=values["Version"],
        architecture=values["Architecture"],
        fields=tuple(sorted(other)),
        relations=tuple(sorted(relations)),
        contents=tuple(sorted(contents, key=lambda entry: entry.path)),
        scripts=tuple(sorted(scripts.items())),
    )


__all__ = ["DebError", "RELATION_FIELDS", "deb_files", "parse_control", "read_deb", "read_deb_control"]
