"""One boot of a power-cut machine under qemu, and its console.

The machine has three disks: vda the root (read-only except when installing),
vdb the job (a tar archive: guest.sh, its settings, maybe a package), vdc
the data disk with the file system under test. The data disk is opened with
cache=none: what the guest had written to its disk is in the image file,
what was only in the guest's page cache is gone when qemu is killed. That
is the power cut. It does not model a disk whose own write cache reorders
or drops writes it acknowledged.

The console (the first serial port) is the only thing read back: lines,
bounded in number and length, of which only those starting with "QP " mean
anything; a line the kill cut short has no newline and is dropped.
"""

from __future__ import annotations

import io
import os
import queue
import shlex
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ...commands import require
from ...errors import VerifyError

ACCEL_ENV = "QMAIL_PKG_VM_ACCEL"
MAX_CONSOLE_BYTES = 32 << 20  # a boot that prints more is stopped
MAX_LINE = 4096
GUEST = Path(__file__).resolve().parent / "guest.sh"


@dataclass(frozen=True)
class Disk:
    path: Path
    writable: bool = False
    # O_DIRECT on the host: the guest's writes reach the file as it issues them
    direct: bool = False
    format: str = "raw"  # or qcow2: a package machine is an overlay on its base

@dataclass(frozen=True)
class Boot:
    kernel: Path
    initrd: Path
    root: Disk
    job: Disk
    data: Disk | None = None
    memory_mib: int = 512


def accelerator() -> str:
    """TCG unless told otherwise: KVM here refuses Debian's stock kernel at
    run time ("emulation failure"), which no start-up probe catches."""
    return os.environ.get(ACCEL_ENV) or "tcg,thread=multi"


def qemu_command(boot: Boot) -> list[str]:
    def drive(disk: Disk) -> str:
        options = [f"file={disk.path}", f"format={disk.format}", "if=virtio"]
        if not disk.writable:
            options.append("readonly=on")
        if disk.direct:
            options.append("cache=none")
        # a comma in a path would start another option: qemu doubles it
        return ",".join(option.replace(",", ",,") if option.startswith("file=") else option for option in options)

    root_mode = "rw" if boot.root.writable else "ro"
    cmdline = (f"root=/dev/vda {root_mode} console=ttyS0 quiet loglevel=3 fsck.mode=skip panic=-1 "
               "init=/sbin/qmail-pkg-init")
    command = [
        "qemu-system-x86_64", "-accel", accelerator(), "-m", str(boot.memory_mib), "-smp", "1",
        "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-serial", "stdio",
        "-kernel", str(boot.kernel), "-initrd", str(boot.initrd), "-append", cmdline,
        "-drive", drive(boot.root), "-drive", drive(boot.job),
    ]
    if boot.data is not None:
        command += ["-drive", drive(boot.data)]
    return command


def job_disk(path: Path, settings: Mapping[str, str], extra: Mapping[str, Path] | None = None) -> Path:
    """The job disk: guest.sh, its settings as shell assignments (each value
    one quoted word), and any files (the package to install)."""
    lines = [f"{name}={shlex.quote(str(value))}" for name, value in sorted(settings.items())]
    members = {"guest.sh": GUEST.read_bytes(), "settings": ("\n".join(lines) + "\n").encode()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
        for name, host_path in (extra or {}).items():
            tar.add(host_path, arcname=name, recursive=False)
    data = buffer.getvalue()
    # whole 512-byte sectors for the virtual disk
    path.write_bytes(data + b"\0" * (-len(data) % 512))
    return path


class Console:
    """A booted machine: its console lines as they come, kept in a file."""

    def __init__(self, boot: Boot, keep: Path):
        require("qemu-system-x86_64", "qemu-system-x86", VerifyError)
        self.keep = keep
        keep.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(keep, "wb")
        self._lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self.process = subprocess.Popen(qemu_command(boot), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        total = 0
        pending = b""
        assert self.process.stdout is not None
        try:
            while True:
                chunk = os.read(self.process.stdout.fileno(), 65536)  # what is there, as it comes
                if not chunk:
                    break
                total += len(chunk)
                self._file.write(chunk)
                if total > MAX_CONSOLE_BYTES:
                    self.cut()
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE:
                    pending = b""  # an endless line means nothing
                for raw in complete:
                    text = raw.rstrip(b"\r")[:MAX_LINE].decode("utf-8", "replace")
                    self._lines.put((time.monotonic(), text))
        finally:
            self._file.close()
            self._lines.put(None)  # a line cut by the kill (no newline) is dropped

    def lines(self, deadline: float) -> Iterator[tuple[float, str]]:
        """(arrival time, line) until the console closes or the deadline."""
        while True:
            try:
                item = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if item is None:
                return
            yield item

    def cut(self) -> None:
        """The power cut: SIGKILL, nothing in qemu gets to flush anything."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def close(self) -> None:
        self.cut()
        self._reader.join(timeout=10)


def run_boot(boot: Boot, keep: Path, timeout: float) -> list[str]:
    """Boot, wait until the machine powers off (or the timeout), return its lines."""
    console = Console(boot, keep)
    try:
        return [line for _, line in console.lines(time.monotonic() + timeout)]
    finally:
        console.close()
