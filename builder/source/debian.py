"""The Debian source package (format 3.0 (quilt)): the pristine tarballs
as <name>_<upstream>.orig.tar.gz and .orig-<component>.tar.gz (bytes
unchanged), debian.tar.xz and the .dsc. debian/ holds control (Build-Depends:
the recipe's beyond build-essential, and nss_wrapper for the binary target),
rules, changelog, DEP-5 copyright, source/format, the recipe's changes as
quilt patches with DEP-3 headers (those of some architectures only below
qmail-pkg/arch-patches/, applied by the build there), the maintainer scripts
and debconf files `build` renders, and qmail-pkg/ (build.sh, install-tree.sh,
the service files). It builds rootless but for the binary target, which runs
under fakeroot and names no account that must exist."""

from __future__ import annotations

import hashlib
import posixpath
import re
from pathlib import Path
from typing import ClassVar

from ..errors import BuildError
from ..package.deb import (
    DEBCONF_PREDEPENDS,
    RELATIONS,
    DebianOptions,
    DebPackager,
    changelog_text,
    distribution,
    lintian_overrides,
)
from ..package.debupload import Listed, changes_text
from ..package.nfpm import merge_relations
from .base import PACKAGING, InstallItem, SourcePatch, SourceResult, SourceSpec
from .shell import packaging_files, render
from .tarball import write_tar_xz

# Licences Debian ships in /usr/share/common-licenses: a pointer is enough.
COMMON_LICENSES = ("Apache-2.0", "Artistic", "BSD", "CC0-1.0", "GFDL-1.2", "GFDL-1.3", "GPL-1", "GPL-2", "GPL-3",
                   "LGPL-2", "LGPL-2.1", "LGPL-3", "MPL-1.1", "MPL-2.0")
ARCHIVE_SUFFIXES = {".tar.gz": "gz", ".tgz": "gz", ".tar.bz2": "bz2", ".tar.xz": "xz", ".tar.lzma": "lzma"}
NSS_WRAPPER = "libnss-wrapper"
SOURCE_OVERRIDES = """\
# The debconf templates are the ones `qmail-pkg build` renders into its
# package, byte for byte; translations are not kept here.
{name} source: not-using-po-debconf
{name} source: untranslatable-debconf-templates
# The changelog's date is the sources' SOURCE_DATE_EPOCH, so that this
# package's build gives the bytes `qmail-pkg build` gives.
{name} source: timewarp-standards-version
"""
SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
DATA = ("templates",)
# dpkg-source unpacks a component into a folder of its name: letters, digits, '-'.
COMPONENT = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def compression(filename: str) -> str:
    for suffix, kind in ARCHIVE_SUFFIXES.items():
        if filename.endswith(suffix):
            return kind
    raise BuildError(f"{filename}: a Debian source package takes .tar.gz, .tar.bz2 or .tar.xz upstream tarballs")


def dep3(patch: SourcePatch, spec: SourceSpec) -> str:
    """The patch with a DEP-3 header: what it does and where the recipe makes it."""
    lines = [f"Description: {patch.subject}"]
    body = [*patch.description, "", f"Made by the recipe's {patch.origin}, by qmail-pkg source."]
    lines += [f" {line}" if line else " ." for line in body]
    lines += [f"Author: {spec.recipe.package.maintainer}", "Forwarded: not-needed", "---", ""]
    return "\n".join(lines) + patch.diff


def control(spec: SourceSpec, options: DebianOptions) -> str:
    package = spec.package
    relations = {key: list(getattr(options, key)) for key in RELATIONS}
    relations["depends"] = merge_relations(("${shlibs:Depends}",), options.depends)
    fields = []
    if any(name == "templates" for name, _ in package.scripts):
        fields.append(("Pre-Depends", DEBCONF_PREDEPENDS))
    fields += [(key.capitalize(), ", ".join(values)) for key, values in relations.items() if values]
    summary, _, body = package.description.partition("\n")
    return render("debian/control.j2", {
        "name": spec.name, "section": package.meta.section, "priority": package.meta.priority,
        "maintainer": package.meta.maintainer, "homepage": package.meta.homepage,
        "build_depends": ", ".join([*options.build_depends, NSS_WRAPPER]),
        "architectures": " ".join(spec.target.architectures), "relations": fields,
        "summary": summary, "body": [line if line.strip() else "." for line in body.strip("\n").splitlines()],
    }, text=True)


def copyright_file(spec: SourceSpec, options: DebianOptions) -> str:
    """DEP-5: each paragraph of the recipe's debian.copyright, then each
    licence once: its notice as the recipe quotes it, or Debian's copy."""
    if not options.copyright:
        raise BuildError(f"{spec.recipe.path}: debian.copyright: a Debian source package needs the sources' "
                         "copyright and licences (DEP-5 paragraphs)")
    licenses: dict[str, tuple[str, ...]] = {}
    for paragraph in options.copyright:
        if paragraph.notice and paragraph.license not in licenses:
            licenses[paragraph.license] = paragraph.notice
    for paragraph in options.copyright:
        if paragraph.license not in licenses:
            if paragraph.license not in COMMON_LICENSES:
                raise BuildError(f"{spec.recipe.path}: debian.copyright: licence {paragraph.license!r} needs a "
                                 "notice (it is not in /usr/share/common-licenses)")
            licenses[paragraph.license] = (f"On Debian systems, the complete text of this licence is in "
                                           f"/usr/share/common-licenses/{paragraph.license}.",)
    return render("debian/copyright.j2", {
        "name": spec.name, "sources": " ".join(upstream.urls[0] for upstream in spec.upstreams),
        "paragraphs": options.copyright,
        "licenses": [(name, [line if line.strip() else "." for line in lines]) for name, lines in licenses.items()],
    }, text=True)


class DebianSource:
    format: ClassVar[str] = "deb"
    kind: ClassVar[str] = "debian"

    def version(self, spec: SourceSpec) -> str:
        return DebPackager().version(spec.package)

    def orig_name(self, spec: SourceSpec, upstream) -> str:
        component = "" if not upstream.folder else f"-{upstream.folder}"
        return f"{spec.name}_{spec.version}.orig{component}.tar.{compression(upstream.filename)}"

    def _own_items(self, spec: SourceSpec) -> tuple[tuple[InstallItem, ...], tuple[tuple[str, bytes], ...]]:
        """The files the .deb packager adds (changelog, lintian overrides)
        and their folders, as `build`'s package has them."""
        name, items = spec.name, list(spec.install)
        extra: list[tuple[str, bytes]] = []
        overrides = lintian_overrides(spec.package)
        paths = [f"/usr/share/doc/{name}/changelog.Debian.gz"]
        if overrides:
            path = f"/usr/share/lintian/overrides/{name}"
            extra.append((path, overrides))
            paths.append(path)
            items.append(InstallItem(path, "file", 0o644, "root", "root", 0, 0, source=path.lstrip("/"),
                                     packaged=True))
        known = {item.path for item in items}
        for path in paths:
            parent = posixpath.dirname(path)
            while parent != "/" and parent not in known:
                known.add(parent)
                items.append(InstallItem(parent, "dir", 0o755, "root", "root", 0, 0))
                parent = posixpath.dirname(parent)
        return tuple(sorted(items, key=lambda item: item.path)), tuple(extra)

    def debian_files(self, spec: SourceSpec) -> list[tuple[str, bytes, int]]:
        options: DebianOptions = spec.package.options or DebianOptions()
        version = self.version(spec)
        items, extra = self._own_items(spec)
        scripts = dict(spec.package.scripts)
        accounts = spec.target.accounts
        gids = {group.name: group.gid for group in accounts.groups}
        files = [
            ("debian/changelog", changelog_text(spec.package, version).encode(), 0o644),
            ("debian/control", control(spec, options).encode(), 0o644),
            ("debian/copyright", copyright_file(spec, options).encode(), 0o644),
            ("debian/rules", (Path(__file__).parent / "templates" / "debian" / "rules").read_bytes(), 0o755),
            ("debian/source/format", b"3.0 (quilt)\n", 0o644),
            ("debian/source/lintian-overrides", SOURCE_OVERRIDES.format(name=spec.name).encode(), 0o644),
        ]
        common = spec.common_patches()
        if common:
            files.append(("debian/patches/series", "".join(f"{p.file_name}\n" for p in common).encode(), 0o644))
            files += [(f"debian/patches/{p.file_name}", dep3(p, spec).encode(), 0o644) for p in common]
        arch_patches = spec.architecture_patches()
        for architecture, patches in arch_patches.items():
            files += [(f"debian/{PACKAGING}/arch-patches/{architecture}/{p.file_name}", dep3(p, spec).encode(), 0o644)
                      for p in patches]
        for name in (*SCRIPTS, *DATA):
            if name in scripts:
                files.append((f"debian/{spec.name}.{name}", scripts[name].encode(), 0o644))
        context = {"package": spec.name, "changelog": f"/usr/share/doc/{spec.name}/changelog.Debian.gz",
                   "scripts": [name for name in SCRIPTS if name in scripts],
                   "data": [name for name in DATA if name in scripts],
                   "conffiles": sorted(item.path for item in items if item.conffile),
                   "programs": [item.path for item in items if item.strip],
                   "arch_patches": sorted(arch_patches.items())}
        own = [
            ("debian-build.sh", render("debian/debian-build.sh.j2", context), 0o755),
            ("binary.sh", render("debian/binary.sh.j2", context), 0o755),
            ("clean.sh", render("debian/clean.sh.j2", context), 0o755),
            ("passwd", render("debian/accounts.passwd.j2", {
                "users": [(user, gids[user.group]) for user in accounts.users]}, text=True), 0o644),
            ("group", render("debian/accounts.group.j2", {"groups": accounts.groups}, text=True), 0o644),
        ]
        files += [(f"debian/{PACKAGING}/{path}", text.encode(), mode) for path, text, mode in own]
        files += [(f"debian/{PACKAGING}/{item.path}", item.content, item.mode)
                  for item in packaging_files(spec, items, extra)]
        return files

    def write(self, spec: SourceSpec, out_dir: Path, workdir: Path) -> SourceResult:
        for upstream in spec.upstreams[1:]:
            if not COMPONENT.match(upstream.folder):
                raise BuildError(f"source {upstream.name!r}: a Debian component name takes letters, digits and '-'")
        version = self.version(spec)
        written = []
        origs = []
        for upstream in spec.upstreams:
            path = out_dir / self.orig_name(spec, upstream)
            path.write_bytes(upstream.path.read_bytes())  # the pristine tarball, byte for byte
            written.append(path)
            origs.append((path, upstream))
        debian_tar = out_dir / f"{spec.name}_{version}.debian.tar.xz"
        write_tar_xz(debian_tar, self.debian_files(spec), spec.plan.source_date_epoch)
        written.append(debian_tar)
        dsc = out_dir / f"{spec.name}_{version}.dsc"
        dsc.write_text(dsc_text(spec, version, origs, debian_tar), encoding="utf-8")
        written.append(dsc)
        # a source upload's .changes, for dput to a farm (sign it with debsign)
        meta = spec.package.meta
        changes = out_dir / f"{spec.name}_{version}_source.changes"
        listed = [(Listed.of(path), meta.section, meta.priority) for path in (dsc, *(path for path, _ in origs),
                                                                             debian_tar)]
        changes.write_text(changes_text(spec.package, spec.name, (spec.name,), version, "source",
                                        changelog_text(spec.package, version), listed, distribution(spec.package)),
                           encoding="utf-8")
        written.append(changes)
        return SourceResult(self.kind, tuple(written), dsc)


def dsc_text(spec: SourceSpec, version: str, origs, debian_tar: Path) -> str:
    """The .dsc as dpkg-source -b writes it (unsigned)."""
    options: DebianOptions = spec.package.options or DebianOptions()
    rows = []
    for path, upstream in origs:
        rows.append((path.name, upstream.size, upstream.md5, upstream.sha1, upstream.sha256))
    data = debian_tar.read_bytes()
    rows.append((debian_tar.name, len(data), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                 hashlib.sha256(data).hexdigest()))
    architectures = " ".join(spec.target.architectures)
    lines = [
        "Format: 3.0 (quilt)",
        f"Source: {spec.name}",
        f"Binary: {spec.name}",
        f"Architecture: {architectures}",
        f"Version: {version}",
        f"Maintainer: {spec.package.meta.maintainer}",
        f"Homepage: {spec.package.meta.homepage}",
        "Standards-Version: 4.6.2",
        f"Build-Depends: {', '.join([*options.build_depends, NSS_WRAPPER])}",
        "Package-List:",
        f" {spec.name} deb {spec.package.meta.section} {spec.package.meta.priority} "
        f"arch={','.join(spec.target.architectures)}",
        "Checksums-Sha1:",
        *(f" {sha1} {size} {name}" for name, size, _, sha1, _ in rows),
        "Checksums-Sha256:",
        *(f" {sha256} {size} {name}" for name, size, _, _, sha256 in rows),
        "Files:",
        *(f" {md5} {size} {name}" for name, size, md5, _, _ in rows),
    ]
    return "\n".join(lines) + "\n"


__all__ = ["DebianSource", "compression", "control", "copyright_file", "dep3", "dsc_text"]
