"""The repository's front page: what a person sees at the repository URL.

At the end of every publish, `write_site` copies what came with each
admitted artifact (its build record, provenance statement and evidence)
into records/<format>/, then renders, from everything the tree holds (the
state file names every published package; the copies describe them):

- index.html: per format and area the package versions with size, sha256,
  build date and links; how to install (the README's snippets with the
  base URL, the signing keys' fingerprints); the evidence per package and
  the power-cut charts; what was not verified;
- packages/<format>/<file>.html: one page per package version with every
  step of every check and what it saw, and plainly what was not verified.

Static HTML with an inline stylesheet, no script, nothing loaded from
elsewhere (the Content Security Policy says so too): it works from file:
and behind any static server. Everything is written through the tree's
Folder, each page in one rename, index.html last.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .. import __version__
from ..package import PACKAGERS
from ..repo.base import Admitted, PublishReport, Settings
from ..repo.gpg import fingerprint_of
from ..safefs import Folder
from .collect import file_sha256, keep_records, package_view, record_names, sweep
from .model import FormatView, KeyView, Site
from .render import index_page, package_page

MAX_KEY = 1 << 20


def _keys(tree: Folder, writers, fingerprint: str) -> tuple[KeyView, ...]:
    seen: dict[str, KeyView] = {}
    for writer in writers:
        for name in writer.keys:
            if name in seen or tree.lstat(name) is None:
                continue
            if writer.signature == "openpgp":
                # the fingerprint of the file linked beside it; the signer's when gpg cannot read it
                value = fingerprint_of(tree.read(name, MAX_KEY)) or fingerprint
                seen[name] = KeyView(name, "OpenPGP", " ".join(value[i:i + 4] for i in range(0, len(value), 4)),
                                     "gpg --show-keys prints it")
            else:
                seen[name] = KeyView(name, "RSA (pkg)", file_sha256(tree, name, MAX_KEY),
                                     "sha256 of the key file, as pkg's fingerprints/ hold it")
    return tuple(seen.values())


def build_site(tree: Folder, files: dict[str, str], settings: Settings, fingerprint: str) -> Site:
    """Everything the pages show, read from the tree."""
    formats = []
    for fmt, packager in PACKAGERS.items():
        writer = packager.repository
        listed = sorted(writer.listing(files), key=lambda item: (item.area, item.architecture, item.file))
        if not listed:
            continue
        names = record_names(tree, fmt)
        packages = tuple(package_view(tree, fmt, packager.family, item, names) for item in listed)
        areas = dict.fromkeys((item.area, item.package) for item in listed)
        formats.append(FormatView(fmt, writer.label, writer.area, packages,
                                  tuple(writer.instructions(area, package, settings) for area, package in areas)))
    names = sorted({package.listed.package for view in formats for package in view.packages})
    title = f"{', '.join(names) or 'qmail-pkg'} packages"
    return Site(title, settings.base_url, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                f"qmail-pkg {__version__}", tuple(formats),
                _keys(tree, [PACKAGERS[view.format].repository for view in formats], fingerprint))


def write_site(tree: Folder, admitted: Sequence[Admitted], files: dict[str, str], settings: Settings,
               fingerprint: str, report: PublishReport) -> None:
    """Copies of what came with the admitted artifacts, then the pages."""
    keep_records(tree, admitted)
    site = build_site(tree, files, settings, fingerprint)
    for fmt in PACKAGERS:
        view = next((view for view in site.formats if view.format == fmt), None)
        sweep(tree, fmt, {package.listed.file for package in view.packages} if view else set())
    for view in site.formats:
        for package in view.packages:
            *folders, name = package.page_path
            with tree.sub(*folders, create=True) as folder:
                folder.write(name, package_page(site, view, package))
            report.pages.append("/".join(package.page_path))
    tree.write("index.html", index_page(site))  # last: it links to everything above
    report.pages.append("index.html")


__all__ = ["build_site", "write_site"]
