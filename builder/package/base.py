"""What every packager receives and returns, and the interface it implements."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..formats.facts import ContentEntry, PackageFacts
from ..recipe.model import PackageMeta
from ..repo.base import RepositoryWriter
from ..staged import Entry, StagedTree


@dataclass(frozen=True)
class PackageSpec:
    """One package to write, format-neutral except for `options` (the
    packager's own recipe section) and `library_depends` (found in the
    binaries by the family's tools, already in this format's syntax)."""

    meta: PackageMeta
    revision: int  # packaging revision (recipe's, or --revision)
    version_suffix: str  # the family's per-release suffix: "+deb12", ".el9", ""
    architecture: str  # the recipe's (Debian) spelling; packagers translate
    release: str  # the target's distribution release ("12", "9", "14")
    description: str  # final text, including any "unofficial build" notice
    tree: StagedTree
    shipped: tuple[Entry, ...]  # what the package carries (state excluded)
    conffiles: tuple[str, ...]  # paths of shipped files that are configuration
    scripts: tuple[tuple[str, str], ...]  # (script name of this format's set, text)
    source_date_epoch: int
    options: Any = None  # the packager's options dataclass
    library_depends: tuple[str, ...] = ()
    install_prefix: str = ""  # the recipe's layout.prefix (pkg's manifest names it)
    # Folders in `shipped` that belong to the system (/usr, /var...): dpkg
    # counts references to folders, rpm and pkg must not claim them.
    shared_dirs: tuple[str, ...] = ()
    users: tuple[str, ...] = ()  # the accounts the package's files belong to
    groups: tuple[str, ...] = ()
    suite: str = ""  # the target's distribution suite (bookworm), where it has one


@dataclass(frozen=True)
class BuildContext:
    """Where and how the build ran, for files a format's own tools read
    beside the package (Debian: .buildinfo, .changes)."""

    installed: tuple[str, ...]  # name=version of every package of the build image
    build_path: str  # where the sources were built, in the sandbox (a fixed folder)
    build_date: int  # seconds since the epoch
    architecture: str  # the build machine's, as the recipe spells it
    environment: tuple[tuple[str, str], ...] = ()  # the variables a rebuild must set the same


def own_entries(spec: PackageSpec) -> tuple[Entry, ...]:
    """What the package carries without the system's folders."""
    shared = set(spec.shared_dirs)
    return tuple(entry for entry in spec.shipped if entry.path not in shared)


@dataclass(frozen=True)
class Artifact:
    path: Path
    format: str
    sha256: str
    size: int
    version: str = ""  # the package version as its format writes it

    @classmethod
    def of(cls, path: Path, fmt: str, version: str = "") -> "Artifact":
        return cls(path, fmt, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size, version)


class Packager(Protocol):
    """One package format: it writes the format, reads it back, lints it and
    names the repository writer that publishes it (registered once, in
    builder/package/__init__.py)."""

    format: ClassVar[str]  # deb | rpm | pkg
    family: ClassVar[str]  # the platform family whose systems install it
    script_set: ClassVar[str]  # templates/<script_set>/ holds its entry scripts
    script_names: ClassVar[tuple[str, ...]]  # the entry scripts rendered for it
    options_key: ClassVar[str]  # the recipe's top-level key for its options
    options_schema: ClassVar[dict[str, Any]]  # JSON schema of that mapping
    allowed_fields: ClassVar[frozenset[str]]  # metadata fields it writes (read back as PackageFacts.fields)
    allowed_scripts: ClassVar[tuple[str, ...]]  # scripts it writes, by the names read() gives them
    repository: ClassVar[type[RepositoryWriter]]  # its repository writer

    def version_of(self, upstream: str, revision: int, suffix: str) -> str:
        """The full version as this format spells it."""

    def architecture_of(self, architecture: str, release: str) -> str:
        """The recipe's architecture as this format writes it (pkg: the ABI)."""

    def relations_of(self, options: Any, library_depends: tuple[str, ...],
                     identity: tuple[str, str, str]) -> dict[str, tuple[str, ...]]:
        """The relations build() writes, by the names read() gives them."""

    def own_paths(self, name: str) -> tuple[str, ...]:
        """Files build() adds beyond the staged tree."""

    def same_entry(self, entry: ContentEntry, staged: Any) -> bool:
        """Whether a carried entry is the staged one, as this format writes it."""

    def read(self, path: Path, data: bytes) -> PackageFacts:
        """What the package file says about itself (builder/formats/)."""

    def files(self, path: Path, data: bytes) -> Iterable[tuple[str, bytes]]:
        """(absolute path, content) of every regular file the package carries."""

    def lint(self, artifact: Path, recipe: Any) -> Any:
        """The format's linter as a gate: a CheckResult."""

    def options(self, raw: dict[str, Any]) -> Any:
        """The options dataclass from the (validated) recipe mapping."""

    def version(self, spec: PackageSpec) -> str:
        """The full version as this format spells it."""

    def file_name(self, spec: PackageSpec) -> str: ...

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        """Write the artifact into out_dir (a private temporary folder); return it."""

    def companions(self, spec: PackageSpec, artifact: Artifact, context: BuildContext,
                   out_dir: Path) -> tuple[Path, ...]:
        """Files written beside the artifact for the format's own tools (none for most)."""
