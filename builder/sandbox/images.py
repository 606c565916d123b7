"""Base images for build and verification sandboxes.

An image named by a target is used as it is when present. Otherwise the
platform of the image's userland makes it from the definitions in
containers/<userland>/ (Debian: mmdebstrap from the host's own mirror and
`docker import`, no registry needed). Images we make carry a label with the
hash of their definition, so a changed package list rebuilds them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SandboxError
from ..platforms import platform_for
from ..recipe.model import Target
from .docker import client, image_exists

DEFINITION_LABEL = "qmail-pkg.definition"
PACKAGES_LABEL = "qmail-pkg.packages"  # name=version of everything in an image we made
# build; verify (svscan as the container's main process); and the systemd
# hosts verify runs on: without daemontools, and with Debian's daemontools-run.
# verify-systemd-apt: systemd alone, with daemontools in a local apt
# repository inside the image, so that `apt install ./package.deb` can pull
# the recommended daemontools-run as it would from a mirror.
ROLES = ("build", "verify", "verify-systemd", "verify-systemd-daemontools", "verify-systemd-apt")


def containers_dir() -> Path:
    """containers/ of the checkout (or QMAIL_PKG_CONTAINERS)."""
    if os.environ.get("QMAIL_PKG_CONTAINERS"):
        return Path(os.environ["QMAIL_PKG_CONTAINERS"])
    return Path(__file__).resolve().parents[2] / "containers"


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

    @property
    def definition_hash(self) -> str:
        # "2": images made since they carry their package versions in a label
        # (amd64 stays out of the text so that the existing images stay current)
        arch = [] if self.architecture == "amd64" else [self.architecture]
        offered = ["offered:", *self.offered] if self.offered else []
        text = "\n".join(["2", self.family, self.suite, self.role, *self.packages, *arch, *offered])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_list(listing: Path) -> list[str]:
    words = []
    for line in listing.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line)
    return words


def _read_packages(userland: str, role: str, formats: tuple[str, ...]) -> tuple[str, ...]:
    """containers/<userland>/<role>.packages, plus <role>-<format>.packages for
    each format the target makes (e.g. Debian's rpm tools for a test target)."""
    folder = containers_dir() / userland
    listing = folder / f"{role}.packages"
    if not listing.exists():
        raise SandboxError(f"no image definition {listing}")
    words = _read_list(listing)
    for fmt in formats:
        extra = folder / f"{role}-{fmt}.packages"
        if extra.exists():
            words += [word for word in _read_list(extra) if word not in words]
    return tuple(words)


def image_spec(target: Target, role: str) -> ImageSpec:
    if role not in ROLES:
        raise ValueError(role)
    reference = target.image if role == "build" else f"{target.image}-{role}"
    # The image the recipe names is the amd64 one; another architecture's
    # carries its name (qmail-pkg/debian-12-arm64): one engine holds both.
    if target.architecture != "amd64":
        reference += f"-{target.architecture}"
    if ":" not in reference.rsplit("/", 1)[-1]:
        reference += ":latest"
    suite = target.suite or target.release
    offered = containers_dir() / target.userland / f"{role}.offered"
    return ImageSpec(reference, target.userland, suite, role, _read_packages(target.userland, role, target.formats),
                     target.architecture, tuple(_read_list(offered)) if offered.exists() else ())


def _labels(engine, reference: str) -> dict[str, str]:
    return engine.images.get(reference).labels or {}


def image_labels(reference: str, where=None) -> dict[str, str]:
    return _labels(client(where), reference)


def _current(engine, spec: ImageSpec) -> bool:
    if not image_exists(engine, spec.reference):
        return False
    made_here = _labels(engine, spec.reference).get(DEFINITION_LABEL)
    # An image we did not make is the user's choice: use it as it is.
    return made_here is None or made_here == spec.definition_hash


def ensure_image(spec: ImageSpec, log: Callable[[str], None] = lambda line: None, where=None) -> str:
    """Make sure spec.reference exists and is current on the engine `where`
    (None: the local one); return its image id. A remote engine gets the
    local engine's image when that one is current (the same id: builds on
    both give the same bytes), else one bootstrapped here and imported."""
    engine = client(where)
    if _current(engine, spec):
        return engine.images.get(spec.reference).id
    if where is not None:
        local = client()
        if _current(local, spec):
            log(f"{spec.reference}: sending the local image to {where.url}")
            # streamed: an image is hundreds of megabytes
            engine.images.load(local.images.get(spec.reference).save(named=True))
            return engine.images.get(spec.reference).id
    elif image_exists(engine, spec.reference):
        log(f"{spec.reference}: definition changed, rebuilding")
    platform_for(spec.family).bootstrap(spec, log, where)
    return engine.images.get(spec.reference).id
