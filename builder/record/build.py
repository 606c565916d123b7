"""The build record: what one build made, from what, how, written beside its
artifacts as `<stem>.build.json`.

A BuildRecord is a frozen dataclass that writes itself and reads itself
back. Reading validates everything: a record travels between machines (a
build job's output is a publishing job's input), so it is hostile data until
proven otherwise: bounded in size, every name that may become a path or a
repository key matched against a strict pattern (reading.py), every number a
number, duplicate keys refused. Every reader (cache, provenance, verify,
publish, the CLI) uses this class, so the record means the same thing
everywhere. The schema is documented in docs/build-record.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import printable
from ..safefs import FsError, read_file
from .parts import (
    ArtifactRecord,
    ImageRecord,
    ManifestEntry,
    PatchRecord,
    SourceRecord,
    ToolchainRecord,
    UserRecord,
)
from .reading import (
    ABSOLUTE,
    ACCOUNT,
    ARCHITECTURE,
    FAMILY,
    FIELD_NAME,
    FILE,
    MAX_BYTES,
    PACKAGE,
    RELEASE,
    SCHEMA,
    SHA256,
    SUFFIX,
    SUITE,
    TARGET,
    VERSION,
    Reader,
    RecordError,
    strict_json,
)


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
    # written by qmail-pkg before it cross-compiled: a package made on a
    # foreign userland for its own tests (read, so that publish can refuse it)
    test_only: bool = False
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
            **({"test_only": True} if self.test_only else {}),
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
        return cls.from_json(strict_json(text, where, "a build record"), where)

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
        r = Reader(where)
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
        for name, _gid in groups.items():
            r.string(name, "accounts.groups key", ACCOUNT)
            group_rows.append((name, r.integer(groups, name, "accounts.groups", 0, 2**32 - 1)))
        companions = r.mapping(data.get("companions", {}), "companions")  # file names: '+' as in 1.03-1+deb12
        if len(companions) > 100:
            raise r.fail("companions", "more than 100 files")
        for name, digest in companions.items():
            r.string(name, "companions key", FILE)
            r.string(digest, f"companions.{printable(name)[:80]}", SHA256)
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
