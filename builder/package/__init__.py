"""Packagers: one module per package format behind one interface.

A packager turns a PackageSpec (staged tree + metadata + maintainer scripts,
all format-neutral) into one artifact file. Adding a format is adding a module
and one line in packager_for().
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..recipe.model import PackageMeta
from ..staged import Entry, StagedTree


@dataclass(frozen=True)
class PackageSpec:
    meta: PackageMeta
    release: int
    architecture: str  # Debian spelling (amd64); packagers translate
    description: str  # final text, including any "unofficial build" notice
    tree: StagedTree
    shipped: tuple[Entry, ...]  # what the package carries (state excluded)
    conffiles: tuple[str, ...]  # paths of shipped files that are configuration
    scripts: tuple[tuple[str, str], ...]  # (format-specific script name, text)
    source_date_epoch: int
    lintian_overrides: tuple[str, ...] = ()  # read by the deb packager only

    @property
    def full_version(self) -> str:
        return f"{self.meta.version}-{self.release}"


@dataclass(frozen=True)
class Artifact:
    path: Path
    format: str
    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path, fmt: str) -> "Artifact":
        return cls(path, fmt, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)


class Packager(Protocol):
    format: str  # deb | rpm | freebsd
    script_set: str  # which maintainer-script set it wants rendered

    def file_name(self, spec: PackageSpec) -> str: ...

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        """Write the artifact into out_dir (a private temporary folder); return it."""


def packager_for(fmt: str) -> Packager:
    from .deb import DebPackager

    packagers: dict[str, Packager] = {"deb": DebPackager()}
    try:
        return packagers[fmt]
    except KeyError:
        raise NotImplementedError(f"no packager for format '{fmt}' yet") from None
