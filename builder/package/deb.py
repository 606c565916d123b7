"""The .deb packager (through nfpm), plus what Debian policy asks of every
binary package: a changelog in /usr/share/doc, optional lintian overrides,
and debconf templates when the script set has them."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from ..evidence import CheckResult
from ..formats.debfile import deb_files, read_deb
from ..formats.facts import ContentEntry, PackageFacts
from ..record import ManifestEntry
from ..repo.apt import AptRepository
from ..repo.base import RepositoryWriter
from .base import Artifact, BuildContext, PackageSpec
from .debupload import write_upload
from .nfpm import base_config, merge_relations, rfc3339, run_nfpm

RELATIONS = ("depends", "recommends", "suggests", "provides", "conflicts", "replaces")
# the debconf interface the preinst asks its question through, before unpacking
DEBCONF_PREDEPENDS = "debconf (>= 0.5) | debconf-2.0"


@dataclass(frozen=True)
class CopyrightParagraph:
    """One Files paragraph of the source package's debian/copyright (DEP-5)."""

    files: tuple[str, ...]  # DEP-5 patterns: "*", "syncdir/*", "debian/*"
    copyright: str
    license: str  # DEP-5 short name: public-domain, GPL-2+ ...
    notice: tuple[str, ...] = ()  # the licence as upstream states it, one line each


@dataclass(frozen=True)
class DebianOptions:
    """The recipe's `debian:` section: Debian relations and lintian overrides,
    and for the source package (qmail-pkg source) its Build-Depends beyond
    build-essential and its machine-readable copyright."""

    depends: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    suggests: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    # Shipped as /usr/share/lintian/overrides/<name>: "tag [pointer]" per line.
    lintian_overrides: tuple[str, ...] = ()
    build_depends: tuple[str, ...] = ()
    copyright: tuple[CopyrightParagraph, ...] = ()


def rfc2822(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")


def distribution(spec: PackageSpec) -> str:
    """The changelog's (and an upload's) distribution: the target's suite."""
    return spec.suite or "unstable"


def changelog_text(spec: PackageSpec, version: str) -> str:
    """A one-entry Debian changelog for this build (the source package's
    debian/changelog is this text too)."""
    return (
        f"{spec.meta.name} ({version}) {distribution(spec)}; urgency=medium\n\n"
        f"  * Built by qmail-pkg from its recipe; see the build record for sources\n"
        f"    and their checksums.\n\n"
        f" -- {spec.meta.maintainer}  {rfc2822(spec.source_date_epoch)}\n"
    )


def changelog(spec: PackageSpec, version: str) -> bytes:
    """The changelog gzipped reproducibly: the bytes of `gzip -9n` (what a
    source package's build writes from debian/changelog)."""
    return gzip.compress(changelog_text(spec, version).encode(), compresslevel=9, mtime=0)


def lintian_overrides(spec: PackageSpec) -> bytes:
    """/usr/share/lintian/overrides/<name>: the recipe's, the package name prefixed."""
    options: DebianOptions = spec.options or DebianOptions()
    return "".join(f"{override}\n" if override.startswith("#") else f"{spec.meta.name}: {override}\n"
                   for override in options.lintian_overrides).encode()


class DebPackager:
    format: ClassVar[str] = "deb"
    family: ClassVar[str] = "debian"
    script_set: ClassVar[str] = "deb"
    script_names: ClassVar[tuple[str, ...]] = ("preinst", "postinst", "prerm", "postrm", "config", "templates")
    # control members besides control and md5sums: the scripts and what nfpm adds
    allowed_scripts: ClassVar[tuple[str, ...]] = ("preinst", "postinst", "prerm", "postrm", "config", "templates",
                                                  "conffiles")
    allowed_fields: ClassVar[frozenset[str]] = frozenset({"Maintainer", "Installed-Size", "Section", "Priority",
                                                          "Homepage", "Description"})
    repository: ClassVar[type[RepositoryWriter]] = AptRepository
    options_key: ClassVar[str] = "debian"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "depends": {"$ref": "#/$defs/relationList"},
            "recommends": {"$ref": "#/$defs/relationList"},
            "suggests": {"$ref": "#/$defs/relationList"},
            "provides": {"$ref": "#/$defs/plainRelationList"},
            "conflicts": {"$ref": "#/$defs/plainRelationList"},
            "replaces": {"$ref": "#/$defs/plainRelationList"},
            "lintian_overrides": {
                "type": "array",
                "items": {"type": "string", "pattern": "^(#.*|[a-z0-9][a-z0-9-]*( .+)?)$",
                          "x-messages": {"pattern": "must be 'tag [pointer]' or a '#' comment"}},
            },
            "build_depends": {"$ref": "#/$defs/relationList"},
            "copyright": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["files", "copyright", "license"],
                    "properties": {
                        "files": {"type": "array", "minItems": 1,
                                  "items": {"type": "string", "pattern": "^[A-Za-z0-9_.*?/+-]+$",
                                            "x-messages": {"pattern": "must be a DEP-5 file pattern such as "
                                                                      "'*' or 'syncdir/*'"}}},
                        "copyright": {"type": "string", "minLength": 1},
                        "license": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9.+ -]*$",
                                    "x-messages": {"pattern": "must be a DEP-5 licence name such as "
                                                              "'GPL-2+' or 'public-domain'"}},
                        "notice": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }

    def options(self, raw: dict[str, Any]) -> DebianOptions:
        values = {key: tuple(value) for key, value in raw.items() if key != "copyright"}
        paragraphs = tuple(CopyrightParagraph(tuple(item["files"]), item["copyright"], item["license"],
                                              tuple(item.get("notice", ()))) for item in raw.get("copyright", ()))
        return DebianOptions(**values, copyright=paragraphs)

    def version_of(self, upstream: str, revision: int, suffix: str) -> str:
        return f"{upstream}-{revision}{suffix}"

    def version(self, spec: PackageSpec) -> str:
        return self.version_of(spec.meta.version, spec.revision, spec.version_suffix)

    def architecture_of(self, architecture: str, release: str) -> str:
        return architecture  # the recipe spells architectures as Debian does

    def _relations(self, options: DebianOptions, library_depends: tuple[str, ...]) -> dict[str, list[str]]:
        relations = {key: list(getattr(options, key)) for key in RELATIONS}
        relations["depends"] = merge_relations(library_depends, options.depends)
        return relations

    def relations_of(self, options: DebianOptions | None, library_depends: tuple[str, ...],
                     identity: tuple[str, str, str]) -> dict[str, tuple[str, ...]]:
        """The relation fields of the control file, exactly as build() writes them."""
        written = self._relations(options or DebianOptions(), library_depends)
        fields = {key.capitalize(): tuple(values) for key, values in written.items() if values}
        fields["Pre-Depends"] = (DEBCONF_PREDEPENDS,)  # the debconf question of the deb script set
        return fields

    def own_paths(self, name: str) -> tuple[str, ...]:
        """What build() adds to the staged tree."""
        return (f"/usr/share/doc/{name}/changelog.Debian.gz", f"/usr/share/lintian/overrides/{name}")

    def same_entry(self, entry: ContentEntry, staged: ManifestEntry) -> bool:
        want = (staged.kind, staged.mode, staged.owner, staged.group, staged.sha256, staged.link)
        if staged.kind == "symlink":
            return (entry.kind, entry.link) == (staged.kind, staged.link)
        return (entry.kind, entry.mode, entry.owner, entry.group, entry.sha256, entry.link) == want

    def read(self, path: Path, data: bytes) -> PackageFacts:
        return read_deb(path, data)

    def files(self, path: Path, data: bytes):
        return deb_files(path, data)

    def lint(self, artifact: Path, recipe) -> CheckResult:
        """lintian at --fail-on error,warning, the recipe's overrides shipped in the package."""
        if not shutil.which("lintian"):
            return CheckResult("lintian", False, "lintian is not installed (apt-get install lintian)")
        result = subprocess.run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", str(artifact)],
                                capture_output=True, text=True)
        findings = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
        ok = result.returncode == 0 and not findings
        return CheckResult("lintian: no error or warning", ok, "; ".join(findings[:6]) or "clean")

    def file_name(self, spec: PackageSpec) -> str:
        return f"{spec.meta.name}_{self.version(spec)}_{spec.architecture}.deb"

    def companions(self, spec: PackageSpec, artifact: Artifact, context: BuildContext,
                   out_dir: Path) -> tuple[Path, ...]:
        """The .buildinfo and a binary upload's .changes (dput, reprepro include, debrebuild)."""
        version = self.version(spec)
        return write_upload(spec, artifact.path, version, changelog_text(spec, version), distribution(spec), context,
                            out_dir)

    def _debian_files(self, spec: PackageSpec, workdir: Path) -> list[dict]:
        name = spec.meta.name
        options: DebianOptions = spec.options or DebianOptions()
        info = {"mode": 0o644, "owner": "root", "group": "root", "mtime": rfc3339(spec.source_date_epoch)}
        files = {f"/usr/share/doc/{name}/changelog.Debian.gz": changelog(spec, self.version(spec))}
        if options.lintian_overrides:
            files[f"/usr/share/lintian/overrides/{name}"] = lintian_overrides(spec)
        rows = []
        for index, (dst, data) in enumerate(sorted(files.items())):
            src = workdir / f"debian-file-{index}"
            src.write_bytes(data)
            rows.append({"src": str(src), "dst": dst, "file_info": info})
        return rows

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        options: DebianOptions = spec.options or DebianOptions()
        relations = self._relations(options, spec.library_depends)
        scripts_dir = workdir / "deb-scripts"
        scripts_dir.mkdir(exist_ok=True)
        config = base_config(spec, scripts_dir, version=spec.meta.version,
                             release=f"{spec.revision}{spec.version_suffix}", arch=spec.architecture,
                             relations=relations)
        config["contents"] += self._debian_files(spec, workdir)
        # lintian on bookworm rejects zstd data members; xz is what Debian uses.
        config["deb"] = {"compression": "xz"}
        if any(name == "templates" for name, _ in spec.scripts):
            # the preinst asks its debconf question before anything is unpacked
            config["deb"]["predepends"] = [DEBCONF_PREDEPENDS]
        debconf = {key: config["scripts"].pop(key) for key in ("config", "templates") if key in config["scripts"]}
        if debconf:
            config["deb"]["scripts"] = debconf
        target = out_dir / self.file_name(spec)
        run_nfpm(config, "deb", workdir, target, spec.source_date_epoch)
        return Artifact.of(target, self.format, self.version(spec))
