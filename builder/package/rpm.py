"""The .rpm packager (through nfpm): RPM's own relations, `%config(noreplace)`
control files, the release with the family's `.elN` suffix. (/usr/sbin/sendmail
is not shipped: the scripts register qmail's in the `mta` alternative, as
RHEL's MTAs do.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from ..evidence import CheckResult
from ..formats.facts import ContentEntry, PackageFacts
from ..formats.rpmfile import FIELD_TAGS, read_rpm, rpm_files
from ..platforms import platform_for
from ..record import ManifestEntry
from ..repo.base import RepositoryWriter
from ..repo.rpm import RpmRepository
from .base import Artifact, BuildContext, PackageSpec, own_entries
from .nfpm import base_config, merge_relations, run_nfpm

RELATION = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9_./+()-]+( (<|<=|=|>=|>) [0-9][A-Za-z0-9._+~^:-]*)?$",
    "x-messages": {"pattern": "must be an RPM relation such as 'MTA', 'server(smtp)' or 'glibc >= 2.34'"},
}

@dataclass(frozen=True)
class RpmOptions:
    """The recipe's `rpm:` section. Library requirements come from the build."""

    requires: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    obsoletes: tuple[str, ...] = ()
    group: str = "System Environment/Daemons"
    license: str = ""  # as RPM spells it, when it differs from package.license
    # rpmlint findings the recipe justifies (regexes, as rpmlintrc's addFilter)
    rpmlint_filters: tuple[str, ...] = ()
    build_requires: tuple[str, ...] = ()  # the .spec's BuildRequires (qmail-pkg source)


class RpmPackager:
    format: ClassVar[str] = "rpm"
    family: ClassVar[str] = "rhel"
    script_set: ClassVar[str] = "rpm"
    script_names: ClassVar[tuple[str, ...]] = ("preinst", "postinst", "prerm", "postrm")
    allowed_scripts: ClassVar[tuple[str, ...]] = ("prein", "postin", "preun", "postun")
    # what nfpm writes; triggers, file triggers and relocation prefixes never
    allowed_fields: ClassVar[frozenset[str]] = frozenset(FIELD_TAGS) - {"Prefixes", "Triggername", "Filetriggername",
                                                                        "Transfiletriggername"}
    repository: ClassVar[type[RepositoryWriter]] = RpmRepository
    options_key: ClassVar[str] = "rpm"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{key: {"type": "array", "items": RELATION}
               for key in ("requires", "recommends", "provides", "conflicts", "obsoletes", "build_requires")},
            "group": {"type": "string", "pattern": "^[A-Za-z0-9 /._-]+$",
                      "x-messages": {"pattern": "must be an RPM group such as 'System Environment/Daemons'"}},
            "license": {"type": "string", "pattern": "^[A-Za-z0-9 ().+-]+$",
                        "x-messages": {"pattern": "must be a license expression such as 'Public Domain and GPLv2'"}},
            "rpmlint_filters": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }

    def options(self, raw: dict[str, Any]) -> RpmOptions:
        values: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}
        return RpmOptions(**values)

    def release(self, spec: PackageSpec) -> str:
        return f"{spec.revision}{spec.version_suffix}"

    def version_of(self, upstream: str, revision: int, suffix: str) -> str:
        return f"{upstream}-{revision}{suffix}"

    def version(self, spec: PackageSpec) -> str:
        return self.version_of(spec.meta.version, spec.revision, spec.version_suffix)

    def architecture_of(self, architecture: str, release: str) -> str:
        return platform_for(self.family).arch(architecture)

    def arch(self, spec: PackageSpec) -> str:
        return self.architecture_of(spec.architecture, spec.release)

    def _relations(self, options: RpmOptions, library_depends: tuple[str, ...]) -> dict[str, list[str]]:
        return {
            "depends": merge_relations(library_depends, options.requires),
            "recommends": list(options.recommends),
            "provides": list(options.provides),
            "conflicts": list(options.conflicts),
            "replaces": list(options.obsoletes),  # nfpm writes rpm's Obsoletes from it
        }

    def relations_of(self, options: RpmOptions | None, library_depends: tuple[str, ...],
                     identity: tuple[str, str, str]) -> dict[str, tuple[str, ...]]:
        """The header's relations as build() writes them, with the two
        provides rpm adds for every package (name and name(arch))."""
        name, version, architecture = identity
        written = self._relations(options or RpmOptions(), library_depends)
        marker = {"x86_64": "x86-64", "aarch64": "aarch-64"}.get(architecture, architecture)
        return {
            "Requires": tuple(written["depends"]),
            "Recommends": tuple(written["recommends"]),
            "Provides": (*written["provides"], f"{name} = {version}", f"{name}({marker}) = {version}"),
            "Conflicts": tuple(written["conflicts"]),
            "Obsoletes": tuple(written["replaces"]),
        }

    def own_paths(self, name: str) -> tuple[str, ...]:
        return ()

    def same_entry(self, entry: ContentEntry, staged: ManifestEntry) -> bool:
        if staged.kind == "symlink":
            return (entry.kind, entry.link) == (staged.kind, staged.link)
        return (entry.kind, entry.mode, entry.owner, entry.group, entry.sha256) == (
            staged.kind, staged.mode, staged.owner, staged.group, staged.sha256)

    def read(self, path: Path, data: bytes) -> PackageFacts:
        return read_rpm(path)

    def files(self, path: Path, data: bytes):
        return rpm_files(path)

    def lint(self, artifact: Path, recipe) -> CheckResult:
        """rpmlint's errors, less the findings the recipe justifies (rpm.rpmlint_filters)."""
        if not shutil.which("rpmlint"):
            return CheckResult("rpmlint", False, "rpmlint is not installed (apt-get install rpmlint)")
        options = recipe.options.get(self.options_key) or RpmOptions()
        with tempfile.TemporaryDirectory(prefix="qmail-pkg-rpmlint-") as tmp:
            rc = Path(tmp) / "rpmlintrc"
            rc.write_text("".join(f"addFilter({json.dumps(f)})\n" for f in options.rpmlint_filters))
            result = subprocess.run(["rpmlint", "-r", str(rc), str(artifact)], capture_output=True, text=True)
        errors = [line for line in result.stdout.splitlines() if ": E: " in line]
        summary = next((line for line in result.stdout.splitlines() if "packages and" in line),
                       result.stdout.strip()[-200:])
        return CheckResult("rpmlint: no error", not errors, "; ".join(errors[:6]) or summary.strip())

    def companions(self, spec: PackageSpec, artifact: Artifact, context: BuildContext,
                   out_dir: Path) -> tuple[Path, ...]:
        return ()

    def file_name(self, spec: PackageSpec) -> str:
        return f"{spec.meta.name}-{self.version(spec)}.{self.arch(spec)}.rpm"

    def _changelog(self, spec: PackageSpec, workdir: Path) -> Path:
        """A one-entry changelog (nfpm reads chglog's YAML) for this build."""
        when = datetime.fromtimestamp(spec.source_date_epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = [{"semver": self.version(spec), "date": when, "packager": spec.meta.maintainer,
                  "changes": [{"note": "Built by qmail-pkg from its recipe; the build record lists the sources."}]}]
        path = workdir / "rpm-changelog.yml"
        path.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        return path

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        options: RpmOptions = spec.options or RpmOptions()
        spec = replace(spec, shipped=own_entries(spec))  # /usr, /var... belong to the filesystem package
        relations = self._relations(options, spec.library_depends)
        scripts_dir = workdir / "rpm-scripts"
        scripts_dir.mkdir(exist_ok=True)
        config = base_config(spec, scripts_dir, version=spec.meta.version, release=self.release(spec),
                             arch=self.arch(spec), relations=relations)
        if options.license:
            config["license"] = options.license
        # what lives in the doc folder is %doc (rpm --excludedocs leaves it out)
        docs = f"/usr/share/doc/{spec.meta.name}/"
        for row in config["contents"]:
            if row["dst"].startswith(docs) and row.get("type") is None:
                row["type"] = "doc"
        config["changelog"] = str(self._changelog(spec, workdir))
        config["rpm"] = {
            "group": options.group,
            "compression": "xz",
            "summary": spec.description.split("\n", 1)[0],
            # no build host's name in the header: builds are reproducible anywhere
            "buildhost": "qmail-pkg.invalid",
        }
        target = out_dir / self.file_name(spec)
        run_nfpm(config, "rpm", workdir, target, spec.source_date_epoch)
        return Artifact.of(target, self.format, self.version(spec))
