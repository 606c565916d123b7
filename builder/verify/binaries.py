"""The programs a package carries, checked as the target's systems will need
them (`qmail-pkg lint`): branded for the target's OS, the target's
interpreter, only libraries the target has, no symbol version newer than the
target release's C library, and syncdir linked into the programs that touch
the queue (they define open, link, rename and unlink themselves).

A cross build is where these go wrong silently: a FreeBSD binary branded
System V, an EL 8 binary that needs GLIBC_2.34. The files are read from the
package's bytes (builder/formats/elf.py), never run."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import printable
from ..evidence import CheckResult
from ..formats.elf import Program, is_elf, read_program, version_number
from ..platforms.base import BinaryRules
from .checks import PROOF_BINARIES, SYNCDIR_SYMBOLS


def _newest(program: Program, rules: BinaryRules) -> tuple[int, ...] | None:
    numbers = [number for name in program.versions if (number := version_number(name, rules.version_prefix))]
    return max(numbers) if numbers else None


def _dotted(version: tuple[int, ...] | None) -> str:
    return ".".join(map(str, version)) if version else "none"


def check_programs(files: Iterable[tuple[str, bytes]], rules: BinaryRules, prefix: str,
                   syncdir: bool = True) -> list[CheckResult]:
    programs: list[Program] = []
    unreadable: list[str] = []
    for path, data in files:
        if is_elf(data):
            read = read_program(path, data)
            (unreadable.append(read) if isinstance(read, str) else programs.append(read))
    if not programs:
        return [CheckResult("programs", False, unreadable[0] if unreadable else "the package carries no program")]
    results = []

    def result(name: str, wrong: list[str], good: str) -> None:
        results.append(CheckResult(f"programs: {name}", not wrong,
                                   printable("; ".join(wrong[:4]) + (f" (and {len(wrong) - 4} more)" if len(wrong) > 4
                                                                     else "")) if wrong else good))

    result("readable ELF files", unreadable, f"{len(programs)} programs")
    result(f"branded {' or '.join(rules.osabi)}",
           [f"{p.path} is {p.osabi}" for p in programs if p.osabi not in rules.osabi], rules.osabi[0])
    result(f"interpreter {rules.interpreter}",
           [f"{p.path} asks for {p.interpreter or 'none (static)'}" for p in programs
            if p.interpreter != rules.interpreter], f"every program asks for {rules.interpreter}")
    allowed = re.compile(rules.libraries)
    needed = sorted({library for p in programs for library in p.needed})
    result("libraries the target has", [f"{p.path} needs {library}" for p in programs for library in p.needed
                                        if not allowed.match(library)], ", ".join(needed) or "none")
    newest = max((v for p in programs if (v := _newest(p, rules))), default=None)
    too_new = [f"{p.path} needs {rules.version_prefix}{_dotted(v)}" for p in programs
               if (v := _newest(p, rules)) and rules.newest and v > rules.newest]
    result(f"no {rules.version_prefix} version newer than {_dotted(rules.newest)}", too_new,
           f"newest needed: {rules.version_prefix}{_dotted(newest)}")
    if syncdir:
        by_name = {p.path.rsplit("/", 1)[-1]: p for p in programs if p.path.startswith(prefix.rstrip("/") + "/bin/")}
        wrong = []
        for binary in PROOF_BINARIES:
            program = by_name.get(binary)
            if program is None:
                wrong.append(f"no {binary}")
            elif not set(SYNCDIR_SYMBOLS) <= program.defined:
                missing = sorted(set(SYNCDIR_SYMBOLS) - program.defined)
                wrong.append(f"{binary} does not define {', '.join(missing)} (imports them: no syncdir)")
        result("syncdir linked in", wrong, f"T {'/'.join(SYNCDIR_SYMBOLS)} in {', '.join(PROOF_BINARIES)}")
    return results


__all__ = ["check_programs"]
