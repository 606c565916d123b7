"""Folders the tool is handed and files it reads there, treated as hostile.

An artifact folder from a build job, a repository tree from an earlier
publish, an output file named on the command line: any of them may hold a
symlink planted to make a write land elsewhere, a FIFO or device that
would hang a read, or a file far larger than anything real. So nothing here
resolves a path as text: a Folder is a descriptor opened with O_NOFOLLOW,
every name below it is one validated component, opened relative to that
descriptor without following a link, and every read is bounded. A symlink
met on the way is an error, never followed. (builder/archive.py does the
same for extraction; this module serves folders that persist.)
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import QmailPkgError, kind_name

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 16
# One path component: no separator, no NUL or control character, not . or ..
_COMPONENT = re.compile(r"^(?!\.{1,2}$)[^/\x00-\x1f\x7f]{1,255}$")


class FsError(QmailPkgError):
    """A folder or file handed to the tool cannot be used safely."""


def check_component(name: str, what: str) -> str:
    if not isinstance(name, str) or not _COMPONENT.match(name):
        raise FsError(f"{what}: {name!r} is not a plain file name")
    return name


def _read_fd(fd: int, limit: int, what: str) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FsError(f"{what}: {kind_name(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise FsError(f"{what}: {info.st_size} bytes, more than the {limit} a file of this kind may have")
    os.set_blocking(fd, True)
    chunks, total = [], 0
    while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:  # it grew while being read
            raise FsError(f"{what}: more than the {limit} bytes a file of this kind may have")
    return b"".join(chunks)


def read_file(path: Path, limit: int, what: str = "") -> bytes:
    """A regular file's bytes, at most `limit` of them; the last component is
    never followed as a link, and a FIFO or device is refused before it could
    block (the user's own folders above it are theirs to arrange)."""
    what = what or str(path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise FsError(f"{what}: {_reason(exc)}") from None
    try:
        return _read_fd(fd, limit, what)
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink, which is never followed here"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


class Folder:
    """A folder held by a descriptor; names below it are walked one
    component at a time with O_NOFOLLOW."""

    def __init__(self, fd: int, where: str):
        self.fd = fd
        self.where = where

    @classmethod
    def open(cls, path: Path, *, create: bool = False, what: str = "") -> "Folder":
        """The folder at `path` (created when asked). Its last component must
        not be a symlink; the folders above it are the caller's own."""
        where = what or str(path)
        if create:
            try:
                os.makedirs(path.parent, exist_ok=True)
                os.mkdir(path, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                raise FsError(f"{where}: cannot create the folder: {_reason(exc)}") from None
        try:
            return cls(os.open(path, _DIR_FLAGS), where)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise FsError(f"{where}: not a folder") from None
            raise FsError(f"{where}: {_reason(exc)}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Folder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _name(self, name: str) -> str:
        return check_component(name, f"{self.where}")

    def path_of(self, *parts: str) -> str:
        """A text path for messages and for tools that need one."""
        return "/".join([self.where.rstrip("/"), *parts])

    @contextmanager
    def sub(self, *parts: str, create: bool = False) -> Iterator["Folder"]:
        """The folder below this one, walked without following links."""
        fd = os.dup(self.fd)
        try:
            for part in parts:
                self._name(part)
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    where = self.path_of(*parts[: parts.index(part) + 1])
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise FsError(f"{where}: not a folder (a symlink or a file), refused") from None
                    raise FsError(f"{where}: {_reason(exc)}") from None
                os.close(fd)
                fd = child
            folder = Folder(fd, self.path_of(*parts))
            fd = -1
            try:
                yield folder
            finally:
                folder.close()
        finally:
            if fd >= 0:
                os.close(fd)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(self._name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def entries(self, limit: int = 100_000) -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of everything here, sorted; bounded in number."""
        found: list[tuple[str, os.stat_result]] = []
        for name in sorted(os.listdir(self.fd)):
            if len(found) >= limit:
                raise FsError(f"{self.where}: more than {limit} entries")
            info = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            found.append((name, info))
        return found

    def read(self, name: str, limit: int) -> bytes:
        what = self.path_of(name)
        try:
            fd = os.open(self._name(name), _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise FsError(f"{what}: {_reason(exc)}") from None
        try:
            return _read_fd(fd, limit, what)
        finally:
            os.close(fd)

    def copy_out(self, name: str, destination: Path, limit: int) -> tuple[str, int]:
        """Copy a regular file from here to a new private file; return its
        sha256 and size. What is hashed is exactly what was copied."""
        what = self.path_of(name)
        try:
            fd = os.open(self._name(name), _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise FsError(f"{what}: {_reason(exc)}") from None
        hasher, size = hashlib.sha256(), 0
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FsError(f"{what}: {kind_name(info.st_mode)}, not a regular file")
            if info.st_size > limit:
                raise FsError(f"{what}: {info.st_size} bytes, more than the {limit} allowed")
            os.set_blocking(fd, True)
            out = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                while chunk := os.read(fd, _CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise FsError(f"{what}: more than the {limit} bytes allowed")
                    hasher.update(chunk)
                    _write_all(out, chunk)
            finally:
                os.close(out)
        finally:
            os.close(fd)
        return hasher.hexdigest(), size

    def digest(self, name: str, limit: int) -> str:
        """The sha256 of a regular file here, read without following a link."""
        what = self.path_of(name)
        try:
            fd = os.open(self._name(name), _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise FsError(f"{what}: {_reason(exc)}") from None
        hasher, size = hashlib.sha256(), 0
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FsError(f"{what}: {kind_name(info.st_mode)}, not a regular file")
            os.set_blocking(fd, True)
            while chunk := os.read(fd, _CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FsError(f"{what}: more than the {limit} bytes allowed")
                hasher.update(chunk)
        finally:
            os.close(fd)
        return hasher.hexdigest()

    def write(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Replace `name` with `data` in one rename: a reader sees the old
        file or the new one. A folder, link or special file of that name is
        refused, not replaced."""
        self._refuse_unless_file(name)
        temporary = self._temporary(name)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=self.fd)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self._unlink_quietly(temporary)
            raise

    def put(self, name: str, source: Path, mode: int = 0o644) -> None:
        """Replace `name` with a copy of the private file `source` (one we
        made and verified), in one rename."""
        self._refuse_unless_file(name)
        temporary = self._temporary(name)
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                      dir_fd=self.fd)
        try:
            try:
                with open(source, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        _write_all(out, chunk)
                os.fchmod(out, mode)
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self._unlink_quietly(temporary)
            raise

    def rename(self, old: str, new: str, into: "Folder | None" = None) -> None:
        os.replace(self._name(old), (into or self)._name(new), src_dir_fd=self.fd, dst_dir_fd=(into or self).fd)

    def unlink(self, name: str) -> None:
        info = self.lstat(name)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            raise FsError(f"{self.path_of(name)}: a folder, where a file was expected")
        os.unlink(name, dir_fd=self.fd)

    def remove_tree(self, name: str) -> None:
        """Remove `name` and everything below it, never following a link."""
        info = self.lstat(name)
        if info is None:
            return
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(name, dir_fd=self.fd)
            return
        with self.sub(name) as folder:
            for child, _ in folder.entries():
                folder.remove_tree(child)
        os.rmdir(name, dir_fd=self.fd)

    def check_plain(self, limit: int = 200_000) -> int:
        """Every entry below is a folder or a regular file (no symlink, FIFO,
        device or socket); returns how many there are."""
        count = 0
        for name, info in self.entries(limit):
            count += 1
            if stat.S_ISDIR(info.st_mode):
                with self.sub(name) as folder:
                    count += folder.check_plain(limit - count)
            elif not stat.S_ISREG(info.st_mode):
                raise FsError(f"{self.path_of(name)}: {kind_name(info.st_mode)}; this tree may hold only folders and "
                              "regular files")
            if count > limit:
                raise FsError(f"{self.where}: more than {limit} entries")
        return count

    def _refuse_unless_file(self, name: str) -> None:
        info = self.lstat(name)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise FsError(f"{self.path_of(name)}: {kind_name(info.st_mode)}; only a regular file is ever replaced")

    def _temporary(self, name: str) -> str:
        # unpredictable and created with O_EXCL: a link planted in advance cannot be the file written
        return f".{name[:200]}.{secrets.token_hex(8)}.tmp"

    def _unlink_quietly(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except OSError:
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


__all__ = ["Folder", "FsError", "check_component", "read_file"]
