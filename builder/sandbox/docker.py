"""Docker backend: one container per sandbox, networking off, no privileges.

Containers carry the label `qmail-pkg=<role>` so that leftovers from a killed
run can be found (`qmail-pkg clean`). Files go in and out as tar streams, never
through bind mounts, so host ownership cannot leak into packages.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import docker
import docker.errors
import docker.tls

from ..archive import Limits
from ..errors import SandboxError
from ..staged import StreamReader
from .base import OutputSink

LABEL = "qmail-pkg"
# Which process on which machine made a container: `qmail-pkg clean` removes
# what killed runs left, never the sandboxes of a run still going.
OWNER_LABEL = "qmail-pkg.owner"


def owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def _run_is_alive(made_by: str) -> bool:
    host, _, pid = made_by.rpartition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
# Capabilities a compile-and-install never needs. Builds keep the defaults they
# do need (chown, setuid/setgid bits, useradd) and run with no-new-privileges.
BUILD_CAP_DROP = ["NET_RAW", "NET_BIND_SERVICE", "MKNOD", "SYS_CHROOT", "AUDIT_WRITE", "SETPCAP", "SETFCAP", "KILL"]
# The main process only keeps the container alive; work happens through exec.
KEEPALIVE = ["sleep", "infinity"]
BOOT = ["/sbin/init"]
BOOT_TIMEOUT = 120  # seconds until systemd reports the boot finished
_CHUNK = 1 << 16


def client(engine=None):
    """A Docker client that answers, or a SandboxError saying how to get one.
    `engine` (builder.engines.Engine) names another engine than the local one."""
    try:
        if engine is None:
            connection = docker.from_env(timeout=600)
        else:
            tls = dict(engine.tls)
            # the engine's certificate is always checked: against the settings' ca,
            # else against the system's trusted authorities (never not at all)
            config = docker.tls.TLSConfig(client_cert=(tls["cert"], tls["key"]), ca_cert=tls.get("ca"),
                                          verify=True) if tls else False
            connection = docker.DockerClient(base_url=engine.url, timeout=600, tls=config,
                                             use_ssh_client=engine.url.startswith("ssh://"))
        connection.ping()
        return connection
    except Exception as exc:  # the SDK raises many types for "no engine"
        if engine is not None:
            raise SandboxError(f"the Docker engine at {engine.url} does not answer ({type(exc).__name__}: {exc}); "
                               "check the builders settings") from None
        raise SandboxError(
            f"no Docker engine answers ({type(exc).__name__}: {exc}); "
            "start one with `dockerd --bridge=none --iptables=false &` or run qmail-pkg setup-host as root"
        ) from None


def image_exists(engine, reference: str) -> bool:
    try:
        engine.images.get(reference)
        return True
    except docker.errors.ImageNotFound:
        return False


def image_labels(engine, reference: str) -> dict[str, str]:
    return engine.images.get(reference).labels or {}


def image_identity(engine, reference: str) -> str:
    return engine.images.get(reference).id


def send_image(reference: str, source, destination) -> None:
    """Copy an image from one engine to another (streamed: an image is
    hundreds of megabytes), so both build from the same image id."""
    destination.images.load(source.images.get(reference).save(named=True))


def import_rootfs(engine, rootfs: Path, reference: str, changes: list[str]) -> None:
    """`docker import` of a root filesystem tarball with Dockerfile changes
    (LABEL, ENV, CMD). The engine records the host's architecture whatever
    the tree holds; the true one travels in a label (see _platform_for)."""
    repository, _, tag = reference.rpartition(":")
    try:
        engine.api.import_image(src=str(rootfs), repository=repository, tag=tag or "latest", changes=changes)
    except docker.errors.APIError as exc:
        raise SandboxError(f"docker import of {reference} failed: {exc.explanation or exc}") from None
    if not image_exists(engine, reference):
        raise SandboxError(f"docker import of {reference} reported no error but made no image")


def tar_of_file(name: str, content: bytes, mode: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


# Debian's architecture names (the recipe's spelling) -> OCI platforms.
_OCI = {"amd64": "linux/amd64", "arm64": "linux/arm64", "armhf": "linux/arm/v7", "i386": "linux/386",
        "ppc64el": "linux/ppc64le", "s390x": "linux/s390x", "riscv64": "linux/riscv64"}


def oci_platform(architecture: str) -> str:
    try:
        return _OCI[architecture]
    except KeyError:
        raise SandboxError(f"no container platform known for architecture {architecture!r}") from None


def tar_of_tree(host_dir: Path) -> bytes:
    return tar_of_trees([(host_dir, "")])


def tar_of_trees(trees: Sequence[tuple[Path, str]]) -> bytes:
    """One archive holding each host folder's content at its destination
    (relative to where it is extracted), with every parent folder, owned by
    root: one copy into a sandbox instead of one per folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()
        for host_dir, dest in trees:
            parts = [part for part in dest.strip("/").split("/") if part]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    made.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(_as_root(info))
            prefix = "/".join(parts)
            for path in sorted(host_dir.iterdir()):
                tar.add(path, arcname=f"{prefix}/{path.name}" if prefix else path.name, filter=_as_root)
    return buffer.getvalue()


class DockerSandbox:
    def __init__(
        self,
        image: str,
        *,
        role: str = "build",
        labels: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        cap_add: Sequence[str] = (),
        hostname: str = "build.invalid",
        engine=None,
        architecture: str = "amd64",
        boot: bool = False,
    ):
        self.engine_settings = engine
        self.platform = oci_platform(architecture)
        self.image = image
        self.role = role
        self.labels = {LABEL: role, OWNER_LABEL: owner(), **(labels or {})}
        self.command = list(command or KEEPALIVE)
        self.cap_add = list(cap_add)
        self.hostname = hostname
        # systemd as PID 1 (verification of a systemd host): the engine here
        # refuses --privileged, so the container gets what systemd needs one
        # by one: SYS_ADMIN (mounts), no seccomp filter, a cgroup namespace
        # of its own, and tmpfs on /run and /run/lock.
        self.boot = boot
        if boot:
            self.command = list(command or BOOT)
            self.cap_add = sorted({*self.cap_add, "SYS_ADMIN"})
        self._engine: docker.DockerClient | None = None
        self._container = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        self._engine = client(self.engine_settings)
        try:
            self._container = self._engine.containers.run(
                self.image,
                self.command,
                detach=True,
                network_mode="none",  # builds and verification never touch the network
                labels=self.labels,
                cap_add=self.cap_add or None,
                # Verification must keep setuid exec working (qmail-queue is 4711).
                cap_drop=BUILD_CAP_DROP if self.role == "build" else None,
                security_opt=["no-new-privileges"] if self.role == "build" else
                ["seccomp=unconfined"] if self.boot else None,
                privileged=False,
                hostname=self.hostname,
                # reap zombies left by daemons we start in verification (systemd does it itself)
                init=not self.boot,
                **({"cgroupns": "private", "tmpfs": {"/run": "", "/run/lock": ""},
                    "stop_signal": "SIGRTMIN+3"} if self.boot else {}),
                # another architecture's image runs through the host's binfmt
                # emulation (qemu-user); the platform says which one is meant
                # where the engine recorded it (see _platform_for)
                platform=self._platform_for(self.image),
            )
        except docker.errors.ImageNotFound:
            raise SandboxError(f"image {self.image} not found; build it with `qmail-pkg images`") from None
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot start a container from {self.image}: {exc.explanation or exc}") from None
        if self.boot:
            self._wait_booted()

    def _wait_booted(self) -> None:
        """Until systemd says the boot is over ("degraded" counts: a
        container lacks devices some units want)."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            _, state = self.output(["systemctl", "is-system-running"])
            if state.strip() in ("running", "degraded"):
                return
            time.sleep(0.5)
        self.destroy()
        raise SandboxError(f"{self.image}: systemd did not finish booting within {BOOT_TIMEOUT} s "
                           f"(is-system-running: {state.strip() or 'no answer'})")

    def _platform_for(self, image: str) -> str | None:
        """The platform to ask for, if the image carries it. Engines before
        Docker 23 record an imported image as the host's architecture
        whatever it holds (the import ignores --platform); asking such an
        engine for linux/arm64 would make it look for the image in a
        registry. The image's own label (qmail-pkg.architecture) says the
        truth; binfmt runs its programs either way."""
        try:
            recorded = self._client().images.get(image).attrs.get("Architecture", "")
        except docker.errors.ImageNotFound:
            return None
        return self.platform if self.platform.split("/")[1] == recorded else None

    def destroy(self) -> None:
        if self._container is None:
            return
        try:
            self._container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: its removal is already in progress (qmail-pkg clean)
                raise SandboxError(f"cannot remove container {self._container.short_id}: {exc}") from None
        finally:
            self._container = None

    def __enter__(self) -> "DockerSandbox":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Runs on success, on errors and on KeyboardInterrupt alike.
        self.destroy()

    @property
    def container_id(self) -> str:
        return self._require().id

    def _require(self):
        if self._container is None:
            raise SandboxError("sandbox used before start() or after destroy()")
        return self._container

    def _client(self) -> docker.DockerClient:
        if self._engine is None:
            raise SandboxError("sandbox used before start()")
        return self._engine

    # -- files -----------------------------------------------------------
    def put_tree(self, host_dir: Path, dest: str) -> None:
        self.put_trees([(host_dir, dest)])

    def put_trees(self, trees: Sequence[tuple[Path, str]]) -> None:
        if not self._require().put_archive("/", tar_of_trees(trees)):
            raise SandboxError(f"copying {', '.join(str(d) for _, d in trees)} into the sandbox failed")

    def put_file(self, content: bytes, dest: str, mode: int = 0o644) -> None:
        folder, _, name = dest.rpartition("/")
        self.run(["mkdir", "-p", folder or "/"])
        if not self._require().put_archive(folder or "/", tar_of_file(name, content, mode)):
            raise SandboxError(f"copying a file into the sandbox at {dest} failed")

    @contextmanager
    def open_tar(self, path: str) -> Iterator[BinaryIO]:
        """The tar stream of `path` inside, bounded, read as it arrives (never
        written to the host's disk first)."""
        try:
            chunks, _ = self._require().get_archive(path)
        except docker.errors.NotFound:
            raise SandboxError(f"{path} does not exist in the sandbox") from None
        limits = Limits.from_environment()
        # Tar headers and padding come on top of the file bytes.
        bound = limits.max_bytes + limits.max_members * 1536 + (1 << 20)
        reader = io.BufferedReader(StreamReader(chunks, bound, f"tar stream of {path}"), _CHUNK)
        try:
            yield reader
        finally:
            reader.close()
            close = getattr(chunks, "close", None)
            if close:
                close()

    # -- processes -------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str = "/",
        on_output: OutputSink | None = None,
        user: str = "root",
    ) -> int:
        container = self._require()
        api = self._client().api
        exec_id = api.exec_create(
            container.id,
            list(argv),
            environment=dict(env or {}),
            workdir=workdir,
            user=user,
            stdout=True,
            stderr=True,
        )["Id"]
        pending = b""
        for chunk in api.exec_start(exec_id, stream=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if on_output:
                for line in lines:
                    on_output(line.decode("utf-8", "replace"))
        if pending and on_output:
            on_output(pending.decode("utf-8", "replace"))
        return api.exec_inspect(exec_id)["ExitCode"]

    def output(self, argv: Sequence[str], **kwargs) -> tuple[int, str]:
        """Run and collect the output (for short commands)."""
        lines: list[str] = []
        code = self.run(argv, on_output=lines.append, **kwargs)
        return code, "\n".join(lines)


def remove_leftovers(labels: Mapping[str, str] | None = None, engine=None, *,
                     keep_live: bool = False) -> tuple[list[str], list[str]]:
    """Remove every container this tool labelled (or only those with all the
    given labels, e.g. one run's), but with keep_live those that a process
    still running on this machine made; return the short ids removed and
    kept. A container another machine made counts as left behind."""
    engine = client(engine)
    removed, kept = [], []
    wanted = [LABEL] + [f"{key}={value}" for key, value in (labels or {}).items()]
    for container in engine.containers.list(all=True, filters={"label": wanted}):
        if keep_live and _run_is_alive(container.labels.get(OWNER_LABEL, "")):
            kept.append(container.short_id)
            continue
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            continue  # gone meanwhile
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: its removal is already in progress
                raise SandboxError(f"cannot remove container {container.short_id}: {exc}") from None
        removed.append(container.short_id)
    return removed, kept
