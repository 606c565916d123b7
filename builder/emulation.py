"""Other architectures on this host: qemu-user through binfmt_misc.

Containers of another architecture run their programs through the kernel's
binfmt_misc handing them to qemu-user (Debian's qemu-user-static). What is
missing is said exactly, before anything starts: the kernel's binfmt_misc,
the qemu handler, and for verification the handler's C flag, without which
setuid programs (qmail-queue is 4711) lose their privileges under emulation.
"""

from __future__ import annotations

import platform
from pathlib import Path

from .errors import SandboxError

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Debian's architecture names -> qemu's
_QEMU = {"arm64": "aarch64", "armhf": "arm", "i386": "i386", "ppc64el": "ppc64le", "riscv64": "riscv64",
         "s390x": "s390x", "amd64": "x86_64"}


def host_architecture() -> str:
    """This host's architecture in Debian's spelling."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "armv7l": "armhf", "ppc64le": "ppc64el"}.get(
        machine, machine)


def emulated(architecture: str) -> bool:
    return architecture != host_architecture()


def require_emulation(architecture: str, *, setuid: bool = False, binfmt: Path = BINFMT) -> None:
    """SandboxError naming what to do when `architecture` cannot run here."""
    qemu = _QEMU.get(architecture, architecture)
    if not (binfmt / "status").exists():
        raise SandboxError(f"running {architecture} programs here needs binfmt_misc: mount -t binfmt_misc "
                           f"binfmt_misc {binfmt} (the kernel must offer it), or run qmail-pkg setup-host as root")
    entry = binfmt / f"qemu-{qemu}"
    text = entry.read_text() if entry.exists() else ""
    if "enabled" not in text.splitlines()[:1]:
        raise SandboxError(f"running {architecture} programs here needs qemu-user: apt-get install qemu-user-static "
                           f"binfmt-support && update-binfmts --enable qemu-{qemu} (qmail-pkg setup-host does both)")
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if setuid and "C" not in flags:
        raise SandboxError(f"qemu-{qemu} is registered without the C flag (flags: {flags or 'none'}): setuid "
                           "programs such as qmail-queue would run without their privileges under emulation; "
                           "qmail-pkg setup-host registers it with credentials")
