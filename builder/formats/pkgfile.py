"""Reading FreeBSD's pkg(8) format as data: pkg's own checksums (BLAKE2b in
z-base32), its URL-style text encoding, and a bounded reader of a .pkg file
that checks every file against its manifest entry, as `pkg check -s` would.
The packager (pkg.py) writes the format; this module reads it, for the build
record, the linter and publishing."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from ..errors import QmailPkgError, printable
from .facts import ContentEntry, PackageFacts

MAX_UNPACKED = 2 << 30
MAX_MANIFEST = 16 << 20
MAX_ENTRIES = 100_000
_CHUNK = 1 << 16
SCRIPT_KEYS = ("pre-install", "post-install", "pre-deinstall", "post-deinstall")


class PkgError(QmailPkgError):
    """A .pkg that cannot be read as one, or that contradicts its manifest."""


# z-base32, the alphabet and bit order of libpkg's pkg_checksum_encode_base32
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
HASH_BLAKE2_BASE32 = 2


def zbase32(data: bytes) -> str:
    """libpkg's base32: 5 bits at a time from the least significant end."""
    out = []
    remain = -1
    for index, byte in enumerate(data):
        step = index % 5
        if step == 0:
            out.append(_ZBASE32[byte & 0x1F])
            remain = byte >> 5
        elif step == 1:
            x = remain | byte << 3
            out += [_ZBASE32[x & 0x1F], _ZBASE32[x >> 5 & 0x1F]]
            remain = x >> 10
        elif step == 2:
            x = remain | byte << 1
            out.append(_ZBASE32[x & 0x1F])
            remain = x >> 5
        elif step == 3:
            x = remain | byte << 4
            out += [_ZBASE32[x & 0x1F], _ZBASE32[x >> 5 & 0x1F]]
            remain = x >> 10 & 0x3
        else:
            x = remain | byte << 2
            out += [_ZBASE32[x & 0x1F], _ZBASE32[x >> 5 & 0x1F]]
            remain = -1
    if remain >= 0:
        out.append(_ZBASE32[remain])
    return "".join(out)


def file_sum(content: bytes) -> str:
    return f"{HASH_BLAKE2_BASE32}${zbase32(hashlib.blake2b(content, digest_size=64).digest())}"


def symlink_sum(target: str) -> str:
    """pkg hashes a link's target without its leading '/', but as many bytes
    as the whole target: an absolute target's hash ends in a NUL."""
    data = (target[1:] + "\0") if target.startswith("/") else target
    return file_sum(data.encode())


def urlencode(text: str) -> str:
    """pkg's urlencode: every non-ASCII byte and '%' as %xx."""
    return "".join(
        f"%{byte:02x}" if byte > 0x7F or byte == ord("%") else chr(byte) for byte in text.encode("utf-8")
    )


def perm(mode: int) -> str:
    """As pkg prints it ("%#4.4o"): 0755, 0644, 04711."""
    return "0" + format(mode, "o").rjust(3, "0")


@dataclass(frozen=True)
class PkgArchive:
    """A .pkg read back: its members in order, both manifests, file contents."""

    members: tuple[tarfile.TarInfo, ...]
    compact: dict
    full: dict
    contents: dict[str, bytes]


class _Bounded(io.RawIOBase):
    def __init__(self, raw, where: str):
        self._raw = raw
        self._total = 0
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        self._total += len(data)
        if self._total > MAX_UNPACKED:
            raise PkgError(f"{self._where}: unpacks to more than {MAX_UNPACKED} bytes")
        buffer[:len(data)] = data
        return len(data)


def read_pkg(artifact: Path, data: bytes | None = None) -> PkgArchive:
    """Members, +COMPACT_MANIFEST, +MANIFEST and file contents of a .pkg,
    bounded in size and members."""
    where = str(artifact)
    members, contents, manifests = [], {}, {}
    try:
        raw_bytes = artifact.read_bytes() if data is None else data
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw_bytes))
        with tarfile.open(fileobj=io.BufferedReader(_Bounded(raw, where), _CHUNK), mode="r|") as tar:
            for member in tar:
                members.append(member)
                if len(members) > MAX_ENTRIES:
                    raise PkgError(f"{where}: more than {MAX_ENTRIES} members")
                if member.isreg():
                    handle = tar.extractfile(member)
                    content = handle.read() if handle is not None else b""
                    if member.name.startswith("+"):
                        if len(content) > MAX_MANIFEST:
                            raise PkgError(f"{where}: {member.name} larger than {MAX_MANIFEST} bytes")
                        manifests[member.name] = json.loads(content)
                    else:
                        contents[member.name] = content
    except PkgError:
        raise
    except (OSError, tarfile.TarError, zstandard.ZstdError, EOFError, ValueError, RecursionError) as exc:
        raise PkgError(f"{where}: not a readable .pkg ({printable(str(exc))[:120]})") from None
    compact, full = manifests.get("+COMPACT_MANIFEST"), manifests.get("+MANIFEST")
    if not isinstance(compact, dict) or not isinstance(full, dict):
        raise PkgError(f"{where}: no +COMPACT_MANIFEST and +MANIFEST mappings")
    return PkgArchive(tuple(members), compact, full, contents)


def urldecode(text: str) -> str:
    """The inverse of urlencode: %xx sequences back to bytes."""
    out = bytearray()
    index = 0
    while index < len(text):
        if (text[index] == "%" and index + 2 < len(text)
                and all(c in "0123456789abcdefABCDEF" for c in text[index + 1:index + 3])):
            out.append(int(text[index + 1:index + 3], 16))
            index += 3
        else:
            out += text[index].encode("utf-8")
            index += 1
    return out.decode("utf-8", "replace")


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    return str(value)


def archive_problems(archive: PkgArchive) -> list[str]:
    """Where the archive and its manifest disagree (what `pkg check -s`
    and pkg's reader would find)."""
    problems = []
    names = [member.name for member in archive.members]
    if names[:2] != ["+COMPACT_MANIFEST", "+MANIFEST"]:
        problems.append(f"first members are {names[:2]}, not +COMPACT_MANIFEST, +MANIFEST")
    files = archive.full.get("files", {}) if isinstance(archive.full.get("files", {}), dict) else {}
    directories = archive.full.get("directories", {}) if isinstance(archive.full.get("directories", {}), dict) else {}
    by_name = {member.name: member for member in archive.members}
    for path, attrs in files.items():
        member = by_name.get(path)
        if member is None or not isinstance(attrs, dict):
            problems.append(f"{path} in the manifest, not in the archive")
            continue
        want = symlink_sum(member.linkname) if member.issym() else file_sum(archive.contents.get(path, b""))
        if attrs.get("sum") != want:
            problems.append(f"{path}: checksum {attrs.get('sum')} is not {want}")
        if (member.uname, member.gname, perm(member.mode)) != (attrs.get("uname"), attrs.get("gname"),
                                                               attrs.get("perm")):
            problems.append(f"{path}: tar says {member.uname}:{member.gname} {member.mode:o}, manifest {attrs}")
    for name in names[2:]:
        if name not in files and name not in directories:
            problems.append(f"{name} in the archive, not in the manifest")
        if by_name[name].isdev() or by_name[name].isfifo() or by_name[name].islnk():
            problems.append(f"{name}: a device, FIFO or hard link")
    files_at = [i for i, n in enumerate(names) if n in files]
    dirs_at = [i for i, n in enumerate(names) if n in directories]
    if files_at and dirs_at and max(files_at) > min(dirs_at):
        problems.append("folders come before files")
    if any(key in archive.compact for key in ("files", "directories", "scripts")):
        problems.append("the compact manifest carries files, directories or scripts")
    return [printable(problem) for problem in problems]


def facts_of(archive: PkgArchive, where: str) -> PackageFacts:
    """The facts of a .pkg whose archive agrees with its manifest."""
    problems = archive_problems(archive)
    if problems:
        raise PkgError(f"{where}: {problems[0]}")
    full = archive.full
    for key in ("name", "version", "abi"):
        if not isinstance(full.get(key), str) or not full.get(key):
            raise PkgError(f"{where}: the manifest has no {key}")
    if full != {**archive.compact, **{key: full[key] for key in ("files", "directories", "scripts", "config")
                                      if key in full}}:
        raise PkgError(f"{where}: +MANIFEST and +COMPACT_MANIFEST disagree")
    contents = []
    for path, attrs in full.get("files", {}).items():
        member = next(m for m in archive.members if m.name == path)
        if member.issym():
            contents.append(ContentEntry(urldecode(path), "symlink", 0o777, attrs["uname"], attrs["gname"],
                                         link=member.linkname))
        else:
            contents.append(ContentEntry(urldecode(path), "file", int(attrs["perm"], 8), attrs["uname"],
                                         attrs["gname"], sha256=hashlib.sha256(archive.contents[path]).hexdigest()))
    for path, attrs in full.get("directories", {}).items():
        if not isinstance(attrs, dict):
            raise PkgError(f"{where}: directory {printable(path)} has no attributes")
        contents.append(ContentEntry(urldecode(path), "dir", int(str(attrs.get("perm", "0")), 8),
                                     str(attrs.get("uname", "")), str(attrs.get("gname", ""))))
    relations = []
    if isinstance(full.get("deps"), dict):
        relations.append(("deps", tuple(sorted(f"{name} {dep.get('origin', '')} {dep.get('version', '')}"
                                               for name, dep in full["deps"].items() if isinstance(dep, dict)))))
    for key in ("conflicts", "provides", "requires", "shlibs_required", "shlibs_provided"):
        if key in full:
            relations.append((key, tuple(_text(full[key]).split())))
    scripts = full.get("scripts", {}) if isinstance(full.get("scripts"), dict) else {}
    fields = tuple(sorted((key, _text(value)) for key, value in full.items()
                          if key not in ("name", "version", "abi", "files", "directories", "scripts", "deps",
                                         "conflicts", "provides", "requires", "shlibs_required", "shlibs_provided")))
    return PackageFacts(
        name=full["name"],
        version=full["version"],
        architecture=full["abi"],
        fields=fields,
        relations=tuple(sorted(relations)),
        contents=tuple(sorted(contents, key=lambda entry: entry.path)),
        scripts=tuple(sorted((key, hashlib.sha256(urldecode(str(text)).encode()).hexdigest())
                             for key, text in scripts.items())),
    )


def read_pkg_facts(path: Path, data: bytes) -> PackageFacts:
    archive = read_pkg(path, data)
    try:
        return facts_of(archive, str(path))
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise PkgError(f"{path}: the manifest is not what pkg writes ({printable(str(exc))[:120]})") from None


__all__ = ["PkgArchive", "PkgError", "SCRIPT_KEYS", "archive_problems", "facts_of", "file_sum", "perm", "read_pkg",
           "read_pkg_facts", "symlink_sum", "urldecode", "urlencode", "zbase32"]
