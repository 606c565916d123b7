"""Isolated build environments behind one small interface.

Each backend (Docker now, FreeBSD jails later) is one module implementing
`Sandbox`; the step runner and the verifier drive any of them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol

OutputSink = Callable[[str], None]


class Sandbox(Protocol):
    """A throwaway root filesystem we can copy into, run in, and copy out of."""

    def start(self) -> None: ...

    def put_tree(self, host_dir: Path, dest: str) -> None:
        """Copy host_dir's content to dest inside, owned by root (no host ids leak)."""

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

    def destroy(self) -> None: ...

    def __enter__(self) -> "Sandbox": ...

    def __exit__(self, *exc: object) -> None: ...
