"""The FreeBSD port: <origin>/ (mail/qmail-syncdir/) as poudriere takes it.
Makefile (MASTER_SITES and DISTFILES per upstream tarball, the recipe's
build steps as do-build, the staged tree laid out by do-install), distinfo
(SHA256 and SIZE of each pinned tarball), pkg-descr, pkg-plist (every entry
with @(owner,group,mode): the build needs no account), the pkg script set's
scripts as pkg-pre-install and the others, files/ with the recipe's changes
as patch-* (extra-patch-* for some architectures only), pkg-message.in and
the packaging folder (files/qmail-pkg/)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import BuildError
from ..package.pkg import FreeBSDOptions
from ..platforms import platform_for
from .base import PACKAGING, SourceResult, SourceSpec
from .shell import packaging_files, render

# the pkg script set's scripts, by the file a port gives each
SCRIPTS = {"pre-install": "pkg-pre-install", "post-install": "pkg-post-install",
           "pre-deinstall": "pkg-pre-deinstall", "post-deinstall": "pkg-post-deinstall"}
LICENSE_COMB = {"and": "multi", "or": "dual", "single": ""}


@dataclass(frozen=True)
class _Other:
    top: str  # the tarball's top folder
    folder: str  # where the source tree has it


def origin_of(spec: SourceSpec) -> str:
    options: FreeBSDOptions = spec.package.options or FreeBSDOptions()
    return options.origin or f"{(options.categories or ('mail',))[0]}/{spec.name}"


def distinfo(spec: SourceSpec) -> str:
    lines = [f"TIMESTAMP = {spec.plan.source_date_epoch}"]
    for upstream in spec.upstreams:
        lines += [f"SHA256 ({upstream.filename}) = {upstream.sha256}", f"SIZE ({upstream.filename}) = {upstream.size}"]
    return "\n".join(lines) + "\n"


def plist(spec: SourceSpec) -> str:
    """pkg-plist: the package's own entries (not the system's folders, not
    the state), each with its owner, group and mode; configuration as @config."""
    wheel = platform_for(spec.target.family).root_group
    shared = set(spec.package.shared_dirs)
    lines = []
    for item in spec.install:
        if item.path in shared:
            continue
        group = wheel if item.group == "root" else item.group
        attributes = f"({item.owner},{group},{item.mode:04o})"
        if item.kind == "dir":
            lines.append(f"@dir{attributes} {item.path}")
        elif item.kind == "symlink":
            lines.append(f"@({item.owner},{group},) {item.path}")
        else:
            lines.append(f"@config{attributes} {item.path}" if item.conffile else f"@{attributes} {item.path}")
    return "\n".join(lines) + "\n"


def message(spec: SourceSpec) -> list[str]:
    prefix = spec.recipe.layout.prefix
    variable = spec.name.replace("-", "_")
    return [
        f"{spec.name} runs qmail under daemontools (sysutils/daemontools) where svscan's",
        "service folder exists.",
        "",
        "mailwrapper(8) is the administrator's: to hand mail to qmail, put in",
        "/etc/mail/mailer.conf:",
        f"  sendmail {prefix}/bin/sendmail",
        f"  send-mail {prefix}/bin/sendmail",
        f"  mailq {prefix}/bin/qmail-qread",
        "",
        "A qmail installed by hand whose accounts have other ids is refused; to let",
        f"the package renumber them: sysrc {variable}_renumber_accounts=YES",
    ]


class FreeBSDPort:
    format: ClassVar[str] = "pkg"
    kind: ClassVar[str] = "port"

    def makefile(self, spec: SourceSpec, arch_patches: dict[str, list[str]]) -> str:
        options: FreeBSDOptions = spec.package.options or FreeBSDOptions()
        names = platform_for(spec.target.family)
        sites, distfiles = [], []
        for upstream in spec.upstreams:
            group = upstream.name
            for url in upstream.urls:
                site = posixpath.dirname(url.split("?", 1)[0]) + "/"
                if posixpath.basename(url.split("?", 1)[0]) != upstream.filename:
                    raise BuildError(f"source {upstream.name!r}: {url} does not end in {upstream.filename}; a port "
                                     "fetches DISTFILES from MASTER_SITES by name")
                sites.append(f"{site}:{group}")
            distfiles.append(f"{upstream.filename}:{group}")
        summary = spec.package.description.split("\n", 1)[0]
        return render("freebsd/Makefile.j2", {
            "target": spec.target.name, "name": spec.name, "version": spec.version,
            "revision": spec.package.revision, "categories": " ".join(options.categories), "sites": sites,
            "distfiles": distfiles, "maintainer": spec.package.meta.maintainer.rsplit("<", 1)[-1].rstrip(">"),
            "comment": summary, "www": spec.package.meta.homepage, "licenses": " ".join(options.licenses),
            "license_comb": LICENSE_COMB[options.licenselogic] if len(options.licenses) > 1 else "",
            "build_depends": " ".join(options.build_depends),
            "uses": "gmake" if spec.target.make == "gmake" else "",
            "architectures": " ".join(names.arch(a) for a in spec.target.architectures),
            "top": spec.upstreams[0].top,
            "others": [_Other(upstream.top, upstream.folder) for upstream in spec.upstreams[1:]],
            "arch_patches": sorted((names.arch(arch), patches) for arch, patches in arch_patches.items()),
        }, text=True)

    def write(self, spec: SourceSpec, out_dir: Path, workdir: Path) -> SourceResult:
        port = out_dir / origin_of(spec)
        files_dir = port / "files"
        files_dir.mkdir(parents=True)
        written: list[Path] = []

        def put(path: Path, content: bytes | str, mode: int = 0o644) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            path.chmod(mode)
            written.append(path)

        for patch in spec.common_patches():
            put(files_dir / f"patch-{patch.slug}", patch.diff)
        arch_patches: dict[str, list[str]] = {}
        for arch, patches in spec.architecture_patches().items():
            for patch in patches:
                put(files_dir / f"extra-patch-{patch.slug}", patch.diff)
                arch_patches.setdefault(arch, []).append(f"extra-patch-{patch.slug}")
        for item in packaging_files(spec):
            put(files_dir / PACKAGING / item.path, item.content, item.mode)
        put(files_dir / "pkg-message.in", render("freebsd/pkg-message.j2", {"lines": message(spec)}, text=True))
        put(port / "Makefile", self.makefile(spec, arch_patches))
        put(port / "distinfo", distinfo(spec))
        body = spec.package.description.split("\n", 1)[1].strip() if "\n" in spec.package.description else ""
        put(port / "pkg-descr", (body or spec.package.description).rstrip("\n") + "\n")
        put(port / "pkg-plist", plist(spec))
        for name, text in spec.package.scripts:
            if name in SCRIPTS:
                put(port / SCRIPTS[name], text)
        return SourceResult(self.kind, tuple(sorted(written)), port)


__all__ = ["FreeBSDPort", "distinfo", "message", "origin_of", "plist"]
