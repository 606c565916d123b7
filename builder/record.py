"""The build record: what one build made, from what, how, written beside its
artifacts as `<stem>.build.json`.

A BuildRecord is a frozen dataclass that writes itself and reads itself
back. Reading validates everything: a record travels between machines (a
build job's output is a publishing job's input), so it is hostile data until
proven otherwise: bounded in size, every name that may become a path or a
repository key matched against a strict pattern, every number a number,
duplicate keys refused. Every reader (cache, provenance, verify, publish,
the CLI) uses this class, so the record means the same thing everywhere.

The schema is documented in docs/build-record.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import QmailPkgError, printable
from .formats.facts import ContentEntry, PackageFacts
from .safefs import FsError, read_file

SCHEMA = 2
SUFFIX = ".build.json"
MAX_BYTES = 16 << 20  # a real record is about 200 KB
MAX_ITEMS = 100_000  # entries in any list of a record
MAX_TEXT = 4096  # characters in any one string

# Names that can become paths, repository keys or package identities.
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~_-]{0,99}$")
TARGET = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SUITE = re.compile(r"^([a-z][a-z0-9-]{0,31})?$")
RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
ARCHITECTURE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")
FAMILY = re.compile(r"^[a-z][a-z0-9]{0,15}$")
FORMAT = re.compile(r"^[a-z][a-z0-9]{0,7}$")
FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
OWNER = re.compile(r"^([a-z_][a-z0-9_-]{0,31}|#[0-9]{1,10})$")
ABSOLUTE = re.compile(r"^/[^\x00-\x1f\x7f]{0,4095}$")
FIELD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KINDS = ("file", "dir", "symlink", "fifo")


class RecordError(QmailPkgError):
    """A build record is missing, unreadable or not what `qmail-pkg build` writes."""


# -- reading helpers: each names the field that is wrong ---------------------
class _Reader:
    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, message: str) -> RecordError:
        return RecordError(f"{self.where}: {path}: {message}")

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, "must be a list")
        if len(value) > MAX_ITEMS:
            raise self.fail(path, f"more than {MAX_ITEMS} items")
        return value

    def get(self, data: dict[str, Any], key: str, path: str) -> Any:
        if key not in data:
            raise self.fail(f"{path}.{key}" if path else key, "missing")
        return data[key]

    def text(self, data: dict[str, Any], key: str, path: str = "", pattern: re.Pattern[str] | None = None,
             default: str | None = None) -> str:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        value = self.get(data, key, path)
        return self.string(value, name, pattern)

    def string(self, value: Any, name: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        if len(value) > MAX_TEXT:
            raise self.fail(name, f"longer than {MAX_TEXT} characters")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"{printable(value[:80])!r} is not a valid value here")
        return value

    def integer(self, data: dict[str, Any], key: str, path: str = "", low: int = 0, high: int = 2**63 - 1,
                default: int | None = None) -> int:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        value = self.get(data, key, path)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(name, f"must be a whole number from {low} to {high}")
        return value

    def flag(self, data: dict[str, Any], key: str, path: str = "", default: bool | None = None) -> bool:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        value = self.get(data, key, path)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def strings(self, data: dict[str, Any], key: str, path: str = "", pattern: re.Pattern[str] | None = None,
                default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        return tuple(self.string(item, f"{name}[{index}]", pattern)
                     for index, item in enumerate(self.items(self.get(data, key, path), name)))

    def text_map(self, data: dict[str, Any], key: str, path: str = "", default: bool = True) -> dict[str, str]:
        name = f"{path}.{key}" if path else key
        if key not in data and default:
            return {}
        raw = self.mapping(self.get(data, key, path), name)
        if len(raw) > MAX_ITEMS:
            raise self.fail(name, f"more than {MAX_ITEMS} items")
        return {self.string(k, f"{name} key", FIELD_NAME): self.string(v, f"{name}.{k}") for k, v in raw.items()}

    def flags(self, data: dict[str, Any], key: str, path: str = "") -> dict[str, bool]:
        name = f"{path}.{key}" if path else key
        raw = self.mapping(data.get(key, {}), name)
        result = {}
        for option, value in raw.items():
            self.string(option, f"{name} key", FIELD_NAME)
            if not isinstance(value, bool):
                raise self.fail(f"{name}.{option}", "must be true or false")
            result[option] = value
        return result


def _mode(reader: _Reader, value: Any, name: str) -> int:
    text = reader.string(value, name, re.compile(r"^[0-7]{3,6}$"))
    mode = int(text, 8)
    if mode > 0o7777:
        raise reader.fail(name, "is not a permission mode")
    return mode


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
    def read(cls, reader: _Reader, raw: Any, name: str) -> "ManifestEntry":
        data = reader.mapping(raw, name)
        kind = reader.text(data, "type", name)
        if kind not in KINDS:
            raise reader.fail(f"{name}.type", f"must be one of {', '.join(KINDS)}")
        return cls(
            path=reader.text(data, "path", name, ABSOLUTE),
            kind=kind,
            mode=_mode(reader, reader.get(data, "mode", name), f"{name}.mode"),
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


def _read_facts(reader: _Reader, raw: Any, name: str) -> PackageFacts:
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
            mode=_mode(reader, reader.get(row, "mode", where), f"{where}.mode"),
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
    def read(cls, reader: _Reader, raw: Any, name: str) -> "ArtifactRecord":
        data = reader.mapping(raw, name)
        return cls(
            file=reader.text(data, "file", name, FILE),
            format=reader.text(data, "format", name, FORMAT),
            version=reader.text(data, "version", name, VERSION),
            sha256=reader.text(data, "sha256", name, SHA256),
            size=reader.integer(data, "size", name, 1, 1 << 40),
            facts=_read_facts(reader, data["facts"], f"{name}.facts") if "facts" in data else None,
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


@dataclass(frozen=True)
class BuildRecord:
    package: str
    version: str  # upstream version - revision (1.03-1)
    revision: int
    target: str
    family: str
    release: str
    suite: str
    architecture: str  # the recipe's (Debian) spelling
    userland: str
    method: str  # native | cross
    engine: str
    image: ImageRecord
    recipe_path: str
    recipe_sha256: str
    official: bool
    test_only: bool
    options: tuple[tuple[str, bool], ...]
    variant: tuple[tuple[str, bool], ...]
    overridden_sources: tuple[str, ...]
    sources: tuple[SourceRecord, ...]
    patches: tuple[PatchRecord, ...]
    groups: tuple[tuple[str, int], ...]
    users: tuple[UserRecord, ...]
    library_depends: tuple[str, ...]
    steps: tuple[str, ...]
    source_date_epoch: int
    cache_key: str
    artifacts: tuple[ArtifactRecord, ...]
    staged_manifest: tuple[ManifestEntry, ...]
    started: str = ""
    finished: str = ""
    tool: str = ""
    tools: tuple[tuple[str, str], ...] = ()
    durations: tuple[tuple[str, float], ...] = ()
    toolchain: ToolchainRecord | None = None
    # other files written beside the artifacts (.buildinfo, .changes): name -> sha256
    companions: tuple[tuple[str, str], ...] = ()
    schema: int = SCHEMA
    path: Path | None = field(default=None, compare=False)  # where it was read from

    # -- names ---------------------------------------------------------------
    @property
    def stem(self) -> str:
        return f"{self.package}_{self.version}_{self.target}_{self.architecture}"

    @property
    def file_name(self) -> str:
        return f"{self.stem}{SUFFIX}"

    @property
    def provenance_name(self) -> str:
        return f"{self.stem}.intoto.json"

    def artifact(self, name: str) -> ArtifactRecord:
        for row in self.artifacts:
            if row.file == name:
                return row
        raise RecordError(f"{self.file_name}: names no artifact {printable(name)!r}")

    def names(self, name: str) -> bool:
        return any(row.file == name for row in self.artifacts)

    # -- writing -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": self.schema,
            "started": self.started,
            "finished": self.finished,
            "tool": self.tool,
            "tools": dict(self.tools),
            "package": self.package,
            "version": self.version,
            "revision": self.revision,
            "target": self.target,
            "family": self.family,
            "release": self.release,
            "suite": self.suite,
            "architecture": self.architecture,
            "userland": self.userland,
            "method": self.method,
            "test_only": self.test_only,
            "engine": self.engine,
            "image": {"reference": self.image.reference, "id": self.image.identity, **dict(self.image.details)},
            "recipe": {"path": self.recipe_path, "sha256": self.recipe_sha256},
            "official": self.official,
            "options": dict(self.options),
            "variant": dict(self.variant),
            "overridden_sources": list(self.overridden_sources),
            "sources": [{"name": s.name, "sha256": s.sha256, "origin": s.origin, "overridden": s.overridden}
                        for s in self.sources],
            "patches": [{"file": p.file, "source": p.source, "sha256": p.sha256} for p in self.patches],
            "accounts": {
                "groups": dict(self.groups),
                "users": {u.name: {"uid": u.uid, "group": u.group, "home": u.home} for u in self.users},
            },
            "library_depends": list(self.library_depends),
            "steps": list(self.steps),
            "source_date_epoch": self.source_date_epoch,
            "cache_key": self.cache_key,
            "durations": dict(self.durations),
            "artifacts": [row.to_json() for row in self.artifacts],
            "companions": dict(self.companions),
            "staged_manifest": [entry.to_json() for entry in self.staged_manifest],
        }
        if self.toolchain is not None:
            data["toolchain"] = {"name": self.toolchain.name, "version": self.toolchain.version,
                                 "sha256": self.toolchain.sha256, "target": self.toolchain.target}
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, folder: Path) -> Path:
        path = folder / self.file_name
        path.write_text(self.dumps(), encoding="utf-8")
        return path

    # -- reading -------------------------------------------------------------
    @classmethod
    def loads(cls, text: str | bytes, where: str) -> "BuildRecord":
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except RecursionError:
            raise RecordError(f"{where}: nested too deeply to be a build record") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(f"{where}: not a build record (not JSON: {printable(str(exc))[:120]})") from None
        return cls.from_json(data, where)

    @classmethod
    def read(cls, path: Path) -> "BuildRecord":
        try:
            data = read_file(path, MAX_BYTES, str(path))
        except FsError as exc:
            raise RecordError(str(exc)) from None
        return replace_path(cls.loads(data, str(path)), path)

    @classmethod
    def beside(cls, artifact: Path) -> "BuildRecord":
        """The record written beside `artifact` that names it."""
        folder = artifact.parent
        candidates = sorted(folder.glob(f"*{SUFFIX}"))
        for candidate in candidates[:1000]:
            record = cls.read(candidate)
            if record.names(artifact.name):
                return record
        raise RecordError(f"{artifact}: no build record (*{SUFFIX}) beside it names this file")

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "BuildRecord":
        r = _Reader(where)
        data = r.mapping(raw, "(record)")
        schema = r.integer(data, "schema", default=1)
        if schema > SCHEMA:
            raise r.fail("schema", f"version {schema} is newer than this tool reads ({SCHEMA}); update qmail-pkg")
        image = r.mapping(r.get(data, "image", ""), "image")
        recipe = r.mapping(r.get(data, "recipe", ""), "recipe")
        accounts = r.mapping(r.get(data, "accounts", ""), "accounts")
        groups = r.mapping(r.get(accounts, "groups", "accounts"), "accounts.groups")
        users = r.mapping(r.get(accounts, "users", "accounts"), "accounts.users")
        durations = r.mapping(data.get("durations", {}), "durations")
        for stage, seconds in durations.items():
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < 1e7:
                raise r.fail(f"durations.{printable(str(stage))[:40]}", "must be a number of seconds")
        toolchain = data.get("toolchain")
        if toolchain is not None:
            t = r.mapping(toolchain, "toolchain")
            toolchain = ToolchainRecord(r.text(t, "name", "toolchain", FIELD_NAME), r.text(t, "version", "toolchain"),
                                        r.text(t, "sha256", "toolchain", default=""),
                                        r.text(t, "target", "toolchain", default=""))
        sources = []
        for index, item in enumerate(r.items(r.get(data, "sources", ""), "sources")):
            row = r.mapping(item, f"sources[{index}]")
            where_ = f"sources[{index}]"
            sources.append(SourceRecord(r.text(row, "name", where_, FIELD_NAME), r.text(row, "sha256", where_, SHA256),
                                        r.text(row, "origin", where_), r.flag(row, "overridden", where_)))
        patches = []
        for index, item in enumerate(r.items(data.get("patches", []), "patches")):
            row = r.mapping(item, f"patches[{index}]")
            where_ = f"patches[{index}]"
            patches.append(PatchRecord(r.text(row, "file", where_, FILE), r.text(row, "source", where_, FIELD_NAME),
                                       r.text(row, "sha256", where_, SHA256)))
        user_rows = []
        for name, item in users.items():
            r.string(name, "accounts.users key", ACCOUNT)
            row = r.mapping(item, f"accounts.users.{name}")
            where_ = f"accounts.users.{name}"
            user_rows.append(UserRecord(name, r.integer(row, "uid", where_, 0, 2**32 - 1),
                                        r.text(row, "group", where_, ACCOUNT), r.text(row, "home", where_, ABSOLUTE)))
        group_rows = []
        for name, gid in groups.items():
            r.string(name, "accounts.groups key", ACCOUNT)
            group_rows.append((name, r.integer(groups, name, "accounts.groups", 0, 2**32 - 1)))
        companions = r.text_map(data, "companions")
        for name, digest in companions.items():
            r.string(name, "companions key", FILE)
            r.string(digest, f"companions.{name}", SHA256)
        record = cls(
            schema=schema,
            package=r.text(data, "package", "", PACKAGE),
            version=r.text(data, "version", "", VERSION),
            revision=r.integer(data, "revision", "", 0, 999999),
            target=r.text(data, "target", "", TARGET),
            family=r.text(data, "family", "", FAMILY),
            release=r.text(data, "release", "", RELEASE),
            suite=r.text(data, "suite", "", SUITE, default=""),
            architecture=r.text(data, "architecture", "", ARCHITECTURE),
            userland=r.text(data, "userland", "", FAMILY, default=""),
            method=r.text(data, "method", "", re.compile(r"^(native|cross)$"), default="native"),
            engine=r.text(data, "engine", "", default="local"),
            image=ImageRecord(r.text(image, "reference", "image"), r.text(image, "id", "image"),
                              tuple(sorted((r.string(k, "image key", FIELD_NAME), r.string(v, f"image.{k}"))
                                           for k, v in image.items() if k not in ("reference", "id")))),
            recipe_path=r.text(recipe, "path", "recipe"),
            recipe_sha256=r.text(recipe, "sha256", "recipe", SHA256),
            official=r.flag(data, "official"),
            test_only=r.flag(data, "test_only", default=False),
            options=tuple(sorted(r.flags(data, "options").items())),
            variant=tuple(sorted(r.flags(data, "variant").items())),
            overridden_sources=r.strings(data, "overridden_sources", "", FIELD_NAME, default=()),
            sources=tuple(sources),
            patches=tuple(patches),
            groups=tuple(group_rows),
            users=tuple(user_rows),
            library_depends=r.strings(data, "library_depends", default=()),
            steps=r.strings(data, "steps", default=()),
            source_date_epoch=r.integer(data, "source_date_epoch", "", 0, 253402300799),
            cache_key=r.text(data, "cache_key", "", SHA256),
            artifacts=tuple(ArtifactRecord.read(r, item, f"artifacts[{index}]")
                            for index, item in enumerate(r.items(r.get(data, "artifacts", ""), "artifacts"))),
            staged_manifest=tuple(ManifestEntry.read(r, item, f"staged_manifest[{index}]")
                                  for index, item in enumerate(r.items(r.get(data, "staged_manifest", ""),
                                                                       "staged_manifest"))),
            started=r.text(data, "started", default=""),
            finished=r.text(data, "finished", default=""),
            tool=r.text(data, "tool", default=""),
            tools=tuple(sorted(r.text_map(data, "tools").items())),
            durations=tuple(sorted((str(k), float(v)) for k, v in durations.items())),
            toolchain=toolchain,
            companions=tuple(sorted(companions.items())),
        )
        if not record.artifacts:
            raise r.fail("artifacts", "the record names no artifact")
        names = [row.file for row in record.artifacts]
        if len(set(names)) != len(names):
            raise r.fail("artifacts", "the same file is named twice")
        return record


def replace_path(record: BuildRecord, path: Path) -> BuildRecord:
    object.__setattr__(record, "path", path)
    return record


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number a record holds")


__all__ = ["ArtifactRecord", "BuildRecord", "ImageRecord", "ManifestEntry", "PatchRecord", "RecordError",
           "SourceRecord", "ToolchainRecord", "UserRecord", "facts_to_json"]
