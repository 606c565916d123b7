"""StagedTree: the harvested install root plus a manifest of every entry.

Owners and modes come from the sandbox (where the accounts exist), by name:
dpkg and rpm resolve owners by name at unpack, so names are what a package
must carry. File contents are copied to a host folder that mirrors absolute
paths; the host copy's own owners and modes mean nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from .errors import BuildError

FIND_FORMAT = r"%y\t%m\t%u\t%g\t%p\t%l\n"
_KINDS = {"f": "file", "d": "dir", "l": "symlink", "p": "fifo"}


@dataclass(frozen=True)
class Entry:
    path: str  # absolute, no trailing slash
    kind: str  # file | dir | symlink | fifo
    mode: int  # permission bits including setuid/setgid/sticky
    owner: str
    group: str
    link_target: str = ""

    def is_below(self, folder: str) -> bool:
        return self.path == folder or self.path.startswith(folder.rstrip("/") + "/")

    def describe(self) -> str:
        return f"{self.kind} {self.mode:04o} {self.owner}:{self.group} {self.path}" + (
            f" -> {self.link_target}" if self.link_target else ""
        )


@dataclass(frozen=True)
class StagedTree:
    root: Path  # host folder; an entry /var/qmail/bin/x lives at root/var/qmail/bin/x
    entries: tuple[Entry, ...]

    def host_path(self, entry: Entry | str) -> Path:
        path = entry.path if isinstance(entry, Entry) else entry
        return self.root / path.lstrip("/")

    def entry(self, path: str) -> Entry:
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise KeyError(path)

    def has(self, path: str) -> bool:
        return any(entry.path == path for entry in self.entries)

    def with_file(self, path: str, content: str | bytes, mode: int, owner: str = "root", group: str = "root") -> "StagedTree":
        """A tree with one more (or one replaced) regular file; parents must exist as entries."""
        data = content.encode() if isinstance(content, str) else content
        host = self.host_path(path)
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(data)
        added = self._with_parents(path, owner, group)
        return added._replace_entry(Entry(path, "file", mode, owner, group))

    def with_symlink(self, path: str, target: str) -> "StagedTree":
        host = self.host_path(path)
        host.parent.mkdir(parents=True, exist_ok=True)
        if host.is_symlink() or host.exists():
            host.unlink()
        os.symlink(target, host)
        return self._with_parents(path, "root", "root")._replace_entry(Entry(path, "symlink", 0o777, "root", "root", target))

    def _with_parents(self, path: str, owner: str, group: str) -> "StagedTree":
        tree = self
        for parent in reversed(PurePosixPath(path).parents):
            text = str(parent)
            if text != "/" and not tree.has(text):
                tree = tree._replace_entry(Entry(text, "dir", 0o755, owner, group))
                tree.host_path(text).mkdir(parents=True, exist_ok=True)
        return tree

    def _replace_entry(self, new: Entry) -> "StagedTree":
        kept = [entry for entry in self.entries if entry.path != new.path]
        return replace(self, entries=tuple(sorted([*kept, new], key=lambda e: e.path)))

    def file_sha256(self, entry: Entry) -> str:
        return hashlib.sha256(self.host_path(entry).read_bytes()).hexdigest()

    def manifest(self) -> list[dict]:
        rows = []
        for entry in self.entries:
            row = {
                "path": entry.path,
                "type": entry.kind,
                "mode": f"{entry.mode:04o}",
                "owner": entry.owner,
                "group": entry.group,
            }
            if entry.kind == "symlink":
                row["target"] = entry.link_target
            if entry.kind == "file":
                row["sha256"] = self.file_sha256(entry)
            rows.append(row)
        return rows

    def write_manifest(self, path: Path) -> None:
        path.write_text(json.dumps(self.manifest(), indent=1) + "\n")


def parse_find_output(lines: list[str], known_names: set[str]) -> list[Entry]:
    """Entries from `find -printf FIND_FORMAT`; owners must be names we know."""
    entries = []
    for line in lines:
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 6:
            raise BuildError(f"harvest: cannot parse manifest line {line!r} (tab or newline in a file name?)")
        kind_code, mode, owner, group, path, link_target = fields
        kind = _KINDS.get(kind_code)
        if kind is None:
            raise BuildError(f"harvest: {path} is a file type packages cannot carry ({kind_code})")
        for name in (owner, group):
            if name.isdigit():
                raise BuildError(f"harvest: {path} is owned by id {name}, which no declared account has")
            if name not in known_names:
                raise BuildError(f"harvest: {path} is owned by '{name}', which the recipe does not declare")
        entries.append(Entry(path.rstrip("/") or "/", kind, int(mode, 8), owner, group, link_target))
    return entries


def _extract_contents(tar_path: Path, dest_root: Path, parent: str) -> None:
    """Copy regular files and symlinks out of a `docker cp`-style tar into dest_root."""
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            name = PurePosixPath(parent) / member.name
            if ".." in PurePosixPath(member.name).parts:
                raise BuildError(f"harvest: refusing path {member.name!r}")
            target = dest_root / str(name).lstrip("/")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
                target.chmod(0o755 if member.mode & 0o111 else 0o644)
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(member.linkname, target)
            elif member.islnk():
                linked = dest_root / str(PurePosixPath(parent) / member.linkname).lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(linked.read_bytes())
                target.chmod(linked.stat().st_mode & 0o755)
            # FIFOs and devices carry no content: the manifest describes them.


def harvest(sandbox, paths: tuple[str, ...], known_names: set[str], into: Path) -> StagedTree:
    """Read the manifest and contents of `paths` out of a sandbox."""
    lines: list[str] = []
    code = sandbox.run(["find", *paths, "-printf", FIND_FORMAT], on_output=lines.append)
    if code != 0:
        raise BuildError(f"harvest: find {' '.join(paths)} failed inside the sandbox: {' | '.join(lines[-3:])}")
    entries = parse_find_output(lines, known_names | {"root"})
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-harvest-") as tmp:
        for path in paths:
            tar_path = sandbox.get_tar(path, Path(tmp) / "content.tar")
            _extract_contents(tar_path, into, str(PurePosixPath(path).parent))
    return StagedTree(into, tuple(sorted(entries, key=lambda e: e.path)))
