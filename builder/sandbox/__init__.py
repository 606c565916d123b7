"""Isolated build environments behind one small interface.

Each backend (Docker now, FreeBSD jails later) is one module implementing
`Sandbox`; the step runner and the verifier drive any of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

OutputSink = Callable[[str], None]


class Sandbox(Protocol):
    """A throwaway root filesystem we can copy into, run in, and copy out of."""

    def start(self) -> None: ...

    def put_tree(self, host_dir: Path, dest: str) -> None:
        """Copy host_dir's content to dest inside, owned by root (no host ids leak)."""

    def put_trees(self, trees: Sequence[tuple[Path, str]]) -> None:
        """put_tree for several (host_dir, dest) at once, in one copy."""

    def put_file(self, content: bytes, dest: str, mode: int = 0o644) -> None: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str = "/",
        on_output: OutputSink | None = None,
        user: str = "root",
    ) -> int:
        """Run argv inside; stream combined output lines to on_output; return the exit code."""

    def open_tar(self, path: str) -> AbstractContextManager[BinaryIO]:
        """The tar stream of path (inside), members named `<basename>/...`,
        numeric owners in the headers; bounded in size."""

    def output(self, argv: Sequence[str], **kwargs) -> tuple[int, str]:
        """Run and collect the combined output (for short commands)."""

    def destroy(self) -> None: ...

    def __enter__(self) -> "Sandbox": ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class Environment:
    """What a sandbox starts from: an image (Docker) or a base release (jail)."""

    reference: str  # image reference, or the base release's name
    identity: str  # image id, or a digest of the base release
    # what the environment was made from: suite, definition hash, package versions
    details: tuple[tuple[str, str], ...] = ()


def _backend(target):
    from ..errors import SandboxError
    from .docker import DockerSandbox
    from .jail import JailSandbox

    backends = {"docker": DockerSandbox, "jail": JailSandbox}
    try:
        return backends[target.builder]
    except KeyError:
        raise SandboxError(f"{target.name}: unknown sandbox backend {target.builder!r}") from None


def prepare_environment(target, role: str, log: OutputSink = lambda line: None, engine=None) -> Environment:
    """Make sure what the target's sandboxes start from exists (bootstrap an
    image, check a base release) and say exactly which one it is. `engine`
    (builder.engines.Engine) is another machine's engine or jail host."""
    from ..emulation import emulated, require_emulation

    if engine is None and target.builder == "docker" and emulated(target.architecture):
        # verification runs setuid qmail-queue: the emulation must keep its privileges
        require_emulation(target.architecture, setuid=role.startswith("verify"))
    return _backend(target).prepare(target, role, log, engine)


def open_sandbox(target, image: str, *, role: str, engine=None, **options) -> Sandbox:
    """A sandbox of the backend the target builds with (docker, jail), not yet
    started: use it as a context manager. `options` are the backend's own
    (labels, command, cap_add, hostname)."""
    return _backend(target)(image, role=role, engine=engine, architecture=target.architecture, **options)
