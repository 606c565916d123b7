"""The parts of a build record: the staged manifest, each artifact with the
facts read back from it, sources, patches, accounts, the image and the
toolchain. Each part writes itself and reads itself back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..formats.facts import ContentEntry, PackageFacts
from .reading import ABSOLUTE, FIELD_NAME, FILE, FORMAT, KINDS, OWNER, PACKAGE, SHA256, VERSION, Reader, read_mode


# -- the record's parts ------------------------------------------------------
@dataclass(frozen=True)
class ManifestEntry:
    """One entry of the staged tree: what `make setup` installed (and what the
    package added), with owner and mode."""

    path: str
    kind: str
    mode: int
    owner: str
    group: str
    link: str = ""
    sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"path": self.path, "type": self.kind, "mode": f"{self.mode:04o}", "owner": self.owner,
                               "group": self.group}
        if self.kind == "symlink":
            row["target"] = self.link
        if self.kind == "file":
            row["sha256"] = self.sha256
        return row

    @classmethod
    def read(cls, reader: Reader, raw: Any, name: str) -> "ManifestEntry":
        data = reader.mapping(raw, name)
        kind = reader.text(data, "type", name)
        if kind not in KINDS:
            raise reader.fail(f"{name}.type", f"must be one of {', '.join(KINDS)}")
        return cls(
            path=reader.text(data, "path", name, ABSOLUTE),
            kind=kind,
            mode=read_mode(reader, reader.get(data, "mode", name), f"{name}.mode"),
            owner=reader.text(data, "owner", name, OWNER),
            group=reader.text(data, "group", name, OWNER),
            link=reader.text(data, "target", name, default="") if kind == "symlink" else "",
            sha256=reader.text(data, "sha256", name, SHA256) if kind == "file" else "",
        )


def facts_to_json(facts: PackageFacts) -> dict[str, Any]:
    return {
        "name": facts.name,
        "version": facts.version,
        "architecture": facts.architecture,
        "fields": dict(facts.fields),
        "relations": {name: list(values) for name, values in facts.relations},
        "contents": [_content_json(entry) for entry in facts.contents],
        "scripts": dict(facts.scripts),
    }


def _content_json(entry: ContentEntry) -> dict[str, Any]:
    row: dict[str, Any] = {"path": entry.path, "type": entry.kind, "mode": f"{entry.mode:04o}", "owner": entry.owner,
                           "group": entry.group}
    if entry.sha256:
        row["sha256"] = entry.sha256
    if entry.link:
        row["target"] = entry.link
    return row


def read_facts(reader: Reader, raw: Any, name: str) -> PackageFacts:
    data = reader.mapping(raw, name)
    relations = reader.mapping(data.get("relations", {}), f"{name}.relations")
    contents = []
    for index, item in enumerate(reader.items(data.get("contents", []), f"{name}.contents")):
        where = f"{name}.contents[{index}]"
        row = reader.mapping(item, where)
        kind = reader.text(row, "type", where)
        if kind not in KINDS:
            raise reader.fail(f"{where}.type", f"must be one of {', '.join(KINDS)}")
        contents.append(ContentEntry(
            path=reader.text(row, "path", where, ABSOLUTE), kind=kind,
            mode=read_mode(reader, reader.get(row, "mode", where), f"{where}.mode"),
            owner=reader.text(row, "owner", where, OWNER), group=reader.text(row, "group", where, OWNER),
            sha256=reader.text(row, "sha256", where, SHA256, default=""),
            link=reader.text(row, "target", where, default="")))
    scripts = reader.text_map(data, "scripts", name)
    for script, digest in scripts.items():
        reader.string(digest, f"{name}.scripts.{script}", SHA256)
    return PackageFacts(
        name=reader.text(data, "name", name, PACKAGE),
        version=reader.text(data, "version", name, VERSION),
        architecture=reader.text(data, "architecture", name, re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.-]{0,63}$")),
        fields=tuple(sorted(reader.text_map(data, "fields", name).items())),
        relations=tuple(sorted((reader.string(key, f"{name}.relations key", FIELD_NAME),
                                reader.strings(relations, key, f"{name}.relations")) for key in relations)),
        contents=tuple(contents),
        scripts=tuple(sorted(scripts.items())),
    )


@dataclass(frozen=True)
class ArtifactRecord:
    """One package file the build wrote, and what it says about itself."""

    file: str
    format: str
    version: str  # as its format writes it
    sha256: str
    size: int
    facts: PackageFacts | None = None  # read back from the file at build time

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"file": self.file, "format": self.format, "version": self.version,
                               "sha256": self.sha256, "size": self.size}
        if self.facts is not None:
            row["facts"] = facts_to_json(self.facts)
        return row

    @classmethod
    def read(cls, reader: Reader, raw: Any, name: str) -> "ArtifactRecord":
        data = reader.mapping(raw, name)
        return cls(
            file=reader.text(data, "file", name, FILE),
            format=reader.text(data, "format", name, FORMAT),
            version=reader.text(data, "version", name, VERSION),
            sha256=reader.text(data, "sha256", name, SHA256),
            size=reader.integer(data, "size", name, 1, 1 << 40),
            facts=read_facts(reader, data["facts"], f"{name}.facts") if "facts" in data else None,
        )


@dataclass(frozen=True)
class SourceRecord:
    name: str
    sha256: str
    origin: str  # the cache path, URL or override it came from
    overridden: bool


@dataclass(frozen=True)
class PatchRecord:
    file: str
    source: str
    sha256: str


@dataclass(frozen=True)
class UserRecord:
    name: str
    uid: int
    group: str
    home: str


@dataclass(frozen=True)
class ImageRecord:
    """What the build ran in: an image (Docker) or a base release (jail)."""

    reference: str
    identity: str
    details: tuple[tuple[str, str], ...] = ()  # suite, definition hash, package versions

    def detail(self, key: str) -> str:
        return dict(self.details).get(key, "")


@dataclass(frozen=True)
class ToolchainRecord:
    """The compiler a cross build used, pinned."""

    name: str  # zig, gcc-aarch64-linux-gnu...
    version: str
    sha256: str = ""  # of the distribution file it came from (the ziglang wheel)
    target: str = ""  # the compiler's target (x86_64-freebsd.14.0-none)
