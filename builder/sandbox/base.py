"""The sandbox interface: what every backend (docker.py, jail.py) implements
and what it starts from. The mechanism names no family: which image or base
release a target needs, and making it when missing, is decided above it
(builder/environment.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
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


__all__ = ["Environment", "OutputSink", "Sandbox"]
