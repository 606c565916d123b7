"""The .deb packager (through nfpm), plus what Debian policy asks of every
binary package: a changelog in /usr/share/doc and optional lintian overrides."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path

from . import Artifact, PackageSpec
from .nfpm import base_config, rfc3339, run_nfpm


def changelog(spec: PackageSpec) -> bytes:
    """A one-entry Debian changelog for this build, gzipped reproducibly."""
    when = datetime.fromtimestamp(spec.source_date_epoch, tz=timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
    text = (
        f"{spec.meta.name} ({spec.full_version}) unstable; urgency=medium\n\n"
        f"  * Built by qmail-pkg from its recipe; see the build record for sources\n"
        f"    and their checksums.\n\n"
        f" -- {spec.meta.maintainer}  {when}\n"
    )
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


class DebPackager:
    format = "deb"
    script_set = "deb"

    def file_name(self, spec: PackageSpec) -> str:
        return f"{spec.meta.name}_{spec.full_version}_{spec.architecture}.deb"

    def _debian_files(self, spec: PackageSpec, workdir: Path) -> list[dict]:
        name = spec.meta.name
        info = {"mode": 0o644, "owner": "root", "group": "root", "mtime": rfc3339(spec.source_date_epoch)}
        files = {f"/usr/share/doc/{name}/changelog.Debian.gz": changelog(spec)}
        if spec.lintian_overrides:
            lines = "".join(
                f"{override}\n" if override.startswith("#") else f"{name}: {override}\n"
                for override in spec.lintian_overrides
            )
            files[f"/usr/share/lintian/overrides/{name}"] = lines.encode()
        rows = []
        for index, (dst, data) in enumerate(sorted(files.items())):
            src = workdir / f"debian-file-{index}"
            src.write_bytes(data)
            rows.append({"src": str(src), "dst": dst, "file_info": info})
        return rows

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        scripts_dir = workdir / "deb-scripts"
        scripts_dir.mkdir(exist_ok=True)
        config = base_config(spec, scripts_dir)
        config["contents"] += self._debian_files(spec, workdir)
        # lintian on bookworm rejects zstd data members; xz is what Debian uses.
        config["deb"] = {"compression": "xz"}
        target = out_dir / self.file_name(spec)
        run_nfpm(config, "deb", workdir, target, spec.source_date_epoch)
        return Artifact.of(target, self.format)
