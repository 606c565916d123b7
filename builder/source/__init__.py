"""Source packages: the recipe as a Debian source package, an SRPM and a
FreeBSD port, so that the distributions' own build farms rebuild it. One
module per kind behind one interface (base.py), registered once below by the
binary format its build makes; run.py is the source run in the build
sandbox, spec.py what it gives every packager, shell.py the packaging folder
they all carry. Adding a kind is adding a module and one line in
SOURCE_PACKAGERS."""

from __future__ import annotations

from .base import InstallItem, SourcePackager, SourcePatch, SourceResult, SourceSpec, Upstream
from .debian import DebianSource
from .freebsd import FreeBSDPort
from .rpm import RpmSource

SOURCE_PACKAGERS: dict[str, SourcePackager] = {
    packager.format: packager for packager in (DebianSource(), RpmSource(), FreeBSDPort())
}

__all__ = ["InstallItem", "SOURCE_PACKAGERS", "SourcePackager", "SourcePatch", "SourceResult", "SourceSpec",
           "Upstream"]
