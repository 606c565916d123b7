"""The .deb packager (through nfpm), plus what Debian policy asks of every
binary package: a changelog in /usr/share/doc, optional lintian overrides,
and debconf templates when the script set has them."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .base import Artifact, PackageSpec
from .nfpm import base_config, merge_relations, rfc3339, run_nfpm

RELATIONS = ("depends", "recommends", "suggests", "provides", "conflicts", "replaces")


@dataclass(frozen=True)
class DebianOptions:
    """The recipe's `debian:` section: Debian relations and lintian overrides."""

    depends: tuple[str, ...] = ()
    recommends: tuple[str, ...] = ()
    suggests: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    # Shipped as /usr/share/lintian/overrides/<name>: "tag [pointer]" per line.
    lintian_overrides: tuple[str, ...] = ()


def changelog(spec: PackageSpec, version: str) -> bytes:
    """A one-entry Debian changelog for this build, gzipped reproducibly."""
    when = datetime.fromtimestamp(spec.source_date_epoch, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
    text = (
        f"{spec.meta.name} ({version}) unstable; urgency=medium\n\n"
        f"  * Built by qmail-pkg from its recipe; see the build record for sources\n"
        f"    and their checksums.\n\n"
        f" -- {spec.meta.maintainer}  {when}\n"
    )
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


class DebPackager:
    format = "deb"
    family = "debian"
    script_set = "deb"
    script_names = ("preinst", "postinst", "prerm", "postrm", "config", "templates")
    options_key = "debian"
    options_schema: dict[str, Any] = {
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
        },
    }

    def options(self, raw: dict[str, Any]) -> DebianOptions:
        return DebianOptions(**{key: tuple(value) for key, value in raw.items()})

    def version(self, spec: PackageSpec) -> str:
        return f"{spec.meta.version}-{spec.revision}{spec.version_suffix}"

    def file_name(self, spec: PackageSpec) -> str:
        return f"{spec.meta.name}_{self.version(spec)}_{spec.architecture}.deb"

    def _debian_files(self, spec: PackageSpec, workdir: Path) -> list[dict]:
        name = spec.meta.name
        options: DebianOptions = spec.options or DebianOptions()
        info = {"mode": 0o644, "owner": "root", "group": "root", "mtime": rfc3339(spec.source_date_epoch)}
        files = {f"/usr/share/doc/{name}/changelog.Debian.gz": changelog(spec, self.version(spec))}
        if options.lintian_overrides:
            lines = "".join(
                f"{override}\n" if override.startswith("#") else f"{name}: {override}\n"
                for override in options.lintian_overrides
            )
            files[f"/usr/share/lintian/overrides/{name}"] = lines.encode()
        rows = []
        for index, (dst, data) in enumerate(sorted(files.items())):
            src = workdir / f"debian-file-{index}"
            src.write_bytes(data)
            rows.append({"src": str(src), "dst": dst, "file_info": info})
        return rows

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        options: DebianOptions = spec.options or DebianOptions()
        relations = {key: getattr(options, key) for key in RELATIONS}
        relations["depends"] = merge_relations(spec.library_depends, options.depends)
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
            config["deb"]["predepends"] = ["debconf (>= 0.5) | debconf-2.0"]
        debconf = {key: config["scripts"].pop(key) for key in ("config", "templates") if key in config["scripts"]}
        if debconf:
            config["deb"]["scripts"] = debconf
        target = out_dir / self.file_name(spec)
        run_nfpm(config, "deb", workdir, target, spec.source_date_epoch)
        return Artifact.of(target, self.format, self.version(spec))
