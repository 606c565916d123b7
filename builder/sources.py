"""Sources: the cache that acts as a mirror, checksum verification, safe extraction.

A build never reads a tarball it has not verified against every size and
checksum the recipe pins. Extraction refuses members that would land outside
the destination (absolute paths, `..`, links pointing out, device nodes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import SourceError
from .recipe.model import Source

SOURCES_ENV = "QMAIL_PKG_SOURCES"
DOWNLOAD_TIMEOUT = 60
_CHUNK = 1 << 16


def default_cache_dir() -> Path:
    """$QMAIL_PKG_SOURCES, else $XDG_CACHE_HOME/qmail-pkg/sources, else ~/.cache/..."""
    if os.environ.get(SOURCES_ENV):
        return Path(os.environ[SOURCES_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "qmail-pkg" / "sources"


@dataclass(frozen=True)
class PreparedSource:
    """A source ready to go into a sandbox: an extracted tree on the host."""

    name: str
    tree: Path  # the top directory of the extracted (or overridden) source
    origin: str  # cache path, URL it came from, or the override path
    sha256: str  # of the tarball, or of the directory's content for overrides
    overridden: bool


def digest_file(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def digest_tree(root: Path) -> str:
    """A stable sha256 over a directory's paths, modes and contents."""
    hasher = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            hasher.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            hasher.update(f"F {rel} {path.stat().st_mode & 0o7777:o} {digest_file(path, 'sha256')}\n".encode())
        elif path.is_dir():
            hasher.update(f"D {rel}\n".encode())
    return hasher.hexdigest()


def verify_file(source: Source, path: Path) -> str:
    """Check size and every pinned checksum; return the sha256. Raises SourceError."""
    actual_size = path.stat().st_size
    if source.size is not None and actual_size != source.size:
        raise SourceError(
            f"{path}: size mismatch for source '{source.name}': expected {source.size} bytes, got {actual_size}"
        )
    for algorithm, expected in source.checksums().items():
        actual = digest_file(path, algorithm)
        if actual != expected.lower():
            raise SourceError(
                f"{path}: {algorithm} mismatch for source '{source.name}': "
                f"expected {expected.lower()}, got {actual}"
            )
    return digest_file(path, "sha256")


def _download(url: str, dest: Path) -> None:
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def fetch(source: Source, cache_dir: Path) -> tuple[Path, str]:
    """Return (verified tarball in the cache, where it came from)."""
    cached = cache_dir / source.filename
    if cached.exists():
        verify_file(source, cached)
        return cached, str(cached)
    cache_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in source.urls:
        try:
            _download(url, cached)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            failures.append(f"{url} ({reason})")
            continue
        try:
            verify_file(source, cached)
        except SourceError:
            # A bad download must not poison the cache for the next attempt.
            cached.unlink(missing_ok=True)
            raise
        return cached, url
    tried = "; ".join(failures) or "no URLs"
    raise SourceError(
        f"source '{source.name}': {source.filename} is not in the cache and could not be downloaded "
        f"(tried: {tried}); put the file at {cached} or pass --sources DIR / --source {source.name}=PATH"
    )


def _stays_inside(path: PurePosixPath) -> bool:
    """True when a relative path never climbs above its starting folder."""
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return False
    return True


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse anything that could write outside the extraction root."""
    name = PurePosixPath(member.name)
    where = f"{archive}: member '{member.name}'"
    if name.is_absolute():
        raise SourceError(f"{where}: absolute path refused")
    if ".." in name.parts:
        raise SourceError(f"{where}: '..' in path refused")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise SourceError(f"{where}: special file (device, FIFO) refused")
    if member.issym():
        target = PurePosixPath(member.linkname)
        if target.is_absolute() or not _stays_inside(name.parent / target):
            raise SourceError(f"{where}: symlink to '{member.linkname}' leaves the tree")
    if member.islnk():
        target = PurePosixPath(member.linkname)
        if target.is_absolute() or ".." in target.parts:
            raise SourceError(f"{where}: hard link to '{member.linkname}' leaves the tree")


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tarball into dest; return the single top directory (or dest)."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                check_member(archive, member)
            for member in members:
                # Drop owners and odd bits from the archive: the build decides those.
                member.uid = member.gid = 0
                member.uname = member.gname = "root"
                executable = member.isdir() or member.mode & 0o111
                member.mode = 0o755 if executable else 0o644
                tar.extract(member, dest, set_attrs=not member.issym(), filter="fully_trusted")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceError(f"{archive}: cannot extract: {exc}") from None
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def prepare(source: Source, cache_dir: Path, workdir: Path, override: Path | None = None) -> PreparedSource:
    """Fetch + verify + extract one source (or take a development override)."""
    dest = workdir / source.name
    dest.mkdir(parents=True, exist_ok=False)
    if override is not None:
        if not override.exists():
            raise SourceError(f"--source {source.name}={override}: no such file or directory")
        if override.is_dir():
            tree = dest / override.name
            shutil.copytree(override, tree, symlinks=True)
            return PreparedSource(source.name, tree, str(override), digest_tree(tree), overridden=True)
        top = safe_extract(override, dest)
        return PreparedSource(source.name, top, str(override), digest_file(override, "sha256"), overridden=True)
    tarball, origin = fetch(source, cache_dir)
    top = safe_extract(tarball, dest)
    return PreparedSource(source.name, top, origin, digest_file(tarball, "sha256"), overridden=False)
