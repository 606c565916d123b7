"""Image definitions for build and verification sandboxes: which image a
target's sandbox of a role starts from, and what goes into it
(containers/<userland>/<role>.packages, read as data). Images we make carry
a label with the hash of their definition, so a changed package list
rebuilds them; making one is the platform's business, decided above this
module (builder/environment.py)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SandboxError
from ..recipe.model import Target
from ..shipped import shipped

DEFINITION_LABEL = "qmail-pkg.definition"
PACKAGES_LABEL = "qmail-pkg.packages"  # name=version of everything in an image we made
# build; verify (svscan as the container's main process); and the systemd
# hosts verify runs on: without daemontools, and with Debian's daemontools-run.
# verify-systemd-apt: systemd alone, with daemontools in a local apt
# repository inside the image, so that `apt install ./package.deb` can pull
# the recommended daemontools-run as it would from a mirror.
ROLES = ("build", "verify", "verify-systemd", "verify-systemd-daemontools", "verify-systemd-apt")
# A farm's clean build environment (Debian's buildd: build-essential, fakeroot
# and the Build-Depends a source package declares), where `qmail-pkg source
# --rebuild` builds a source package as a user that is not root.
BUILDD = "buildd"


def containers_dir() -> Path:
    """containers/ of the checkout (or QMAIL_PKG_CONTAINERS)."""
    if os.environ.get("QMAIL_PKG_CONTAINERS"):
        return Path(os.environ["QMAIL_PKG_CONTAINERS"])
    return shipped("containers")


@dataclass(frozen=True)
class ImageSpec:
    reference: str  # repository:tag
    family: str  # of the image's userland: its platform makes it
    suite: str  # Debian suite to bootstrap; for other families, the release
    role: str  # one of ROLES
    packages: tuple[str, ...]
    architecture: str = "amd64"  # Debian's spelling
    # downloaded into a local apt repository in the image, not installed
    # (containers/<userland>/<role>.offered): what apt may pull in offline
    offered: tuple[str, ...] = ()
    # other architectures whose packages the image holds too (multiarch:
    # libc6-dev:arm64 for a cross build to arm64)
    foreign: tuple[str, ...] = ()
    # a toolchain that is not a package of the userland (builder/toolchains.py),
    # by name and the sha256 of the file it comes from
    toolchain: str = ""
    toolchain_sha256: str = ""
    # what its cache is warmed for at image time (targets, kinds of link):
    # another warm-up is another image
    toolchain_warm: tuple[str, ...] = ()

    @property
    def definition_hash(self) -> str:
        # "2": images made since they carry their package versions in a label
        # (amd64 stays out of the text so that the existing images stay current)
        arch = [] if self.architecture == "amd64" else [self.architecture]
        offered = ["offered:", *self.offered] if self.offered else []
        foreign = ["foreign:", *self.foreign] if self.foreign else []
        toolchain = ["toolchain:", self.toolchain, self.toolchain_sha256] if self.toolchain else []
        toolchain += ["warm:", *self.toolchain_warm] if self.toolchain_warm else []
        text = "\n".join(["2", self.family, self.suite, self.role, *self.packages, *arch, *offered, *foreign,
                          *toolchain])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_list(listing: Path) -> list[str]:
    words = []
    for line in listing.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line)
    return words


def _read_packages(userland: str, role: str, formats: tuple[str, ...], extra: tuple[str, ...] = (),
                   architecture: str = "") -> tuple[str, ...]:
    """containers/<userland>/<role>.packages, plus <role>-<format>.packages for
    each format the target makes (e.g. Debian's rpm tools for an .rpm made on
    Debian) and <role>-<extra>.packages for each extra name; `{arch}` in a
    line is the target's architecture."""
    folder = containers_dir() / userland
    listing = folder / f"{role}.packages"
    if not listing.exists():
        raise SandboxError(f"no image definition {listing}")
    words = _read_list(listing)
    for name in (*formats, *extra):
        more = folder / f"{role}-{name}.packages"
        if more.exists():
            words += [word for word in _read_list(more) if word not in words]
        elif name in extra:
            raise SandboxError(f"no image definition {more}")
    return tuple(word.replace("{arch}", architecture) for word in words)


def image_spec(target: Target, role: str) -> ImageSpec:
    if role not in ROLES and role != BUILDD:
        raise ValueError(role)
    reference = target.image if role == "build" else f"{target.image}-{role}"
    # The image the recipe names is the amd64 one; another architecture's
    # carries its name (qmail-pkg/debian-12-arm64): one engine holds both.
    if target.architecture != "amd64":
        reference += f"-{target.architecture}"
    if ":" not in reference.rsplit("/", 1)[-1]:
        reference += ":latest"
    suite = target.userland_suite
    offered = containers_dir() / target.userland / f"{role}.offered"
    return ImageSpec(reference, target.userland, suite, role, _read_packages(target.userland, role, target.formats),
                     target.architecture, tuple(_read_list(offered)) if offered.exists() else ())


def cross_image_spec(target: Target, toolchain: str, host: str, *, shared_image: str = "",
                     toolchain_sha256: str = "", toolchain_warm: tuple[str, ...] = (), suite: str = "") -> ImageSpec:
    """The build image of a cross build: the cross userland with
    build-cross-<toolchain>.packages. A toolchain that serves every target
    (zig) has one image of its own (shared_image); another (the
    distribution's cross gcc) one per target release and architecture, with
    that architecture's libraries beside the host's."""
    userland = target.userland
    foreign: tuple[str, ...]
    if shared_image:
        reference, foreign = shared_image, ()
    else:
        reference, foreign = f"{target.image}-cross-{target.architecture}", (target.architecture,)
    if ":" not in reference.rsplit("/", 1)[-1]:
        reference += ":latest"
    # a shared image serves every target: it cannot depend on one's formats
    formats = () if shared_image else target.formats
    packages = _read_packages(userland, "build", formats, (f"cross-{toolchain}",), target.architecture)
    return ImageSpec(reference, userland, suite or target.userland_suite, "build", packages, host,
                     foreign=foreign, toolchain=toolchain if toolchain_sha256 else "",
                     toolchain_sha256=toolchain_sha256, toolchain_warm=toolchain_warm if toolchain_sha256 else ())


__all__ = ["BUILDD", "DEFINITION_LABEL", "ImageSpec", "PACKAGES_LABEL", "ROLES", "containers_dir", "cross_image_spec",
           "image_spec"]
