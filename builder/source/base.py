"""What every source packager receives, and the interface it implements.

A source package describes the native build a farm runs (Debian's buildds,
Copr and mock, poudriere): the pristine upstream tarballs, every change the
recipe makes to them as a patch, the recipe's build steps, and an install
that lays out what qmail-pkg's build staged (owners, modes, the packaging's
own files) without the qmail accounts existing where it builds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from ..package.base import PackageSpec
from ..plan import Plan

# Folder of the packaging's own files in every source package: the build
# steps, the environment, the installer, the service files (the build's).
PACKAGING = "qmail-pkg"
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Upstream:
    """One pristine upstream tarball, exactly as the recipe pins it."""

    name: str  # the recipe's source name (qmail, syncdir)
    filename: str  # qmail-1.03.tar.gz
    path: Path  # the verified tarball in the source cache
    top: str  # its one top folder (qmail-1.03)
    folder: str  # where it lies in the source tree: "" for the first, else its name
    urls: tuple[str, ...]
    size: int
    md5: str
    sha1: str
    sha256: str
    sha512: str

    @classmethod
    def of(cls, name: str, filename: str, path: Path, top: str, folder: str, urls: tuple[str, ...]) -> "Upstream":
        digests = {algorithm: hashlib.new(algorithm) for algorithm in ("md5", "sha1", "sha256", "sha512")}
        size = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 16):
                size += len(chunk)
                for digest in digests.values():
                    digest.update(chunk)
        return cls(name, filename, path, top, folder, urls, size,
                   **{algorithm: digest.hexdigest() for algorithm, digest in digests.items()})


@dataclass(frozen=True)
class SourcePatch:
    """One change the recipe makes to the sources, as a unified diff with
    paths relative to the top of the source tree (a/..., b/...)."""

    number: int
    slug: str  # the file name's stem: 0003-relink-every-program-against-syncdir
    subject: str  # one line: the step's title
    description: tuple[str, ...]  # the step's leading comment, or the patch file's header
    origin: str  # where the recipe makes it: "build.steps[2]", "patches/x.patch"
    diff: str
    architectures: tuple[str, ...] = ()  # empty: every architecture

    @property
    def file_name(self) -> str:
        return f"{self.slug}.patch"

    @property
    def files(self) -> tuple[str, ...]:
        """The paths it changes, relative to the top of the tree (hunks are
        counted: a changed line that reads like a header is a line)."""
        found: list[str] = []
        lines = self.diff.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            hunk = HUNK.match(line)
            if hunk:
                old, new = int(hunk.group(2) or 1), int(hunk.group(4) or 1)
                index += 1
                while (old > 0 or new > 0) and index < len(lines):
                    mark = lines[index][:1]
                    old -= mark in (" ", "-")
                    new -= mark in (" ", "+")
                    index += 1
                continue
            if line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ "):
                for header in (line, lines[index + 1]):
                    path = header[4:]
                    if path != "/dev/null" and path[2:] not in found:
                        found.append(path[2:])
                index += 2
                continue
            index += 1
        return tuple(found)


@dataclass(frozen=True)
class InstallItem:
    """One entry of the staged tree and where the source build gets it."""

    path: str  # absolute, as installed
    kind: str  # dir | file | symlink
    mode: int
    owner: str
    group: str
    uid: int
    gid: int
    source: str = ""  # files: relative path in the built tree, or below PACKAGING/root
    packaged: bool = False  # a file of the packaging (service files...), not of the build
    link: str = ""  # symlinks: the target
    strip: bool = False  # an ELF file: stripped as the build strips
    conffile: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """One target's source package, format-neutral: the binary packager's
    spec (scripts, relations, description) plus what the build does."""

    plan: Plan
    package: PackageSpec  # what `qmail-pkg build` hands the binary packager
    upstreams: tuple[Upstream, ...]
    patches: tuple[SourcePatch, ...]
    build_steps: tuple[str, ...]  # the recipe's build-phase steps, verbatim
    install: tuple[InstallItem, ...]
    files: tuple[tuple[str, bytes], ...]  # packaged files by installed path
    env: tuple[tuple[str, str], ...]  # what the steps expect, without this machine's paths

    @property
    def recipe(self):
        return self.plan.recipe

    @property
    def target(self):
        return self.plan.target

    @property
    def name(self) -> str:
        return self.plan.recipe.package.name

    @property
    def version(self) -> str:
        return self.plan.recipe.package.version

    def common_patches(self) -> tuple[SourcePatch, ...]:
        return tuple(patch for patch in self.patches if not patch.architectures)

    def architecture_patches(self) -> dict[str, tuple[SourcePatch, ...]]:
        """Architecture -> the patches only its builds apply (after the common ones)."""
        found: dict[str, list[SourcePatch]] = {}
        for patch in self.patches:
            for architecture in patch.architectures:
                found.setdefault(architecture, []).append(patch)
        return {architecture: tuple(patches) for architecture, patches in sorted(found.items())}


@dataclass(frozen=True)
class SourceResult:
    """What a source packager wrote into the output folder."""

    kind: str  # debian, srpm, port
    files: tuple[Path, ...]  # every file written (folders: their files)
    main: Path  # the .dsc, the .src.rpm, the port folder


class SourcePackager(Protocol):
    """One kind of source package, for the binary format its build makes
    (registered once, in builder/source/__init__.py)."""

    format: ClassVar[str]  # the binary format it rebuilds: deb | rpm | pkg
    kind: ClassVar[str]  # debian | srpm | port

    def write(self, spec: SourceSpec, out_dir: Path, workdir: Path) -> SourceResult:
        """Write the source package into out_dir (a private folder); return what it wrote."""


__all__ = ["HUNK", "InstallItem", "PACKAGING", "SourcePackager", "SourcePatch", "SourceResult", "SourceSpec",
           "Upstream"]
