"""What a package file says about itself, format-neutral: the facts a
packager reads back from an artifact's bytes. The build record keeps them;
publishing reads the file again and compares (builder/repo/admit.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContentEntry:
    """One entry a package file carries, as its format records it."""

    path: str  # absolute
    kind: str  # file | dir | symlink
    mode: int  # permission bits with setuid/setgid/sticky
    owner: str  # by name; "#<id>" where the format holds only a number
    group: str
    sha256: str = ""  # regular files: of the content
    link: str = ""  # symlinks: the target

    def describe(self) -> str:
        return (f"{self.kind} {self.mode:04o} {self.owner}:{self.group} {self.path}"
                + (f" -> {self.link}" if self.link else ""))


@dataclass(frozen=True)
class PackageFacts:
    """What a package file says about itself, read back from its bytes by
    its packager: identity, every other metadata field by the format's own
    names, the relations, the entries it carries and its scripts (by sha256).
    The build records them; publishing reads the file again and compares."""

    name: str
    version: str  # as the format writes it (1.03-1+deb12, 1.03-1.el9, 1.03_1)
    architecture: str  # as the format writes it (amd64, x86_64, FreeBSD:14:amd64)
    fields: tuple[tuple[str, str], ...] = ()
    relations: tuple[tuple[str, tuple[str, ...]], ...] = ()
    contents: tuple[ContentEntry, ...] = ()
    scripts: tuple[tuple[str, str], ...] = ()  # script name -> sha256 of its text

    def field(self, name: str) -> str:
        return dict(self.fields).get(name, "")

    def relation(self, name: str) -> tuple[str, ...]:
        return dict(self.relations).get(name, ())

    def differences(self, other: "PackageFacts", limit: int = 5) -> list[str]:
        """What differs from `other` (the recorded facts), each named."""
        found = []
        for key in ("name", "version", "architecture"):
            if getattr(self, key) != getattr(other, key):
                found.append(f"{key} is {getattr(self, key)!r}, the record says {getattr(other, key)!r}")
        for key in ("fields", "relations", "scripts"):
            mine, theirs = dict(getattr(self, key)), dict(getattr(other, key))
            for name in sorted(set(mine) | set(theirs)):
                if mine.get(name) != theirs.get(name):
                    found.append(f"{key[:-1]} {name!r} is {_short(mine.get(name))}, the record says "
                                 f"{_short(theirs.get(name))}")
        mine_entries = {entry.path: entry for entry in self.contents}
        theirs_entries = {entry.path: entry for entry in other.contents}
        for path in sorted(set(mine_entries) | set(theirs_entries)):
            have, want = mine_entries.get(path), theirs_entries.get(path)
            if have != want:
                found.append(f"{path}: the package has {have.describe() if have else 'nothing'}, the record says "
                             f"{want.describe() if want else 'nothing'}"
                             + (" (other content)" if have and want and have.sha256 != want.sha256 else ""))
        return found[:limit]


def _short(value: object) -> str:
    text = repr(value) if value is not None else "absent"
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["ContentEntry", "PackageFacts"]
