"""Safe, bounded extraction of archives and copies of folders we do not trust.

Source tarballs, `--source` archives and folders are hostile data: a member
may try to land outside the destination, directly (`/etc/x`, `../x`) or
through a symlink extracted earlier (`d/l -> ..`, then `d/l/x`). Judging
names as text cannot catch the second kind, so this module never resolves a
path on the host at all: every file is created relative to a directory file
descriptor that was itself opened with O_NOFOLLOW, one component at a time.
A component that is a symlink stops the walk with ELOOP; nothing is ever
written through a link, whatever the archive holds. Symlinks are still
recreated as data, but only when their target stays inside the tree, so that
the sandbox that receives the tree cannot be pointed at its own files either.

Size is bounded too (bytes written and members), with limits that can be
raised through the environment; a decompression bomb ends in a clear error.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .environ import EXTRACT_DEFAULT_BYTES, EXTRACT_DEFAULT_MEMBERS, EXTRACT_MAX_BYTES, EXTRACT_MAX_MEMBERS
from .errors import SourceError, kind_name, printable

MAX_BYTES_ENV = EXTRACT_MAX_BYTES.name
MAX_MEMBERS_ENV = EXTRACT_MAX_MEMBERS.name
DEFAULT_MAX_BYTES = EXTRACT_DEFAULT_BYTES
DEFAULT_MAX_MEMBERS = EXTRACT_DEFAULT_MEMBERS
MAX_NAME = 1024  # bytes in one member path
_CHUNK = 1 << 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def no_space(where: Path) -> str:
    return f"no space left on the device holding {where}; free some space or set TMPDIR to a roomier folder"


@dataclass(frozen=True)
class Limits:
    """How much one extraction may write."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS

    @classmethod
    def from_environment(cls) -> "Limits":
        return cls(EXTRACT_MAX_BYTES.value(), EXTRACT_MAX_MEMBERS.value())


def has_control_characters(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def member_parts(name: str) -> tuple[str, ...] | str:
    """The components of a relative member path, or why it is refused."""
    if not name or name in (".", "./"):
        return ()
    if "\0" in name or has_control_characters(name):
        return "control character in the name refused"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        return f"name longer than {MAX_NAME} bytes refused"
    path = PurePosixPath(name)
    if path.is_absolute():
        return "absolute path refused"
    parts = tuple(part for part in path.parts if part != ".")
    if ".." in parts:
        return "'..' in path refused"
    return parts


def link_stays_inside(parts: tuple[str, ...], target: str) -> bool:
    """Whether a symlink at `parts` pointing at `target` resolves inside the
    tree, read as text (the host never resolves it)."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    depth = len(parts) - 1  # the link's folder
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return True


class Writer:
    """Creates entries below one root folder without ever following a link.

    `where` names the input in error messages (archive path, folder...).
    """

    def __init__(self, root: Path, where: str, limits: Limits):
        root.mkdir(parents=True, exist_ok=True)
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.where = where
        self.limits = limits
        self.written = 0
        self.members = 0
        self.files: set[tuple[str, ...]] = set()  # regular files this writer made

    def close(self) -> None:
        os.close(self.root_fd)

    def refuse(self, name: str, why: str) -> SourceError:
        # names and link targets come from the archive: escaped, they cannot
        # break the message's line or drive the terminal
        return SourceError(printable(f"{self.where}: member '{name}': {why}"))

    def count_member(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise SourceError(printable(
                f"{self.where}: more than {self.limits.max_members} members (the limit); "
                f"refusing to extract it (raise the limit with {MAX_MEMBERS_ENV}=N if this is expected)"
            ))

    def count_bytes(self, amount: int) -> None:
        self.written += amount
        if self.written > self.limits.max_bytes:
            raise SourceError(printable(
                f"{self.where}: extracts to more than {self.limits.max_bytes} bytes (the limit); "
                f"refusing to go on (raise the limit with {MAX_BYTES_ENV}=N if this is expected)"
            ))

    @contextmanager
    def folder(self, name: str, parts: tuple[str, ...], create: bool = True) -> Iterator[int]:
        """A descriptor of the folder `parts`, created as needed, walked
        component by component with O_NOFOLLOW."""
        fd = os.dup(self.root_fd)
        try:
            for part in parts:
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self.refuse(name, f"its path passes through '{part}', which is not a folder "
                                                "(a symlink or a file)") from None
                    if exc.errno == errno.ENOENT:
                        raise self.refuse(name, f"its folder '{part}' does not exist") from None
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _clear(self, name: str, folder_fd: int, leaf: str) -> None:
        """Remove an earlier entry of the same name (never a folder)."""
        try:
            info = os.stat(leaf, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            raise self.refuse(name, "a folder of the same name was extracted before")
        os.unlink(leaf, dir_fd=folder_fd)

    def directory(self, name: str, parts: tuple[str, ...]) -> None:
        self.count_member(name)
        with self.folder(name, parts):
            pass

    def file(self, name: str, parts: tuple[str, ...], chunks: Iterator[bytes], executable: bool) -> str:
        """Write a regular file; return its sha256."""
        self.count_member(name)
        hasher = hashlib.sha256()
        with self.folder(name, parts[:-1]) as folder_fd:
            self._clear(name, folder_fd, parts[-1])
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(parts[-1], flags, 0o600, dir_fd=folder_fd)
            try:
                for chunk in chunks:
                    self.count_bytes(len(chunk))
                    hasher.update(chunk)
                    _write_all(fd, chunk)
                os.fchmod(fd, 0o755 if executable else 0o644)
            finally:
                os.close(fd)
        self.files.add(parts)
        return hasher.hexdigest()

    def symlink(self, name: str, parts: tuple[str, ...], target: str) -> None:
        self.count_member(name)
        if not link_stays_inside(parts, target):
            raise self.refuse(name, f"symlink to '{target}' leaves the tree")
        with self.folder(name, parts[:-1]) as folder_fd:
            self._clear(name, folder_fd, parts[-1])
            os.symlink(target, parts[-1], dir_fd=folder_fd)
        self.files.discard(parts)

    def hardlink(self, name: str, parts: tuple[str, ...], target: str, size: int) -> None:
        self.count_member(name)
        target_parts = member_parts(target)
        if isinstance(target_parts, str) or not target_parts:
            raise self.refuse(name, f"hard link to '{target}': {target_parts or 'empty target'}")
        if target_parts not in self.files:
            raise self.refuse(name, f"hard link to '{target}', which is not a regular file extracted before it")
        self.count_bytes(size)
        with (self.folder(name, target_parts[:-1], create=False) as source_fd,
              self.folder(name, parts[:-1]) as folder_fd):
            self._clear(name, folder_fd, parts[-1])
            os.link(target_parts[-1], parts[-1], src_dir_fd=source_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
        self.files.add(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _member_chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    handle = tar.extractfile(member)
    if handle is None:
        return
    while chunk := handle.read(_CHUNK):
        yield chunk


def open_regular(path: Path, what: str) -> int:
    """A descriptor of a regular file, refusing FIFOs, devices and folders
    before anything could block on them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(printable(f"{what}: cannot open: {exc.strerror or exc}")) from None
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise SourceError(printable(f"{what}: not a regular file ({kind_name(kind)})"))
    os.set_blocking(fd, True)
    return fd


def extract_tarball(archive: Path, dest: Path, limits: Limits | None = None) -> int:
    """Extract a (compressed) tarball into dest; every member stays below it.
    Returns the newest member's time (a reproducible SOURCE_DATE_EPOCH)."""
    limits = limits or Limits.from_environment()
    where = str(archive)
    fd = open_regular(archive, where)
    writer = Writer(dest, where, limits)
    newest = 0
    try:
        with os.fdopen(fd, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
            for member in tar:
                _extract_member(tar, member, writer)
                newest = max(newest, int(member.mtime))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise SourceError(printable(f"{archive}: cannot extract: {no_space(dest)}")) from None
        raise SourceError(printable(f"{archive}: cannot extract: {exc.strerror or exc}")) from None
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise SourceError(printable(f"{archive}: cannot extract: {exc or type(exc).__name__}")) from None
    finally:
        writer.close()
    return newest


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, writer: Writer) -> None:
    parts = member_parts(member.name)
    if isinstance(parts, str):
        raise writer.refuse(member.name, parts)
    if not parts:
        return  # "./" itself
    if member.isdir():
        writer.directory(member.name, parts)
    elif member.issparse():
        raise writer.refuse(member.name, "sparse file refused")
    elif member.isreg():
        writer.file(member.name, parts, _member_chunks(tar, member), bool(member.mode & 0o111))
    elif member.issym():
        writer.symlink(member.name, parts, member.linkname)
    elif member.islnk():
        writer.hardlink(member.name, parts, member.linkname, member.size)
    else:
        raise writer.refuse(member.name, "special file (device, FIFO) refused")


def copy_folder(source: Path, dest: Path, limits: Limits | None = None) -> str:
    """Copy a folder tree we do not trust into dest (regular files, folders
    and symlinks that stay inside; never following one). Returns a sha256 over
    the copied paths, kinds, executable bits, contents and link targets."""
    limits = limits or Limits.from_environment()
    writer = Writer(dest, str(source), limits)
    hasher = hashlib.sha256()
    try:
        root_fd = os.open(source, _DIR_FLAGS)
    except OSError as exc:
        writer.close()
        raise SourceError(printable(f"{source}: cannot read the folder: {exc.strerror or exc}")) from None
    try:
        _copy_below(root_fd, (), writer, hasher, str(source))
    except OSError as exc:
        detail = no_space(dest) if exc.errno == errno.ENOSPC else exc.strerror or exc
        raise SourceError(printable(f"{source}: cannot copy: {detail}")) from None
    finally:
        os.close(root_fd)
        writer.close()
    return hasher.hexdigest()


def _copy_below(folder_fd: int, parts: tuple[str, ...], writer: Writer, hasher, top: str) -> None:
    for name in sorted(os.listdir(folder_fd)):
        child = (*parts, name)
        rel = "/".join(child)
        checked = member_parts(rel)
        if isinstance(checked, str):
            raise writer.refuse(rel, checked)
        info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            writer.directory(rel, child)
            hasher.update(f"D {rel}\n".encode("utf-8", "surrogateescape"))
            sub = os.open(name, _DIR_FLAGS, dir_fd=folder_fd)
            try:
                _copy_below(sub, child, writer, hasher, top)
            finally:
                os.close(sub)
        elif stat.S_ISREG(info.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise writer.refuse(rel, "changed into a special file while being copied")
                executable = bool(info.st_mode & 0o111)
                digest = writer.file(rel, child, iter(lambda: handle.read(_CHUNK), b""), executable)
            hasher.update(f"F {rel} {'x' if executable else '-'} {digest}\n".encode("utf-8", "surrogateescape"))
        elif stat.S_ISLNK(info.st_mode):
            target = os.readlink(name, dir_fd=folder_fd)
            writer.symlink(rel, child, target)
            hasher.update(f"L {rel} {target}\n".encode("utf-8", "surrogateescape"))
        else:
            raise writer.refuse(rel, f"{kind_name(info.st_mode)} refused: "
                                     "a source tree holds files, folders and symlinks only")


def single_top(dest: Path) -> Path:
    """The one top folder of an extracted tree, else dest itself."""
    entries = list(os.scandir(dest))
    if len(entries) == 1 and entries[0].is_dir(follow_symlinks=False):
        return dest / entries[0].name
    return dest


__all__ = [
    "Limits",
    "copy_folder",
    "extract_tarball",
    "has_control_characters",
    "kind_name",
    "link_stays_inside",
    "member_parts",
    "open_regular",
    "single_top",
]
