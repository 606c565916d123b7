"""One Open Build Service package from a Debian source package and an RPM
.spec: OBS builds the .dsc for its Debian repositories and the .spec for its
RPM ones, from one folder of files.

OBS runs debtransform on a package that holds files named debian.*, and
debtransform makes the orig tarball of one upstream tarball only
(DEBTRANSFORM-TAR): a source of two tarballs would lose its component. So the
folder holds the Debian source package whole, as dpkg-source -x reads it
(<name>.dsc naming the .orig.tar.gz, the .orig-<component>.tar.gz and the
.debian.tar.xz), and no debian.* file; the .dsc says OBS-DCH-RELEASE: 1, the
rebuild counter for sources OBS does not transform (it appends +<counter> to
the changelog's version, as DEBTRANSFORM-RELEASE does to a transformed one).
Beside them: the .spec and every file it names (rpm/ of `qmail-pkg source`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import BuildError
from .base import SourceResult

RELEASE_COUNTER = "OBS-DCH-RELEASE: 1"


def obs_package(results: list[SourceResult], folder: Path, name: str) -> Path:
    """Write the OBS package of the first Debian source and the first SRPM into folder."""
    debian = next((result for result in results if result.kind == "debian"), None)
    srpm = next((result for result in results if result.kind == "srpm"), None)
    if debian is None or srpm is None:
        raise BuildError("--obs lays out a Debian source package and an RPM .spec together: name a Debian "
                         "target and an RPM target (e.g. --target debian-12 --target el-9)")
    folder.mkdir(parents=True, exist_ok=True)
    dsc_text = debian.main.read_text(encoding="utf-8")
    if RELEASE_COUNTER not in dsc_text:
        dsc_text = dsc_text.rstrip("\n") + f"\n{RELEASE_COUNTER}\n"
    (folder / f"{name}.dsc").write_text(dsc_text, encoding="utf-8")
    for path in debian.files:
        if path.suffix not in (".dsc", ".changes"):
            shutil.copyfile(path, folder / path.name)
    for path in srpm.files:
        if path.parent.name == "rpm":
            shutil.copyfile(path, folder / path.name)
    clash = sorted(path.name for path in folder.iterdir() if path.name.startswith("debian."))
    if clash:
        raise BuildError(f"{folder}/{clash[0]}: OBS would run debtransform on it, which takes one upstream tarball")
    return folder


__all__ = ["RELEASE_COUNTER", "obs_package"]
