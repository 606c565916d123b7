"""The .deb packager (through nfpm)."""

from __future__ import annotations

from pathlib import Path

from . import Artifact, PackageSpec
from .nfpm import base_config, run_nfpm


class DebPackager:
    format = "deb"
    script_set = "deb"

    def file_name(self, spec: PackageSpec) -> str:
        return f"{spec.meta.name}_{spec.full_version}_{spec.architecture}.deb"

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        scripts_dir = workdir / "deb-scripts"
        scripts_dir.mkdir(exist_ok=True)
        config = base_config(spec, scripts_dir)
        # lintian on bookworm rejects zstd data members; xz is what Debian uses.
        config["deb"] = {"compression": "xz"}
        target = out_dir / self.file_name(spec)
        run_nfpm(config, "deb", workdir, target, spec.source_date_epoch)
        return Artifact.of(target, self.format)
