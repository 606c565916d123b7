"""The build cache: artifacts and their build record by cache key.

The key (Plan.cache_key) is a hash of everything that can change a build's
output, so an unchanged key needs no container at all. Entries are written
into a temporary folder and renamed into place (readers never see half of
one), and every file is checked against its recorded sha256 when reused: a
damaged entry is thrown away and rebuilt, never handed out.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .environ import cache_folder
from .package.nfpm import nfpm_binary
from .sources import digest_file

CACHE_ENV = "QMAIL_PKG_CACHE"
MANIFEST = "entry.json"


def default_cache_dir() -> Path:
    return cache_folder("builds", CACHE_ENV)



@functools.cache
def tool_digest() -> str:
    """The tool as it decides outputs: its own code, templates and schema,
    and the nfpm binary it drives."""
    root = Path(__file__).resolve().parent
    hasher = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".j2", ".json"):
            digest = digest_file(path, "sha256")
            hasher.update(f"{path.relative_to(root).as_posix()}\0{digest}\n".encode())
    try:
        nfpm = digest_file(Path(nfpm_binary()), "sha256")
        hasher.update(f"nfpm\0{nfpm}\n".encode())
    except Exception:  # noqa: BLE001 - no nfpm: builds will say so; the key only has to differ
        hasher.update(b"nfpm\0missing\n")
    return hasher.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    folder: Path
    files: dict[str, str]  # file name -> sha256


class BuildCache:
    def __init__(self, root: Path):
        self.root = root

    def get(self, key: str) -> CacheEntry | None:
        folder = self.root / key
        try:
            files = json.loads((folder / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        for name, digest in files.items():
            path = folder / name
            if os.path.basename(name) != name or not path.is_file() or digest_file(path, "sha256") != digest:
                shutil.rmtree(folder, ignore_errors=True)  # damaged: rebuild rather than trust it
                return None
        return CacheEntry(folder, files)

    def put(self, key: str, files: list[Path]) -> None:
        if (self.root / key / MANIFEST).exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
        try:
            manifest = {}
            for path in files:
                shutil.copyfile(path, temporary / path.name)
                manifest[path.name] = digest_file(temporary / path.name, "sha256")
            (temporary / MANIFEST).write_text(json.dumps({"files": manifest}, indent=1, sort_keys=True))
            try:
                os.rename(temporary, self.root / key)
            except OSError:
                pass  # another build put the same entry first: same key, same content
        finally:
            shutil.rmtree(temporary, ignore_errors=True)


@functools.cache
def tool_versions() -> dict[str, str]:
    """The versions of what builds and packages, for the build record."""
    versions = {"qmail-pkg": __version__, "python": platform.python_version()}
    try:
        out = subprocess.run([nfpm_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
        versions["nfpm"] = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                                 if line.strip().startswith("GitVersion")),
                                out.strip().splitlines()[-1] if out.strip() else "")
    except Exception:  # noqa: BLE001 - a missing nfpm fails the build itself, with its own message
        versions["nfpm"] = "unavailable"
    return versions
