"""Archives a source package carries (debian.tar.xz, the packaging tarball
of an SRPM), written the same way every time: members sorted, every parent
folder present, owned by root, every mtime SOURCE_DATE_EPOCH."""

from __future__ import annotations

import gzip
import io
import lzma
import posixpath
import tarfile
from pathlib import Path


def _info(name: str, kind: bytes, mode: int, epoch: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size = kind, mode, epoch, size
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def tar_bytes(files: list[tuple[str, bytes, int]], epoch: int) -> bytes:
    """An uncompressed tar of (relative path, content, mode), folders made."""
    folders: set[str] = set()
    for name, _, _ in files:
        parent = posixpath.dirname(name)
        while parent:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        members = [(folder + "/", None, 0o755) for folder in folders] + list(files)
        for name, content, mode in sorted(members, key=lambda item: item[0].rstrip("/")):
            if content is None:
                tar.addfile(_info(name, tarfile.DIRTYPE, mode, epoch))
            else:
                tar.addfile(_info(name, tarfile.REGTYPE, mode, epoch, len(content)), io.BytesIO(content))
    return raw.getvalue()


def write_tar_xz(path: Path, files: list[tuple[str, bytes, int]], epoch: int) -> None:
    path.write_bytes(lzma.compress(tar_bytes(files, epoch), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                                   preset=6))


def write_tar_gz(path: Path, files: list[tuple[str, bytes, int]], epoch: int) -> None:
    path.write_bytes(gzip.compress(tar_bytes(files, epoch), compresslevel=9, mtime=0))


__all__ = ["tar_bytes", "write_tar_gz", "write_tar_xz"]
