"""Sources: the cache that acts as a mirror, checksum verification, safe extraction.

A build never reads a tarball it has not verified against every size and
checksum the recipe pins. Extraction and folder copies go through
builder/archive.py, which never follows a link and bounds what it writes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .archive import Limits, copy_folder, extract_tarball, open_regular, single_top
from .environ import cache_folder
from .errors import SourceError
from .recipe.model import Source

SOURCES_ENV = "QMAIL_PKG_SOURCES"
DOWNLOAD_TIMEOUT = 60
_CHUNK = 1 << 16


def default_cache_dir() -> Path:
    """$QMAIL_PKG_SOURCES, else $XDG_CACHE_HOME/qmail-pkg/sources, else ~/.cache/..."""
    return cache_folder("sources", SOURCES_ENV)


@dataclass(frozen=True)
class PreparedSource:
    """A source ready to go into a sandbox: an extracted tree on the host."""

    name: str
    tree: Path  # the top directory of the extracted (or overridden) source
    origin: str  # cache path, URL it came from, or the override path
    sha256: str  # of the tarball, or of the directory's content for overrides
    overridden: bool
    newest: int = 0  # newest member time of a tarball (0 for folders: their times are this host's)


def digest_file(path: Path, algorithm: str) -> str:
    """Hex digest of a regular file (a FIFO or device is refused, never read)."""
    hasher = hashlib.new(algorithm)
    with os.fdopen(open_regular(path, str(path)), "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def verify_file(source: Source, path: Path) -> str:
    """Check size and every pinned checksum; return the sha256. Raises SourceError."""
    with os.fdopen(open_regular(path, str(path)), "rb") as handle:
        actual_size = os.fstat(handle.fileno()).st_size
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


def _download(url: str, dest: Path, max_bytes: int) -> None:
    """Download into dest (through a .part file), never more than max_bytes."""
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(partial, "wb") as out:
            received = 0
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise ValueError(f"more than {max_bytes} bytes: not the pinned file")
                out.write(chunk)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


class MissingSource(SourceError):
    """A source neither in the cache nor to be downloaded from any of its URLs."""

    def __init__(self, source: Source, cache_dir: Path, tried: str):
        self.source, self.cache_dir, self.tried = source, cache_dir, tried
        super().__init__(
            f"source '{source.name}': {source.filename} is not in the cache and could not be downloaded "
            f"(tried: {tried}); put the file at {cache_dir / source.filename} or pass --sources DIR / "
            f"--source {source.name}=PATH"
        )


def fetch(source: Source, cache_dir: Path) -> tuple[Path, str]:
    """Return (verified tarball in the cache, where it came from)."""
    cached = cache_dir / source.filename
    if cached.exists() or cached.is_symlink():
        verify_file(source, cached)
        return cached, str(cached)
    cache_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in source.urls:
        try:
            # A pinned size bounds the download; without one, the extraction limit does.
            _download(url, cached, source.size or Limits.from_environment().max_bytes)
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
    raise MissingSource(source, cache_dir, "; ".join(failures) or "no URLs")


def check_overrides(sources: tuple[Source, ...], names) -> None:
    unknown = sorted(set(names) - {source.name for source in sources})
    if unknown:
        raise SourceError(f"--source {unknown[0]}=...: the recipe has no source named '{unknown[0]}'")


def fetch_all(sources: tuple[Source, ...], cache_dir: Path, targets: list[str], overridden=()) -> None:
    """Every source not overridden in the cache (downloaded where missing,
    all verified) before any target starts, so that what cannot be had is
    said once, for every target: the missing files, the URLs tried, the
    folder to put them in. A checksum mismatch stops at once, as in fetch()."""
    check_overrides(sources, overridden)
    missing = []
    for source in (source for source in sources if source.name not in overridden):
        try:
            fetch(source, cache_dir)
        except MissingSource as exc:
            missing.append(exc)
    if missing:
        files = ", ".join(f"{exc.source.filename} (tried: {exc.tried})" for exc in missing)
        raise SourceError(
            f"{len(missing)} source{'s' if len(missing) > 1 else ''} not in the cache and not downloadable: {files}; "
            f"copy {'them' if len(missing) > 1 else 'it'} into {cache_dir}/ (or give --sources DIR, or "
            f"--source NAME=PATH for an unofficial build); nothing was built for {', '.join(targets)}"
        )


def prepare(source: Source, cache_dir: Path, workdir: Path, override: Path | None = None) -> PreparedSource:
    """Fetch + verify + extract one source (or take a development override)."""
    dest = workdir / source.name
    dest.mkdir(parents=True, exist_ok=False)
    if override is not None:
        what = f"--source {source.name}={override}"
        try:
            kind = os.lstat(override).st_mode
        except OSError as exc:
            raise SourceError(f"{what}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(kind):
            tree = dest / override.name
            digest = copy_folder(override, tree)
            return PreparedSource(source.name, tree, str(override), digest, overridden=True)
        newest = extract_tarball(override, dest)
        return PreparedSource(source.name, single_top(dest), str(override), digest_file(override, "sha256"),
                              overridden=True, newest=newest)
    tarball, origin = fetch(source, cache_dir)
    newest = extract_tarball(tarball, dest)
    return PreparedSource(source.name, single_top(dest), origin, digest_file(tarball, "sha256"), overridden=False,
                          newest=newest)
