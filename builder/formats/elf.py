"""Reading the programs a package carries, as its users' systems will: which
OS an ELF file is branded for, its interpreter, the libraries it needs with
the newest symbol version of each, and the functions it defines itself (the
syncdir proof: open, link, rename and unlink defined by the program, not
imported from the C library). The files are data from a package: read from
bytes in memory with pyelftools, never run."""

from __future__ import annotations

import io
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from elftools.elf.sections import SymbolTableSection
from elftools.elf.segments import InterpSegment

MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Program:
    path: str
    osabi: str  # pyelftools' names: ELFOSABI_SYSV, ELFOSABI_FREEBSD, ELFOSABI_LINUX
    machine: str  # EM_X86_64, EM_AARCH64
    interpreter: str
    needed: tuple[str, ...]
    versions: tuple[str, ...]  # the symbol versions it needs (GLIBC_2.34, FBSD_1.7...)
    defined: frozenset[str]  # functions its dynamic symbol table defines


def is_elf(data: bytes) -> bool:
    return data[:4] == MAGIC


def read_program(path: str, data: bytes) -> Program | str:
    """The program's facts, or why it cannot be read as one."""
    try:
        elf = ELFFile(io.BytesIO(data))
        interpreter = ""
        for segment in elf.iter_segments():
            if isinstance(segment, InterpSegment):
                interpreter = segment.get_interp_name()
        needed: list[str] = []
        versions: list[str] = []
        defined: set[str] = set()
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                # pyelftools sets `needed` on DT_NEEDED tags only, so its types do not know it
                needed += [tag.needed for tag in section.iter_tags()  # type: ignore[attr-defined]
                           if tag.entry.d_tag == "DT_NEEDED"]
            elif isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    versions += [aux.name for aux in auxiliaries]
            elif isinstance(section, SymbolTableSection) and section.name == ".dynsym":
                defined |= {symbol.name for symbol in section.iter_symbols()
                            if symbol["st_info"]["type"] == "STT_FUNC" and symbol["st_shndx"] != "SHN_UNDEF"}
        return Program(path, elf["e_ident"]["EI_OSABI"], elf["e_machine"], interpreter, tuple(needed),
                       tuple(sorted(set(versions))), frozenset(defined))
    except (ELFError, ValueError, KeyError, IndexError, AttributeError, UnicodeDecodeError) as exc:
        return f"{path}: not a readable ELF file ({exc})"


def version_number(name: str, prefix: str) -> tuple[int, ...] | None:
    """GLIBC_2.34 -> (2, 34) for the prefix GLIBC_; None for another family's."""
    if not name.startswith(prefix):
        return None
    try:
        return tuple(int(part) for part in name[len(prefix):].split("."))
    except ValueError:
        return None


__all__ = ["MAGIC", "Program", "is_elf", "read_program", "version_number"]
