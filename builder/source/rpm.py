"""The RPM source package: a .spec and the SRPM `rpmbuild -bs` makes of it,
which Copr, mock and the Open Build Service rebuild. Source0.. are the
pristine upstream tarballs, the last Source the packaging folder (build.sh,
install-tree.sh, the service files) as a tarball; Patch0.. the recipe's
changes (those of some architectures only under %ifarch). %files carries
every owner and mode with %attr, the rpm script set's scriptlets are the ones
`build` renders, and where Debian's rpm lacks EL's macros (%{dist}) the spec
falls back to the target's own values."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import ClassVar

from ..errors import BuildError
from ..package.rpm import RpmOptions, RpmPackager
from ..platforms import platform_for
from .base import PACKAGING, SourceResult, SourceSpec
from .shell import packaging_files, render, spec_text
from .tarball import write_tar_gz

RPM_OLDEST = 631238400  # 1990-01-02: not 1989 in any time zone
SCRIPTLETS = (("preinst", "pre"), ("postinst", "post"), ("prerm", "preun"), ("postrm", "postun"))


def _source_line(upstream) -> str:
    """The upstream URL where rpm can take the file's name from it, else the name."""
    for url in upstream.urls:
        if PurePosixPath(url.split("?", 1)[0]).name == upstream.filename:
            return url
    return upstream.filename


def file_list(spec: SourceSpec) -> list[str]:
    """%files: every entry the package owns, with its owner and mode."""
    package = spec.package
    shared = set(package.shared_dirs)
    docs = f"{platform_for(spec.target.family).doc_root}/{spec.name}/"
    lines = []
    for item in spec.install:
        if item.path in shared:
            continue  # the filesystem package's
        owner = f"{item.owner},{item.group}"
        path = spec_text(item.path)
        if item.kind == "dir":
            lines.append(f"%dir %attr({item.mode:04o},{owner}) {path}")
        elif item.kind == "symlink":
            lines.append(f"%attr(-,{owner}) {path}")
        else:
            marks = "%config(noreplace) " if item.conffile else "%doc " if item.path.startswith(docs) else ""
            lines.append(f"{marks}%attr({item.mode:04o},{owner}) {path}")
    return lines


class RpmSource:
    format: ClassVar[str] = "rpm"
    kind: ClassVar[str] = "srpm"

    def spec_text(self, spec: SourceSpec, packaging_name: str) -> str:
        options: RpmOptions = spec.package.options or RpmOptions()
        upstreams = spec.upstreams
        numbered = {patch.slug: number for number, patch in enumerate(spec.patches)}
        arch_names = platform_for(spec.target.family)
        arch_patches = [(arch_names.arch(arch), [(numbered[p.slug], p) for p in patches])
                        for arch, patches in spec.architecture_patches().items()]
        summary, _, body = spec.package.description.partition("\n")
        # rpm refuses a changelog entry older than 1990 (the miniature's sources are of 1980)
        when = datetime.fromtimestamp(max(spec.plan.source_date_epoch, RPM_OLDEST), tz=timezone.utc).strftime(
            "%a %b %d %Y")
        relations = [("Requires", options.requires), ("Recommends", options.recommends),
                     ("Provides", options.provides), ("Conflicts", options.conflicts),
                     ("Obsoletes", options.obsoletes)]
        text = render("rpm/spec.j2", {
            "target": spec.target.name, "dist": spec.package.version_suffix, "name": spec.name,
            "version": spec.version, "revision": spec.package.revision, "summary": summary,
            "license": options.license or spec.package.meta.license, "group": options.group,
            "url": spec.package.meta.homepage, "sources": [_source_line(upstream) for upstream in upstreams],
            "packaging_number": len(upstreams), "packaging": packaging_name,
            "patches": [_Numbered(numbered[p.slug], p.file_name) for p in spec.patches],
            "architectures": " ".join(arch_names.arch(a) for a in spec.target.architectures),
            "build_requires": options.build_requires, "relations": [(k, v) for k, v in relations if v],
            "description": [line for line in body.strip("\n").splitlines()] or [summary],
            "top": upstreams[0].top,
            "others": [_Other(index, upstream.top, upstream.folder) for index, upstream in enumerate(upstreams)
                       if index > 0],
            "common": [_Numbered(numbered[p.slug], p.file_name) for p in spec.common_patches()],
            "arch_patches": [(arch, [_Numbered(n, p.file_name) for n, p in patches]) for arch, patches in arch_patches],
            "files": file_list(spec), "changelog_date": when, "maintainer": spec.package.meta.maintainer,
        }, text=True)
        scripts = dict(spec.package.scripts)
        for name, section in SCRIPTLETS:
            if name in scripts:
                # scriptlets are macro-expanded when the spec is read: every % doubled
                text += f"\n%{section}\n{scripts[name].replace('%', '%%')}\n"
        return text

    def write(self, spec: SourceSpec, out_dir: Path, workdir: Path) -> SourceResult:
        """The SRPM, and beside it rpm/ with the .spec and every file it names
        (what Copr and mock take instead of an SRPM)."""
        if not shutil.which("rpmbuild"):
            raise BuildError("an SRPM is made with rpmbuild, which is not installed (apt-get install rpm)")
        sources = out_dir / "rpm"
        sources.mkdir()
        packaging_name = f"{spec.name}-{spec.version}-{PACKAGING}.tar.gz"
        write_tar_gz(sources / packaging_name,
                     [(f"{PACKAGING}/{item.path}", item.content, item.mode) for item in packaging_files(spec)],
                     spec.plan.source_date_epoch)
        for upstream in spec.upstreams:
            shutil.copyfile(upstream.path, sources / upstream.filename)
        for patch in spec.patches:
            (sources / patch.file_name).write_text(patch.diff, encoding="utf-8")
        spec_path = sources / f"{spec.name}.spec"
        spec_path.write_text(self.spec_text(spec, packaging_name), encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
               "SOURCE_DATE_EPOCH": str(spec.plan.source_date_epoch), "LC_ALL": "C"}
        result = subprocess.run(
            ["rpmbuild", "-bs", "--define", f"_topdir {workdir}", "--define", f"_sourcedir {sources}",
             "--define", f"_srcrpmdir {out_dir}", "--define", "_buildhost qmail-pkg.invalid",
             "--define", "use_source_date_epoch_as_buildtime 1", str(spec_path)],
            capture_output=True, text=True, env=env)
        made = sorted(out_dir.glob("*.src.rpm"))
        if result.returncode != 0 or len(made) != 1 or "error:" in result.stderr:
            detail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            raise BuildError(f"{spec.target.label}: rpmbuild -bs failed: {detail or 'no SRPM'}")
        version = RpmPackager().version_of(spec.version, spec.package.revision, spec.package.version_suffix)
        if made[0].name != f"{spec.name}-{version}.src.rpm":
            raise BuildError(f"{spec.target.label}: rpmbuild made {made[0].name}, not {spec.name}-{version}.src.rpm")
        return SourceResult(self.kind, (*sorted(sources.iterdir()), made[0]), made[0])


@dataclass(frozen=True)
class _Numbered:
    number: int
    file_name: str


@dataclass(frozen=True)
class _Other:
    number: int  # its SourceN
    top: str  # its tarball's top folder
    folder: str  # where the source tree has it


__all__ = ["RpmSource", "file_list"]
