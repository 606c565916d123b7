"""Base images for build and verification sandboxes.

An image named by a target is used as it is when present. Otherwise it is
made from the definitions in containers/<family>/: for Debian, by
bootstrapping the listed packages with mmdebstrap from the host's configured
Debian mirror and `docker import`-ing the result (no registry needed).
Images we make carry a label with the hash of their definition, so a changed
package list rebuilds them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SandboxError
from ..recipe.model import Target
from .docker import client, image_exists

MIRROR_ENV = "QMAIL_PKG_DEBIAN_MIRROR"
APT_DIR = Path("/etc/apt")
DEFINITION_LABEL = "qmail-pkg.definition"
ROLES = ("build", "verify")


def containers_dir() -> Path:
    """containers/ of the checkout (or QMAIL_PKG_CONTAINERS)."""
    if os.environ.get("QMAIL_PKG_CONTAINERS"):
        return Path(os.environ["QMAIL_PKG_CONTAINERS"])
    return Path(__file__).resolve().parents[2] / "containers"


@dataclass(frozen=True)
class ImageSpec:
    reference: str  # repository:tag
    family: str
    suite: str
    role: str  # build | verify
    packages: tuple[str, ...]

    @property
    def definition_hash(self) -> str:
        text = "\n".join([self.family, self.suite, self.role, *self.packages])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_packages(family: str, role: str) -> tuple[str, ...]:
    listing = containers_dir() / family / f"{role}.packages"
    if not listing.exists():
        raise SandboxError(f"no image definition {listing}")
    words = []
    for line in listing.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line)
    return tuple(words)


def image_spec(target: Target, role: str) -> ImageSpec:
    if role not in ROLES:
        raise ValueError(role)
    reference = target.image if role == "build" else f"{target.image}-verify"
    if ":" not in reference.rsplit("/", 1)[-1]:
        reference += ":latest"
    return ImageSpec(reference, target.family, target.suite, role, _read_packages(target.family, role))


def host_debian_mirror() -> str:
    """The first Debian archive URI in the host's apt configuration (or $QMAIL_PKG_DEBIAN_MIRROR)."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    candidates: list[str] = []
    apt = APT_DIR
    for sources in sorted(apt.glob("sources.list.d/*.sources")):
        for match in re.finditer(r"^URIs:\s*(.+)$", sources.read_text(), re.M):
            candidates.extend(match.group(1).split())
    for listing in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if listing.exists():
            for line in listing.read_text().splitlines():
                fields = re.sub(r"\[[^]]*\]", "", line).split()
                if len(fields) >= 3 and fields[0] == "deb":
                    candidates.append(fields[1])
    for uri in candidates:
        if "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri
    raise SandboxError(
        f"no Debian mirror found in /etc/apt; set {MIRROR_ENV} to a Debian archive URL"
    )


def _labels(engine, reference: str) -> dict[str, str]:
    return engine.images.get(reference).labels or {}


def ensure_image(spec: ImageSpec, log: Callable[[str], None] = lambda line: None) -> str:
    """Make sure spec.reference exists and is current; return its image id."""
    engine = client()
    if image_exists(engine, spec.reference):
        built_here = _labels(engine, spec.reference).get(DEFINITION_LABEL)
        # An image we did not make is the user's choice: use it as it is.
        if built_here is None or built_here == spec.definition_hash:
            return engine.images.get(spec.reference).id
        log(f"{spec.reference}: definition changed, rebuilding")
    if spec.family != "debian":
        raise SandboxError(
            f"image {spec.reference} is missing and bootstrapping {spec.family} images is not supported "
            f"here; build it from containers/{spec.family}/ on a host that can"
        )
    bootstrap_debian(spec, log)
    return engine.images.get(spec.reference).id


def bootstrap_debian(spec: ImageSpec, log: Callable[[str], None]) -> None:
    if not shutil.which("mmdebstrap"):
        raise SandboxError("image bootstrap needs mmdebstrap (apt-get install mmdebstrap)")
    if not spec.suite:
        raise SandboxError(f"{spec.reference}: the target names no Debian suite to bootstrap")
    mirror = host_debian_mirror()
    repository, _, tag = spec.reference.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-image-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--quiet",
            f"--include={','.join(spec.packages)}",
            # Keep images small and free of apt lists that would go stale.
            "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
            spec.suite,
            str(rootfs),
            mirror,
        ]
        log(f"bootstrapping {spec.reference} ({spec.suite}, {len(spec.packages)} packages) from {mirror}")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise SandboxError(f"mmdebstrap {spec.suite} failed: {' | '.join(tail)}")
        engine = client()
        changes = [
            f"LABEL {DEFINITION_LABEL}={spec.definition_hash}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/sh"]',
        ]
        engine.api.import_image_from_file(str(rootfs), repository=repository, tag=tag or "latest", changes=changes)
        log(f"imported {spec.reference}")
