"""Jail backend: one throwaway FreeBSD jail per sandbox, networking off.

The target's `image` names a base release tree (e.g. `14.1-RELEASE`) below
the folder in $QMAIL_PKG_JAIL_BASE (extracted base.txz, the same trees
poudriere and bastille use). Each sandbox gets a fresh copy of it (a ZFS
clone when $QMAIL_PKG_JAIL_ZFS names the dataset holding the releases, else
a tar copy), is started with `jail -c` without any address, and is driven
through `jexec`; it is removed with `jail -r` and its tree deleted.

Files go in and out as tar streams through a tar running *inside* the jail,
so links in the jail resolve inside the jail; the host never walks the jail's
tree except to delete it (rm does not follow links). The same step runner
drives this backend and Docker: only "how to run a command inside" differs.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..archive import Limits
from ..errors import SandboxError
from ..staged import StreamReader
from .base import Environment, OutputSink
from .docker import tar_of_file, tar_of_trees

JAIL_BASE_ENV = "QMAIL_PKG_JAIL_BASE"
JAIL_ZFS_ENV = "QMAIL_PKG_JAIL_ZFS"
JAIL_WORK_ENV = "QMAIL_PKG_JAIL_WORK"
_CHUNK = 1 << 16

Runner = Callable[..., subprocess.CompletedProcess]


def _quote_env(env: Mapping[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in env.items()]


class JailSandbox:
    def __init__(
        self,
        image: str,
        *,
        role: str = "build",
        labels: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        cap_add: Sequence[str] = (),
        hostname: str = "build.invalid",
        runner: Runner = subprocess.run,
        popen: Callable[..., subprocess.Popen] = subprocess.Popen,
        host_system: str | None = None,
        engine=None,
        architecture: str = "amd64",
    ):
        self.release = image.rsplit(":", 1)[0].rsplit("/", 1)[-1]  # qmail-pkg/14.1-RELEASE -> 14.1-RELEASE
        self.role = role
        self.labels = dict(labels or {})
        self.command = list(command) if command else None
        self.hostname = hostname
        self.name = f"qmailpkg{secrets.token_hex(6)}"
        self.root: Path | None = None
        self._runner = runner
        self._popen = popen
        # A jail host reached over ssh (builders settings `jail: ssh://...`):
        # every command below is the same, only prefixed by one ssh call, so
        # what runs on the FreeBSD host is exactly what runs locally there.
        self._ssh = ssh_prefix(engine.url) if engine is not None else None
        self._system = host_system or (None if self._ssh else platform.system())
        self._clone: str | None = None
        # cap_add has no jail equivalent: ptrace inside a jail follows security.bsd.* sysctls.
        # A jail runs the host's architecture: an aarch64 target needs an aarch64 jail host.
        del cap_add, architecture

    def base_release(self, log: OutputSink, where: str = "local") -> Environment:
        """The base release this jail copies: checked, and named by a digest
        of its freebsd-version (which names the patch level)."""
        base = self._base()
        result = self._runner(self.host_command(["cat", str(base / "bin" / "freebsd-version")]), capture_output=True)
        version = result.stdout if result.returncode == 0 else b""
        if isinstance(version, str):
            version = version.encode()
        digest = hashlib.sha256(version).hexdigest() if version else "unknown"
        log(f"jail base {base}" + (f" on {where}" if self._ssh else "") + f" (freebsd-version sha256 {digest[:12]})")
        return Environment(self.release, f"sha256:{digest}", (("jail host", where if self._ssh else "local"),))

    # -- commands (pure: unit-tested without a FreeBSD host) ------------------
    def host_command(self, argv: Sequence[str]) -> list[str]:
        """argv as run on the jail host: as is, or through one ssh call whose
        remote command line is quoted word by word (ssh joins its arguments
        with spaces and hands them to the remote shell)."""
        return [*self._ssh, shlex.join(argv)] if self._ssh else list(argv)

    def create_command(self, root: Path) -> list[str]:
        return [
            "jail", "-c", f"name={self.name}", f"path={root}", f"host.hostname={self.hostname}",
            "ip4=disable", "ip6=disable",  # no network at all
            "allow.raw_sockets=0", "allow.mount=0", "children.max=0",
            "mount.devfs", "devfs_ruleset=4", "persist",
        ]

    @staticmethod
    def copy_command(base: Path, root: Path) -> list[str]:
        """A fresh copy of the base release, flags and owners kept."""
        return ["sh", "-c", 'tar -C "$1" -cf - . | tar -C "$2" -xpf -', "sh", str(base), str(root)]

    def exec_command(self, argv: Sequence[str], env: Mapping[str, str] | None, workdir: str, user: str) -> list[str]:
        # env -i: nothing of the host's environment leaks in; cd through sh so
        # a missing folder is an error of the step, not of jexec.
        inner = ["env", "-i", *_quote_env(env or {}), "sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", workdir, *argv]
        user_args = [] if user == "root" else ["-U", user]
        return ["jexec", *user_args, self.name, *inner]

    def remove_commands(self, root: Path) -> list[list[str]]:
        commands = [["jail", "-r", self.name], ["umount", "-f", str(root / "dev")]]
        if self._clone:
            commands.append(["zfs", "destroy", "-r", self._clone])
        else:
            # base releases carry schg flags; rm -r never follows a link
            commands += [["chflags", "-R", "noschg", str(root)], ["rm", "-rf", str(root)]]
        return commands

    # -- lifecycle -------------------------------------------------------
    def _base(self) -> Path:
        if self._ssh and self._system is None:
            result = self._runner(self.host_command(["uname", "-s"]), capture_output=True, text=True)
            if result.returncode != 0:
                raise SandboxError(f"cannot reach the jail host: {(result.stderr or '').strip()[:300]}")
            self._system = (result.stdout or "").strip()
        if self._system != "FreeBSD":
            raise SandboxError(
                f"jails need a FreeBSD host (this is {self._system}); build FreeBSD targets there, "
                "or use the test-only targets that package on a Debian userland"
            )
        if not os.environ.get(JAIL_BASE_ENV):
            raise SandboxError(f"set {JAIL_BASE_ENV} to the folder holding extracted base releases "
                               f"(e.g. {self.release}/)")
        base = Path(os.environ[JAIL_BASE_ENV]) / self.release
        exists = self._runner(self.host_command(["test", "-x", str(base / "bin" / "sh")]),
                              capture_output=True).returncode == 0
        if not exists:
            raise SandboxError(f"{base} is not an extracted FreeBSD base release (no bin/sh)")
        return base

    def _check(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        result = self._runner(self.host_command(argv), capture_output=True, text=True, **kwargs)
        if result.returncode != 0:
            raise SandboxError(f"{' '.join(argv[:3])} failed: {(result.stderr or result.stdout).strip()[:300]}")
        return result

    def start(self) -> None:
        base = self._base()
        work = os.environ.get(JAIL_WORK_ENV) or ("/tmp" if self._ssh else tempfile.gettempdir())
        # mktemp on the jail host: the folder is created there, private (0700)
        made = self._check(["mktemp", "-d", f"{work}/{self.name}-XXXXXX"])
        root = Path(made.stdout.strip())
        self.root = root
        dataset = os.environ.get(JAIL_ZFS_ENV)
        if dataset:
            self._clone = f"{dataset}/{self.name}"
            self._check(["zfs", "snapshot", f"{dataset}/{self.release}@{self.name}"])
            self._check(["zfs", "clone", "-o", f"mountpoint={root}", f"{dataset}/{self.release}@{self.name}",
                         self._clone])
        else:
            self._check(self.copy_command(base, root))
        self._check(self.create_command(root))
        if self.command:
            # the verification role keeps svscan running: daemon(8) detaches it
            self._check(["jexec", self.name, "daemon", "-f", *self.command])

    def destroy(self) -> None:
        if self.root is None:
            return
        root, self.root = self.root, None
        for argv in self.remove_commands(root):
            self._runner(self.host_command(argv), capture_output=True, text=True)

    def __enter__(self) -> "JailSandbox":
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def _require(self) -> Path:
        if self.root is None:
            raise SandboxError("sandbox used before start() or after destroy()")
        return self.root

    # -- processes -------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str = "/",
        on_output: OutputSink | None = None,
        user: str = "root",
        stdin: bytes | None = None,
    ) -> int:
        self._require()
        process = self._popen(self.host_command(self.exec_command(argv, env, workdir, user)), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdin is not None and process.stdout is not None  # both asked for above
        if stdin is not None:
            process.stdin.write(stdin)
        process.stdin.close()
        for raw in process.stdout:
            if on_output:
                on_output(raw.decode("utf-8", "replace").rstrip("\n"))
        return process.wait()

    def output(self, argv: Sequence[str], **kwargs) -> tuple[int, str]:
        lines: list[str] = []
        code = self.run(argv, on_output=lines.append, **kwargs)
        return code, "\n".join(lines)

    # -- files -----------------------------------------------------------
    def put_tree(self, host_dir: Path, dest: str) -> None:
        self.put_trees([(host_dir, dest)])

    def put_trees(self, trees: Sequence[tuple[Path, str]]) -> None:
        self._put(tar_of_trees(trees), "/")

    def put_file(self, content: bytes, dest: str, mode: int = 0o644) -> None:
        folder, _, name = dest.rpartition("/")
        self._put(tar_of_file(name, content, mode), folder or "/")

    def _put(self, archive: bytes, dest: str) -> None:
        code, out = self.output(["sh", "-c", 'mkdir -p "$1" && tar -xpf - -C "$1"', "sh", dest], stdin=archive)
        if code != 0:
            raise SandboxError(f"copying into the jail at {dest} failed: {out.strip()[:300]}")

    @contextmanager
    def open_tar(self, path: str) -> Iterator[BinaryIO]:
        self._require()
        parent, _, name = path.rstrip("/").rpartition("/")
        argv = self.host_command(self.exec_command(["tar", "-cf", "-", "-C", parent or "/", name], None, "/", "root"))
        process = self._popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None  # asked for above
        stdout = process.stdout
        limits = Limits.from_environment()
        bound = limits.max_bytes + limits.max_members * 1536 + (1 << 20)
        chunks = iter(lambda: stdout.read(_CHUNK), b"")
        reader = io.BufferedReader(StreamReader(chunks, bound, f"tar stream of {path}"), _CHUNK)
        try:
            yield reader  # a failed tar shows as a cut stream, which the reader refuses
        finally:
            reader.close()
            if process.poll() is None:
                process.kill()
            process.wait()


def ssh_prefix(url: str) -> list[str]:
    """ssh://[user@]host[:port] -> the ssh command that runs one remote
    command: BatchMode so a missing key fails instead of prompting a CI job."""
    rest = url[len("ssh://"):] if url.startswith("ssh://") else url
    destination, _, port = rest.partition(":")
    if not destination or destination.startswith("-") or (port and not port.isdigit()):
        raise SandboxError(f"{url}: expected ssh://[user@]host[:port]")
    return ["ssh", "-T", "-o", "BatchMode=yes", *(["-p", port] if port else []), destination, "--"]


def jail_tools_available() -> str | None:
    """None when this host can run jails, else why not."""
    if platform.system() != "FreeBSD":
        return f"jails need a FreeBSD host (this is {platform.system()})"
    for tool in ("jail", "jexec"):
        if not shutil.which(tool):
            return f"{tool} is not on the PATH"
    return None
