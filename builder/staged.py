"""StagedTree: what a build installed, held as data.

The harvest reads the tar stream a sandbox sends for each root (`/var/qmail`):
type, permission bits, numeric owner and group and link target come from the
tar headers, so no tool inside the sandbox (GNU find, stat) is trusted or
needed, and a FreeBSD jail sends the same stream as a Docker container.
Numeric ids become names through the target's accounts (dpkg, rpm and pkg
resolve owners by name at unpack); an id no account has is an error.

Everything in that stream is hostile data. File contents go into a
content-addressed store under names this module makes up (their sha256), so
the host never creates a path that came out of a sandbox and never follows a
link that came out of it: a symlink is an Entry with a target string, and
nothing more. The stream is bounded in bytes and members.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .archive import Limits, has_control_characters, member_parts
from .errors import BuildError
from .recipe.model import Accounts

KINDS = ("file", "dir", "symlink", "fifo")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Entry:
    path: str  # absolute, normalised, no trailing slash
    kind: str  # file | dir | symlink | fifo
    mode: int  # permission bits including setuid/setgid/sticky
    owner: str
    group: str
    link_target: str = ""  # symlinks only
    sha256: str = ""  # files only: the key of its content in the store
    size: int = 0  # files only

    def is_below(self, folder: str) -> bool:
        return self.path == folder or self.path.startswith(folder.rstrip("/") + "/")

    def describe(self) -> str:
        return f"{self.kind} {self.mode:04o} {self.owner}:{self.group} {self.path}" + (
            f" -> {self.link_target}" if self.link_target else ""
        )


class ContentStore:
    """File contents by sha256 in a folder this process created. Names are
    digests (hex), never paths from a sandbox."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256

    def put_chunks(self, chunks) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        temporary = self.root / f".incoming-{os.getpid()}-{next(self._counter)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            digest = hasher.hexdigest()
            os.replace(temporary, self.path(digest))
        finally:
            temporary.unlink(missing_ok=True)
        return digest, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_chunks([data])

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()


@dataclass(frozen=True)
class StagedTree:
    store: ContentStore
    entries: tuple[Entry, ...]
    _index: dict[str, Entry] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index = {entry.path: entry for entry in self.entries}
        if len(index) != len(self.entries):
            raise BuildError("staged tree: the same path appears twice")
        object.__setattr__(self, "_index", index)
        for entry in self.entries:
            parent = self._index.get(posixpath.dirname(entry.path))
            if parent is not None and parent.kind != "dir":
                # dpkg, rpm and pkg would follow such a link on the installed system.
                raise BuildError(
                    f"staged tree: {entry.path} lies below {parent.path}, which is a {parent.kind}"
                    + (f" (-> {parent.link_target})" if parent.link_target else "")
                    + "; a package cannot ship entries below anything but a folder"
                )

    def host_path(self, entry: Entry) -> Path:
        """Where a file entry's content is on the host (a store object)."""
        if entry.kind != "file":
            raise ValueError(f"{entry.path} is a {entry.kind}, it has no content")
        return self.store.path(entry.sha256)

    def read(self, path: str) -> bytes:
        return self.store.read(self.entry(path).sha256)

    def entry(self, path: str) -> Entry:
        return self._index[path]

    def has(self, path: str) -> bool:
        return path in self._index

    def with_file(self, path: str, content: str | bytes, mode: int, owner: str = "root",
                  group: str = "root") -> "StagedTree":
        """A tree with one more (or one replaced) regular file; missing parents become folders."""
        data = content.encode() if isinstance(content, str) else content
        digest, size = self.store.put_bytes(data)
        return self._with_parents(path)._replace_entry(Entry(path, "file", mode, owner, group, sha256=digest,
                                                             size=size))

    def with_symlink(self, path: str, target: str) -> "StagedTree":
        return self._with_parents(path)._replace_entry(Entry(path, "symlink", 0o777, "root", "root", target))

    def _with_parents(self, path: str) -> "StagedTree":
        tree = self
        for parent in reversed(_parents(path)):
            if not tree.has(parent):
                tree = tree._replace_entry(Entry(parent, "dir", 0o755, "root", "root"))
        return tree

    def _replace_entry(self, new: Entry) -> "StagedTree":
        kept = [entry for entry in self.entries if entry.path != new.path]
        return StagedTree(self.store, tuple(sorted([*kept, new], key=lambda e: e.path)))

    def manifest(self) -> list[dict]:
        rows = []
        for entry in self.entries:
            row = {
                "path": entry.path,
                "type": entry.kind,
                "mode": f"{entry.mode:04o}",
                "owner": entry.owner,
                "group": entry.group,
            }
            if entry.kind == "symlink":
                row["target"] = entry.link_target
            if entry.kind == "file":
                row["sha256"] = entry.sha256
            rows.append(row)
        return rows

    def write_manifest(self, path: Path) -> None:
        path.write_text(json.dumps(self.manifest(), indent=1) + "\n")


def _parents(path: str) -> list[str]:
    """/a/b/c -> [/a/b, /a] (never /)."""
    found = []
    parent = posixpath.dirname(path)
    while parent not in ("/", ""):
        found.append(parent)
        parent = posixpath.dirname(parent)
    return found


@dataclass(frozen=True)
class IdNames:
    """Numeric ids in tar headers -> the names packages carry."""

    users: dict[int, str]
    groups: dict[int, str]

    @classmethod
    def of(cls, accounts: Accounts) -> "IdNames":
        users = {0: "root", **{user.uid: user.name for user in accounts.users}}
        groups = {0: "root", **{group.gid: group.name for group in accounts.groups}}
        return cls(users, groups)

    def user(self, uid: int, path: str, strict: bool) -> str:
        return self._name(self.users, uid, path, "user", strict)

    def group(self, gid: int, path: str, strict: bool) -> str:
        return self._name(self.groups, gid, path, "group", strict)

    @staticmethod
    def _name(names: dict[int, str], number: int, path: str, what: str, strict: bool) -> str:
        if number in names:
            return names[number]
        if strict:
            raise BuildError(f"harvest: {path} is owned by {what} id {number}, which no declared account has")
        return f"#{number}"


class StreamReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks, bounded in size."""

    def __init__(self, chunks: Iterator[bytes], max_bytes: int, where: str):
        self._chunks = iter(chunks)
        self._pending = b""
        self._seen = 0
        self._max = max_bytes
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._seen += len(chunk)
            if self._seen > self._max:
                raise BuildError(
                    f"{self._where}: the stream is larger than {self._max} bytes (the limit); "
                    "raise it with QMAIL_PKG_EXTRACT_MAX_BYTES=N if this is expected"
                )
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def read_tree(
    stream: BinaryIO,
    root: str,
    ids: IdNames,
    store: ContentStore | None,
    *,
    strict: bool = True,
    limits: Limits | None = None,
) -> list[Entry]:
    """Entries of the tar stream of `root` (members named `<basename>/...`,
    as `docker cp` and `tar -C <parent> <basename>` write them). With a
    store, file contents are kept in it; without one, only hashed."""
    limits = limits or Limits.from_environment()
    parent = posixpath.dirname(root.rstrip("/")) or "/"
    top = posixpath.basename(root.rstrip("/"))
    entries: dict[str, Entry] = {}
    where = f"harvest of {root}"
    written = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, member in enumerate(tar, 1):
                if count > limits.max_members:
                    raise BuildError(
                        f"{where}: more than {limits.max_members} entries (the limit); "
                        "raise it with QMAIL_PKG_EXTRACT_MAX_MEMBERS=N if this is expected"
                    )
                parts = member_parts(member.name)
                if isinstance(parts, str) or not parts or parts[0] != top:
                    why = parts if isinstance(parts, str) else f"not below {root}"
                    raise BuildError(f"{where}: member {member.name!r}: {why}")
                path = posixpath.join(parent, *parts)
                entry = _entry(tar, member, path, parent, entries, ids, store, strict)
                if entry.kind == "file":
                    written += entry.size
                    if written > limits.max_bytes:
                        raise BuildError(
                            f"{where}: more than {limits.max_bytes} bytes of files (the limit); "
                            "raise it with QMAIL_PKG_EXTRACT_MAX_BYTES=N if this is expected"
                        )
                entries[path] = entry
    except tarfile.TarError as exc:
        raise BuildError(f"{where}: unreadable tar stream: {exc}") from None
    return list(entries.values())


def _entry(tar, member, path, parent, seen, ids, store, strict) -> Entry:
    owner = ids.user(member.uid, path, strict)
    group = ids.group(member.gid, path, strict)
    mode = member.mode & 0o7777
    if member.isdir():
        return Entry(path, "dir", mode, owner, group)
    if member.issym():
        if not member.linkname or has_control_characters(member.linkname):
            raise BuildError(f"harvest: symlink {path} has an empty target or control characters in it")
        return Entry(path, "symlink", 0o777, owner, group, member.linkname)
    if member.isfifo():
        return Entry(path, "fifo", mode, owner, group)
    if member.islnk():
        linked = member_parts(member.linkname)
        source = seen.get(posixpath.join(parent, *linked)) if not isinstance(linked, str) and linked else None
        if source is None or source.kind != "file":
            raise BuildError(f"harvest: {path} is a hard link to {member.linkname!r}, "
                             "which is not a file harvested before it")
        return Entry(path, "file", mode, owner, group, sha256=source.sha256, size=source.size)
    if member.isreg() and not member.issparse():
        handle = tar.extractfile(member)
        chunks = iter(lambda: handle.read(_CHUNK), b"")
        if store is not None:
            digest, size = store.put_chunks(chunks)
        else:
            hasher, size = hashlib.sha256(), 0
            for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
            digest = hasher.hexdigest()
        return Entry(path, "file", mode, owner, group, sha256=digest, size=size)
    raise BuildError(f"harvest: {path} is a device or other special file; packages cannot carry it")


def harvest(sandbox, roots: tuple[str, ...], ids: IdNames, store: ContentStore) -> StagedTree:
    """Read the trees below `roots` out of a sandbox."""
    entries: list[Entry] = []
    for root in roots:
        with sandbox.open_tar(root) as stream:
            entries.extend(read_tree(stream, root, ids, store))
    return StagedTree(store, tuple(sorted(entries, key=lambda e: e.path)))


__all__ = ["ContentStore", "Entry", "IdNames", "KINDS", "StagedTree", "StreamReader", "harvest", "read_tree"]
