"""Running host programs: the one place new code calls subprocess from.

A failing program becomes the caller's error class with one line: what was
being done, the exit code and the last lines the program printed, never a
traceback. Output is captured (bounded by what the programs print: the
tools run here are ours or the distribution's, not the build's).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import QmailPkgError


def require(program: str, package: str, error: type[QmailPkgError]) -> str:
    """The program's path, or `error` saying which Debian package has it."""
    found = shutil.which(program)
    if not found:
        raise error(f"{program} is not installed (apt-get install {package}; qmail-pkg setup-host installs it)")
    return found


def run(
    argv: Sequence[str | Path],
    *,
    what: str,
    error: type[QmailPkgError],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    ok: Sequence[int] = (0,),
) -> subprocess.CompletedProcess:
    """Run argv; exit codes in `ok` return, anything else raises `error`."""
    words = [str(arg) for arg in argv]
    try:
        result = subprocess.run(words, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
                                errors="replace")
    except FileNotFoundError:
        raise error(f"{what}: {words[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise error(f"{what}: {words[0]} did not finish within {timeout:.0f} s") from None
    if result.returncode not in ok:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise error(f"{what}: {words[0]} exited with {result.returncode}" + (f": {tail}" if tail else ""))
    return result


def run_shown(argv: Sequence[str | Path], *, what: str, error: type[QmailPkgError]) -> None:
    """Run argv with its output on this terminal (a long job a person
    watches); a non-zero exit raises `error` with one line."""
    words = [str(arg) for arg in argv]
    try:
        code = subprocess.run(words).returncode
    except FileNotFoundError:
        raise error(f"{what}: {words[0]} is not installed") from None
    if code:
        raise error(f"{what}: {words[0]} exited with {code}; the lines above say where")
