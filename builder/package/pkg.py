"""FreeBSD's pkg(8) format, written here (nfpm has no such packager).

The layout is what `pkg create` writes (read from freebsd/pkg's libpkg and
checked with the real tool): a tar named NAME-VERSION.pkg, zstd-compressed,
whose first members are +COMPACT_MANIFEST and +MANIFEST (compact JSON,
which is UCL), then the files by absolute path, then the folders. Each file
in the manifest carries its checksum ("2$" + BLAKE2b, z-base32, as pkg
computes it), owner and group names, permissions and mtime; the scripts
are stored in the manifest itself. Tar members carry uid/gid 65534 and the
names, as pkg's own writer does, and every mtime is SOURCE_DATE_EPOCH, so
the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import zstandard

from ..evidence import CheckResult
from ..formats.facts import ContentEntry, PackageFacts
from ..formats.pkgfile import PkgError, file_sum, perm, read_pkg, read_pkg_facts, symlink_sum, urlencode
from ..platforms import platform_for
from ..record import ManifestEntry
from ..repo.base import RepositoryWriter
from ..repo.freebsd import PkgRepository
from .base import Artifact, BuildContext, PackageSpec, own_entries

NOBODY = 65534
SCRIPT_KEYS = ("pre-install", "post-install", "pre-deinstall", "post-deinstall")
# pkg's "legacy" arch spelling of each ABI architecture
_LEGACY_ARCH = {"amd64": "x86:64", "i386": "x86:32", "aarch64": "aarch64:64", "armv7": "armv7:32:el:eabi:hardfp"}


@dataclass(frozen=True)
class PkgDep:
    name: str
    origin: str
    version: str


@dataclass(frozen=True)
class FreeBSDOptions:
    """The recipe's `freebsd:` section."""

    origin: str = ""  # category/name in the ports tree, e.g. mail/qmail-syncdir
    categories: tuple[str, ...] = ("mail",)
    licenses: tuple[str, ...] = ()
    licenselogic: str = "single"
    deps: tuple[PkgDep, ...] = ()
    conflicts: tuple[str, ...] = ()  # package name globs
    build_depends: tuple[str, ...] = ()  # the port's BUILD_DEPENDS (qmail-pkg source): program:origin


class PkgPackager:
    format: ClassVar[str] = "pkg"
    family: ClassVar[str] = "freebsd"
    script_set: ClassVar[str] = "pkg"
    script_names: ClassVar[tuple[str, ...]] = SCRIPT_KEYS
    allowed_scripts: ClassVar[tuple[str, ...]] = SCRIPT_KEYS
    # the manifest keys build() writes besides name, version, abi, files, directories and scripts
    allowed_fields: ClassVar[frozenset[str]] = frozenset({"origin", "comment", "maintainer", "www", "arch", "prefix",
                                                          "flatsize", "licenselogic", "licenses", "desc", "categories",
                                                          "users", "groups", "config"})
    repository: ClassVar[type[RepositoryWriter]] = PkgRepository
    options_key: ClassVar[str] = "freebsd"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "origin": {"type": "string", "pattern": "^[a-z0-9-]+/[A-Za-z0-9._+-]+$",
                       "x-messages": {"pattern": "must be category/name, such as mail/qmail-syncdir"}},
            "categories": {"type": "array", "items": {
                "type": "string", "pattern": "^[a-z0-9-]+$",
                "x-messages": {"pattern": "must be a ports category such as mail"}}},
            "licenses": {"type": "array", "items": {
                "type": "string", "pattern": "^[A-Za-z0-9._+-]+$",
                "x-messages": {"pattern": "must be a license name such as PD or GPLv2"}}},
            "licenselogic": {"enum": ["single", "and", "or"]},
            "deps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "origin", "version"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[A-Za-z0-9._+-]+$",
                                 "x-messages": {"pattern": "must be a package name"}},
                        "origin": {"type": "string", "pattern": "^[a-z0-9-]+/[A-Za-z0-9._+-]+$",
                                   "x-messages": {"pattern": "must be category/name"}},
                        "version": {"type": "string", "pattern": "^[0-9][A-Za-z0-9._,+]*$",
                                    "x-messages": {"pattern": "must be a pkg version such as 0.76_19"}},
                    },
                },
            },
            "conflicts": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._+*?-]+$",
                                                      "x-messages": {"pattern": "must be a package name or glob"}}},
            "build_depends": {"type": "array", "items": {
                "type": "string", "pattern": "^[A-Za-z0-9_./+-]+:[a-z0-9-]+/[A-Za-z0-9._+-]+$",
                "x-messages": {"pattern": "must be program:origin, such as groff:textproc/groff"}}},
        },
    }

    def options(self, raw: dict[str, Any]) -> FreeBSDOptions:
        values = dict(raw)
        values["deps"] = tuple(PkgDep(**dep) for dep in values.get("deps", ()))
        for key in ("categories", "licenses", "conflicts", "build_depends"):
            if key in values:
                values[key] = tuple(values[key])
        return FreeBSDOptions(**values)

    def version_of(self, upstream: str, revision: int, suffix: str) -> str:
        return f"{upstream}_{revision}"  # PORTVERSION_PORTREVISION

    def version(self, spec: PackageSpec) -> str:
        return self.version_of(spec.meta.version, spec.revision, spec.version_suffix)

    def architecture_of(self, architecture: str, release: str) -> str:
        """The package ABI (FreeBSD:14:amd64), which pkg matches against the system's."""
        return f"FreeBSD:{release.split('.')[0]}:{platform_for(self.family).arch(architecture)}"

    def relations_of(self, options: FreeBSDOptions | None, library_depends: tuple[str, ...],
                     identity: tuple[str, str, str]) -> dict[str, tuple[str, ...]]:
        deps = (options or FreeBSDOptions()).deps
        return {"deps": tuple(sorted(f"{dep.name} {dep.origin} {dep.version}" for dep in deps))} if deps else {}

    def own_paths(self, name: str) -> tuple[str, ...]:
        return ()

    def same_entry(self, entry: ContentEntry, staged: ManifestEntry) -> bool:
        group = platform_for(self.family).root_group if staged.group == "root" else staged.group
        if staged.kind == "symlink":
            return (entry.kind, entry.link) == (staged.kind, staged.link)
        return (entry.kind, entry.mode, entry.owner, entry.group, entry.sha256) == (
            staged.kind, staged.mode, staged.owner, group, staged.sha256)

    def read(self, path: Path, data: bytes) -> PackageFacts:
        return read_pkg_facts(path, data)

    def files(self, path: Path, data: bytes):
        return read_pkg(path, data).contents.items()

    def lint(self, artifact: Path, recipe) -> CheckResult:
        """What pkg(8) relies on, read back: member order, manifest keys, every
        file's checksum and attributes, the scripts; and no key pkg cannot
        install (a `conflicts` naming an absent package fails pkg add)."""
        name = "pkg read-back: manifest, checksums, owners, modes, scripts"
        try:
            archive = read_pkg(artifact)
            facts = read_pkg_facts(artifact, artifact.read_bytes())
        except PkgError as exc:
            return CheckResult(name, False, str(exc))
        problems = [f"manifest lacks {key}" for key in MANIFEST_KEYS if key not in archive.full]
        problems += [f"no {script} script" for script in SCRIPT_KEYS if script not in dict(facts.scripts)]
        if "conflicts" in archive.full:
            problems.append("the manifest has conflicts, which pkg add cannot install when the package named is "
                            "absent; ports refuse conflicting packages at install time instead")
        evidence = "; ".join(problems[:6]) or (
            f"{len(archive.full.get('files', {}))} files, {len(archive.full.get('directories', {}))} folders, "
            f"abi {archive.full.get('abi')}, version {archive.full.get('version')}")
        return CheckResult(name, not problems, evidence)

    def companions(self, spec: PackageSpec, artifact: Artifact, context: BuildContext,
                   out_dir: Path) -> tuple[Path, ...]:
        return ()

    def file_name(self, spec: PackageSpec) -> str:
        # pkg's own NAME-VERSION.pkg names every release and architecture
        # alike (its repositories keep one folder per ABI): the release and
        # architecture follow, as rpm's names carry dist and arch, so that
        # one dist/ or one records/ folder holds them all. pkg reads the
        # manifest, never the file name.
        major = spec.release.split(".")[0]
        arch = platform_for(self.family).arch(spec.architecture)
        return f"{spec.meta.name}-{self.version(spec)}.freebsd{major}.{arch}.pkg"

    def abi(self, spec: PackageSpec) -> tuple[str, str]:
        major = spec.release.split(".")[0]
        arch = platform_for(self.family).arch(spec.architecture)
        return f"FreeBSD:{major}:{arch}", f"freebsd:{major}:{_LEGACY_ARCH.get(arch, arch)}"

    def manifests(self, spec: PackageSpec) -> tuple[dict, dict]:
        """(+COMPACT_MANIFEST, +MANIFEST) as pkg_emit_object orders them."""
        options: FreeBSDOptions = spec.options or FreeBSDOptions()
        group = platform_for(self.family).root_group
        abi, arch = self.abi(spec)
        summary, _, body = spec.description.partition("\n")
        files: dict[str, dict] = {}
        directories: dict[str, dict] = {}
        flatsize = 0
        for entry in own_entries(spec):  # FreeBSD's base owns /usr/local, /var...
            owner = {"uname": entry.owner, "gname": group if entry.group == "root" else entry.group}
            if entry.kind == "dir":
                directories[urlencode(entry.path)] = {**owner, "perm": perm(entry.mode)}
            elif entry.kind == "file":
                flatsize += entry.size
                files[urlencode(entry.path)] = {"sum": file_sum(spec.tree.store.read(entry.sha256)), **owner,
                                                "perm": perm(entry.mode), "mtime": spec.source_date_epoch}
            elif entry.kind == "symlink":
                files[urlencode(entry.path)] = {"sum": symlink_sum(entry.link_target), **owner, "perm": "0777",
                                                "symlink_target": entry.link_target, "mtime": spec.source_date_epoch}
        compact: dict[str, Any] = {
            "name": spec.meta.name,
            "origin": options.origin or f"{(options.categories or ('mail',))[0]}/{spec.meta.name}",
            "version": self.version(spec),
            "comment": summary,
            "maintainer": spec.meta.maintainer,
            "www": spec.meta.homepage,
            "abi": abi,
            "arch": arch,
            "prefix": spec.install_prefix or "/usr/local",
            "flatsize": flatsize,
            "licenselogic": options.licenselogic,
        }
        if options.licenses:
            compact["licenses"] = list(options.licenses)
        compact["desc"] = urlencode(body.strip() or summary)
        if options.deps:
            compact["deps"] = {dep.name: {"origin": dep.origin, "version": dep.version} for dep in options.deps}
        compact["categories"] = list(options.categories)
        compact["users"] = list(spec.users)
        compact["groups"] = list(spec.groups)
        # No `conflicts` key: pkg(8) looks every name up when it installs and
        # fails when one is not installed. As ports do, the pre-install script
        # refuses to install over a conflicting package instead.
        full = dict(compact)
        full["files"] = dict(sorted(files.items()))
        if spec.conffiles:
            full["config"] = [urlencode(path) for path in sorted(spec.conffiles)]
        full["directories"] = dict(sorted(directories.items()))
        scripts = dict(spec.scripts)
        full["scripts"] = {key: urlencode(scripts[key]) for key in SCRIPT_KEYS if key in scripts}
        return compact, full

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        compact, full = self.manifests(spec)
        group = platform_for(self.family).root_group
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, document in (("+COMPACT_MANIFEST", compact), ("+MANIFEST", full)):
                data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
                _add(tar, name, tarfile.REGTYPE, 0o644, "root", group, spec.source_date_epoch, data)
            entries = sorted(own_entries(spec), key=lambda e: e.path)
            for entry in [e for e in entries if e.kind != "dir"] + [e for e in entries if e.kind == "dir"]:
                gname = group if entry.group == "root" else entry.group
                if entry.kind == "file":
                    _add(tar, entry.path, tarfile.REGTYPE, entry.mode, entry.owner, gname,
                         spec.source_date_epoch, spec.tree.store.read(entry.sha256))
                elif entry.kind == "symlink":
                    _add(tar, entry.path, tarfile.SYMTYPE, 0o777, entry.owner, gname, spec.source_date_epoch,
                         link=entry.link_target)
                elif entry.kind == "dir":
                    _add(tar, entry.path, tarfile.DIRTYPE, entry.mode, entry.owner, gname, spec.source_date_epoch)
        target = out_dir / self.file_name(spec)
        compressor = zstandard.ZstdCompressor(level=19, write_checksum=True)
        target.write_bytes(compressor.compress(raw.getvalue()))
        return Artifact.of(target, self.format, self.version(spec))


MANIFEST_KEYS = ("name", "version", "origin", "comment", "desc", "maintainer", "www", "abi", "arch", "prefix",
                 "flatsize", "licenselogic", "categories", "users", "groups", "files", "directories", "scripts")


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, uname: str, gname: str, mtime: int,
         data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = NOBODY
    info.uname, info.gname = uname, gname
    info.mtime = mtime
    info.linkname = link
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


__all__ = ["FreeBSDOptions", "PkgPackager"]
