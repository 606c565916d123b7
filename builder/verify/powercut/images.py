"""The machines power cuts are tried on, made once and cached.

A base machine per (family, suite, architecture): the family's userland with
its own kernel and initramfs (Debian's linux-image from the host's mirror),
written into a raw ext4 image with `mkfs.ext4 -d` (no loop device, no mount
on the host). A package machine per package file: a sparse copy of the base
image that booted once, writable, and installed the package with the
system's own package manager (dpkg), then powered off cleanly. Power-cut
boots share a package machine read-only; what they write goes to a data
disk of their own.

Nothing the machine wrote is read back on the host except its console
lines: the image is only ever a file handed to qemu.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...commands import require, run
from ...environ import cache_folder
from ...errors import VerifyError
from ...platforms import platform_for
from .machine import Boot, Disk, job_disk, run_boot

HERE = Path(__file__).resolve().parent
INIT = HERE / "init.sh"
GUEST = HERE / "guest.sh"
CACHE_ENV = "QMAIL_PKG_VM_CACHE"
IMAGE_VERSION = "1"  # bump when the way images are made changes
ROOT_SLACK = 1.4  # the root file system's size over its content: room for the package and logs


def cache_dir() -> Path:
    return cache_folder("vm", CACHE_ENV)


@dataclass(frozen=True)
class BaseMachine:
    key: str
    kernel: Path
    initrd: Path
    root: Path  # raw ext4 image
    suite: str


@dataclass(frozen=True)
class PackageMachine:
    base: BaseMachine
    root: Path  # qcow2 overlay on the base image, with the package installed
    package: Path
    version: str  # as the package manager reports it after the install


def _digest(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else part.encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:24]


def _regular_file(folder: Path, prefix: str) -> Path:
    """The one regular file in folder whose name starts with prefix (not a
    link: the tree came out of a bootstrap and is not trusted)."""
    found = [p for p in sorted(folder.iterdir()) if p.name.startswith(prefix) and stat.S_ISREG(p.lstat().st_mode)]
    if len(found) != 1:
        raise VerifyError(f"the machine's /boot holds {len(found)} files named {prefix}*; expected exactly one")
    return found[0]


def _tree_size(folder: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def base_machine(family: str, suite: str, architecture: str, log: Callable[[str], None]) -> BaseMachine:
    """The cached base machine, made when missing (a few minutes: mmdebstrap
    with a kernel, then mkfs)."""
    # what makes the machine: our init, and the family's module with whatever
    # lies beside it (the Debian initramfs hook): a change there is a new machine
    platform_module = Path(inspect.getfile(type(platform_for(family))))
    beside = sorted(p for p in platform_module.parent.glob(f"{family}-*") if p.is_file())
    key = _digest(IMAGE_VERSION, family, suite, architecture, INIT.read_bytes(), platform_module.read_bytes(),
                  *(p.read_bytes() for p in beside))
    folder = cache_dir() / f"base-{family}-{suite}-{architecture}-{key}"
    done = folder / "machine.json"
    if done.exists():
        return BaseMachine(key, folder / "vmlinuz", folder / "initrd.img", folder / "root.img", suite)
    require("mkfs.ext4", "e2fsprogs", VerifyError)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".base-{suite}-", dir=folder.parent))
    try:
        tree = scratch / "tree"
        platform_for(family).vm_userland(suite, architecture, INIT, tree, log)
        shutil.copyfile(_regular_file(tree / "boot", "vmlinuz-"), scratch / "vmlinuz", follow_symlinks=False)
        shutil.copyfile(_regular_file(tree / "boot", "initrd.img-"), scratch / "initrd.img", follow_symlinks=False)
        size_mib = int(_tree_size(tree) * ROOT_SLACK / (1 << 20)) + 256
        log(f"writing the root file system image ({size_mib} MiB, sparse)")
        run(["mkfs.ext4", "-q", "-F", "-L", "qmail-pkg-root", "-d", tree, scratch / "root.img", f"{size_mib}M"],
            what="writing the machine's root file system", error=VerifyError, timeout=600)
        shutil.rmtree(tree)
        (scratch / "machine.json").write_text(json.dumps({"family": family, "suite": suite,
                                                          "architecture": architecture, "key": key}) + "\n")
        if folder.exists():  # made meanwhile by another run: keep theirs
            shutil.rmtree(scratch)
        else:
            os.rename(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return BaseMachine(key, folder / "vmlinuz", folder / "initrd.img", folder / "root.img", suite)


def package_machine(base: BaseMachine, package: Path, install_command: str, settings: dict[str, str],
                    log: Callable[[str], None], keep: Path) -> PackageMachine:
    """The base machine with the package installed by its package manager,
    in a boot of its own (so the package's scripts run in the machine, not
    on this host). Cached by the package file's content."""
    content = hashlib.sha256(package.read_bytes()).hexdigest()
    key = _digest(base.key, content, GUEST.read_bytes(), install_command, json.dumps(settings, sort_keys=True))
    folder = cache_dir() / f"package-{key}"
    done = folder / "package.json"
    if done.exists():
        version = json.loads(done.read_text()).get("version", "")
        return PackageMachine(base, folder / "root.qcow2", package, version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".package-", dir=folder.parent))
    try:
        root = scratch / "root.qcow2"
        # an overlay: the base image stays as it is, the install writes here
        require("qemu-img", "qemu-utils", VerifyError)
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base.root, root],
            what="making the package machine's disk", error=VerifyError)
        job = job_disk(scratch / "job.tar", {**settings, "QP_MODE": "install", "QP_INSTALL": install_command},
                       extra={package.name: package})
        boot = Boot(kernel=base.kernel, initrd=base.initrd, root=Disk(root, writable=True, format="qcow2"),
                    job=Disk(job))
        log(f"installing {package.name} in the machine (its own boot)")
        console = keep / "install.console"
        lines = run_boot(boot, console, timeout=600)
        if not any(line == "QP INSTALLED" for line in lines):
            said = [line[3:] for line in lines if line.startswith("QP ")][-4:]
            raise VerifyError(f"installing {package.name} in the power-cut machine failed: "
                              f"{' | '.join(said) or 'no word from the machine'} (console: {console})")
        version = next((line.split(" ", 2)[2] for line in lines if line.startswith("QP VERSION ")), "")
        job.unlink()
        (scratch / "package.json").write_text(json.dumps({"package": package.name, "sha256": content,
                                                          "version": version}) + "\n")
        if folder.exists():
            shutil.rmtree(scratch)
        else:
            os.rename(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return PackageMachine(base, folder / "root.qcow2", package, version)
