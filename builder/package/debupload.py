"""What Debian's tools read beside a .deb: the .buildinfo (deb-buildinfo(5):
the checksums, the build's architecture, date and folder, every package of
the build image as Installed-Build-Depends, the environment a rebuild sets)
and a binary upload's .changes (deb-changes(5), Format 1.8), so that dput,
reprepro's include and debrebuild take what `qmail-pkg build` made. Also
the source upload's .changes of a source package (`qmail-pkg source`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .base import BuildContext, PackageSpec


@dataclass(frozen=True)
class Listed:
    """A file an upload names, with its digests."""

    name: str
    size: int
    md5: str
    sha1: str
    sha256: str

    @classmethod
    def of(cls, path: Path) -> "Listed":
        data = path.read_bytes()
        return cls(path.name, len(data), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                   hashlib.sha256(data).hexdigest())


def rfc2822(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _checksums(files: list[Listed], md5: bool) -> list[str]:
    lines = ["Checksums-Sha1:", *(f" {f.sha1} {f.size} {f.name}" for f in files),
             "Checksums-Sha256:", *(f" {f.sha256} {f.size} {f.name}" for f in files)]
    return (["Checksums-Md5:", *(f" {f.md5} {f.size} {f.name}" for f in files)] if md5 else []) + lines


def buildinfo_text(source: str, binary: str, version: str, architecture: str, files: list[Listed],
                   context: BuildContext) -> str:
    pairs = sorted(item.partition("=")[::2] for item in context.installed)
    installed = [f" {name} (= {package_version})" for name, package_version in pairs if name and package_version]
    lines = [
        "Format: 1.0",
        f"Source: {source}",
        f"Binary: {binary}",
        f"Architecture: {architecture}",
        f"Version: {version}",
        *_checksums(files, md5=True),
        "Build-Origin: Debian",
        f"Build-Architecture: {context.architecture}",
        f"Build-Date: {rfc2822(context.build_date)}",
        f"Build-Path: {context.build_path}",
    ]
    if installed:
        lines += ["Installed-Build-Depends:", *(row + "," for row in installed[:-1]), installed[-1]]
    if context.environment:
        lines += ["Environment:", *(f' {key}="{value}"' for key, value in context.environment)]
    return "\n".join(lines) + "\n"


def changes_text(spec: PackageSpec, source: str, binaries: tuple[str, ...], version: str, architecture: str,
                 changes: str, files: list[tuple[Listed, str, str]], distribution: str) -> str:
    """A .changes naming `files` (each with its section and priority)."""
    summary = spec.description.split("\n", 1)[0]
    listed = [f for f, _, _ in files]
    lines = [
        "Format: 1.8",
        f"Date: {rfc2822(spec.source_date_epoch)}",
        f"Source: {source}",
        f"Binary: {' '.join(binaries)}",
        f"Architecture: {architecture}",
        f"Version: {version}",
        f"Distribution: {distribution}",
        "Urgency: medium",
        f"Maintainer: {spec.meta.maintainer}",
        f"Changed-By: {spec.meta.maintainer}",
        "Description:",
        *(f" {binary} - {summary}" for binary in binaries),
        "Changes:",
        *(f" {line}" if line.strip() else " ." for line in changes.rstrip("\n").split("\n")[:-2]),
        *_checksums(listed, md5=False),
        "Files:",
        *(f" {f.md5} {f.size} {section} {priority} {f.name}" for f, section, priority in files),
    ]
    return "\n".join(lines) + "\n"


def write_upload(spec: PackageSpec, deb: Path, version: str, changelog: str, distribution: str,
                 context: BuildContext, out_dir: Path) -> tuple[Path, Path]:
    """<name>_<version>_<arch>.buildinfo and .changes beside the .deb."""
    name, architecture = spec.meta.name, spec.architecture
    stem = f"{name}_{version}_{architecture}"
    buildinfo = out_dir / f"{stem}.buildinfo"
    buildinfo.write_text(buildinfo_text(name, name, version, architecture, [Listed.of(deb)], context),
                         encoding="utf-8")
    section, priority = spec.meta.section, spec.meta.priority
    changes = out_dir / f"{stem}.changes"
    changes.write_text(changes_text(spec, name, (name,), version, architecture, changelog,
                                    [(Listed.of(buildinfo), section, priority), (Listed.of(deb), section, priority)],
                                    distribution), encoding="utf-8")
    return buildinfo, changes


__all__ = ["Listed", "buildinfo_text", "changes_text", "write_upload"]
