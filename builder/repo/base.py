"""What every repository writer shares: the artifacts it is handed (already
verified), the record of what the tree has published, the report, and the
checks on names and URLs that become paths or land in files users install.

Nothing here imports a writer: writers import this module, and each format's
packager names its writer (builder/package/), so adding a format touches
neither this module nor the other writers."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from ..errors import QmailPkgError, printable
from ..evidence import Evidence
from ..formats.facts import PackageFacts
from ..record import FILE, PACKAGE, SHA256, SUITE, TARGET, VERSION, ArtifactRecord, BuildRecord
from ..safefs import Folder

STATE_FOLDER = ".qmail-pkg"
STATE_FILE = "published.json"
MAX_STATE = 16 << 20
ABI = re.compile(r"^FreeBSD:[0-9]{1,3}:[a-z0-9_]{1,16}$")
ARCH = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")
RPM_IDENTITY = re.compile(r"^[0-9a-f]{64}:[0-9a-f]{32,128}$")


class PublishError(QmailPkgError):
    """The artifacts cannot be published as asked."""


@dataclass(frozen=True)
class Admitted:
    """One artifact that passed every check before signing: `path` is a
    private copy of exactly the bytes that were checked (what is written
    into the tree), `facts` what it says about itself."""

    path: Path
    record: BuildRecord
    row: ArtifactRecord
    facts: PackageFacts
    format: str  # its packager's (deb, rpm, pkg): the packager names its writer, so it sits above this module
    provenance: str = ""  # the in-toto statement beside the record, when it names these bytes
    evidence: tuple[Evidence, ...] = ()  # what was checked on exactly these bytes (beside.py)

    @property
    def name(self) -> str:
        return self.row.file


@dataclass
class PublishReport:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # evidence or statements about other bytes, and why
    pages: list[str] = field(default_factory=list)  # the front page and one page per package version

    def as_dict(self) -> dict:
        return {"added": self.added, "unchanged": self.unchanged, "pruned": self.pruned, "indexes": self.indexes,
                "ignored": self.ignored, "pages": self.pages}


@dataclass(frozen=True)
class Settings:
    """What every writer is told about the publish."""

    base_url: str  # checked by check_base_url, no trailing slash
    pkg_key: Path | None = None  # a private copy of the RSA key for FreeBSD catalogues


@dataclass(frozen=True)
class Listed:
    """One published package file, as the state file knows it."""

    area: str  # where it is published: the suite, target or ABI
    architecture: str  # as the format spells it
    package: str
    version: str  # as the format spells it
    file: str
    path: tuple[str, ...]  # its place in the tree


@dataclass(frozen=True)
class Instructions:
    """How a user points a system at one area of the tree: the README's
    snippet, filled in with the base URL."""

    area: str
    # (key file in the tree, where it goes on the user's system; "": the tool fetches it)
    keys: tuple[tuple[str, str], ...]
    snippet: str  # the snippet's file in the tree
    destination: str  # where it goes on the user's system
    text: str
    command: str  # what the user runs then


class RepositoryWriter(Protocol):
    """One format's part of the tree, and what the front page says of it."""

    label: ClassVar[str]  # the systems that install from it, and their tool
    area: ClassVar[str]  # what its areas are called (Suite, Target, ABI)
    keys: ClassVar[tuple[str, ...]]  # the public key files it writes at the top of the tree
    signature: ClassVar[str]  # openpgp | rsa

    def __init__(self, tree: Folder, root: Path, state: "State", signer, settings: Settings): ...

    def publish(self, artifacts: list[Admitted], prune: int | None, report: PublishReport) -> None: ...

    @staticmethod
    def listing(files: dict[str, str]) -> list[Listed]:
        """Every package of this format the state file names."""

    @staticmethod
    def instructions(area: str, package: str, settings: Settings) -> Instructions:
        """What a user installs from one area with."""


# -- names and keys -----------------------------------------------------------
def pool_path(package: str, file: str) -> tuple[str, ...]:
    name = checked(package, PACKAGE, "package name")
    initial = name[:4] if name.startswith("lib") else name[0]
    return ("pool", "main", initial, name, checked(file, FILE, "file name"))


def checked(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise PublishError(f"{what} {printable(str(value))[:80]!r} cannot be a name in a repository")
    return value


# Every key the state file may hold, by its shape: repository paths (with
# what they map to) of each writer. Anything else is refused before --prune
# or any writer acts on it.
_STATE_KEYS = (
    (re.compile(r"^pool/main/(lib[a-z0-9]|[a-z0-9])/[a-z0-9][a-z0-9+.-]{0,99}/[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$"),
     SHA256),
    (re.compile(r"^dists/[a-z][a-z0-9-]{0,31}/[a-z0-9][a-z0-9_]{0,15}/[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$"),
     re.compile(r"^pool/main/(lib[a-z0-9]|[a-z0-9])/[a-z0-9][a-z0-9+.-]{0,99}/[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$")),
    (re.compile(r"^rpm/[a-z0-9][a-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$"), RPM_IDENTITY),
    (re.compile(r"^freebsd/FreeBSD:[0-9]{1,3}:[a-z0-9_]{1,16}/All/[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$"), SHA256),
)


class State:
    """What has been published, by repository path -> identity of its content."""

    def __init__(self, tree: Folder, where: str):
        self.tree = tree
        self.where = f"{where}/{STATE_FOLDER}/{STATE_FILE}"
        self.files: dict[str, str] = {}
        if tree.lstat(STATE_FOLDER) is None:
            return
        with tree.sub(STATE_FOLDER) as folder:
            if folder.lstat(STATE_FILE) is None:
                return
            text = folder.read(STATE_FILE, MAX_STATE)
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PublishError(f"{self.where}: damaged ({printable(str(exc))[:100]}); it records what was "
                               "published, restore it") from None
        if not isinstance(data, dict):
            raise PublishError(f"{self.where}: damaged (not a mapping); restore it")
        for key, value in data.items():
            if not isinstance(key, str) or not isinstance(value, str) or not _known(key, value):
                raise PublishError(f"{self.where}: entry {printable(str(key))[:100]!r} is not one this tool writes; "
                                   "restore the file (nothing was changed)")
        self.files = data

    def check(self, where: str, identity: str) -> bool:
        """True when the same content is published there already; refuses other content."""
        known = self.files.get(where)
        if known is None:
            return False
        if known != identity:
            raise PublishError(
                f"{where} is published already with other content; a repository never changes what a published "
                "version means: build it with a new --revision")
        return True

    def record(self, where: str, identity: str) -> None:
        if not _known(where, identity):
            raise PublishError(f"internal: state entry {where!r} has no known shape")
        self.files[where] = identity

    def forget(self, where: str) -> None:
        self.files.pop(where, None)

    def save(self) -> None:
        with self.tree.sub(STATE_FOLDER, create=True) as folder:
            folder.write(STATE_FILE, (json.dumps(self.files, indent=1, sort_keys=True) + "\n").encode())


def _known(key: str, value: str) -> bool:
    return any(shape.match(key) and identity.match(value) for shape, identity in _STATE_KEYS)


def split_key(key: str) -> tuple[str, ...]:
    """A validated state key as path components (every one a plain name)."""
    return tuple(key.split("/"))


# -- what users are told to install --------------------------------------------
def check_base_url(text: str, root: Path) -> str:
    """The URL users fetch the tree from, as it will be written into the apt
    sources, .repo and pkg snippets: a URL and nothing else (no whitespace,
    quotes or control characters that could add a line or an option)."""
    if not text:
        return root.resolve().as_uri()
    if len(text) > 2048 or re.search(r"[\x00-\x20\x7f-\x9f\"'`\\<>{}|^\u2028\u2029]", text):
        raise PublishError(f"--base-url {printable(text)[:100]!r}: not a URL (whitespace, quotes, braces or control "
                           "characters)")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https", "file") or parts.query or parts.fragment or "#" in text or "?" in text:
        raise PublishError(f"--base-url {printable(text)[:100]!r}: must be an http://, https:// or file: URL without "
                           "a query or fragment")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise PublishError(f"--base-url {printable(text)[:100]!r}: names no host")
    if parts.username or parts.password:
        raise PublishError(f"--base-url {printable(text)[:100]!r}: holds credentials; users would see them")
    return text.rstrip("/")


def version_key(version: str) -> list:
    """Natural order: 1.03-10 after 1.03-9 (our versions differ by revision)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version)]


def newest(items, keep: int, version) -> tuple[list, list]:
    ordered = sorted(items, key=lambda item: version_key(version(item)), reverse=True)
    return ordered[:keep], ordered[keep:]


__all__ = ["ABI", "ARCH", "Admitted", "Instructions", "Listed", "PublishError", "PublishReport", "RepositoryWriter",
           "Settings", "State", "SUITE", "TARGET", "VERSION", "check_base_url", "checked", "newest", "pool_path",
           "split_key", "version_key"]
