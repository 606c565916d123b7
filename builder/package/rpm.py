"""The .rpm packager (through nfpm): RPM's own relations, `%config(noreplace)`
control files, the release with the family's `.elN` suffix. (/usr/sbin/sendmail
is not shipped: the scripts register qmail's in the `mta` alternative, as
RHEL's MTAs do.)"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..platforms import platform_for
from .base import Artifact, PackageSpec, own_entries
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


class RpmPackager:
    format = "rpm"
    family = "rhel"
    script_set = "rpm"
    script_names = ("preinst", "postinst", "prerm", "postrm")
    options_key = "rpm"
    options_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{key: {"type": "array", "items": RELATION}
               for key in ("requires", "recommends", "provides", "conflicts", "obsoletes")},
            "group": {"type": "string", "pattern": "^[A-Za-z0-9 /._-]+$",
                      "x-messages": {"pattern": "must be an RPM group such as 'System Environment/Daemons'"}},
            "license": {"type": "string", "pattern": "^[A-Za-z0-9 ().+-]+$",
                        "x-messages": {"pattern": "must be a license expression such as 'Public Domain and GPLv2'"}},
            "rpmlint_filters": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }

    def options(self, raw: dict[str, Any]) -> RpmOptions:
        return RpmOptions(**{key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()})

    def release(self, spec: PackageSpec) -> str:
        return f"{spec.revision}{spec.version_suffix}"

    def version(self, spec: PackageSpec) -> str:
        return f"{spec.meta.version}-{self.release(spec)}"

    def arch(self, spec: PackageSpec) -> str:
        return platform_for(self.family).arch(spec.architecture)

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
        relations = {
            "depends": merge_relations(spec.library_depends, options.requires),
            "recommends": options.recommends,
            "provides": options.provides,
            "conflicts": options.conflicts,
            "replaces": options.obsoletes,  # nfpm writes rpm's Obsoletes from it
        }
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
