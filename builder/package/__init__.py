"""Packagers: one module per package format behind one interface (as nfpm
has one per packager), registered in one place below.

A packager turns a PackageSpec (staged tree + metadata + maintainer scripts)
into one artifact file. It declares its format, the family whose systems
install it, its maintainer-script set and its own recipe options; the recipe
schema's enums and option sections, the loader's format -> family check and
the script renderer's table all come from this registry. Adding a format is
adding a module and one line in PACKAGERS.
"""

from __future__ import annotations

from .base import Artifact, BuildContext, Packager, PackageSpec
from .deb import DebPackager
from .pkg import PkgPackager
from .rpm import RpmPackager

PACKAGERS: dict[str, Packager] = {
    packager.format: packager for packager in (DebPackager(), RpmPackager(), PkgPackager())
}


def packager_for(fmt: str) -> Packager:
    try:
        return PACKAGERS[fmt]
    except KeyError:
        raise ValueError(f"no packager for format {fmt!r} (known: {', '.join(sorted(PACKAGERS))})") from None


__all__ = ["PACKAGERS", "Artifact", "BuildContext", "PackageSpec", "Packager", "packager_for"]
