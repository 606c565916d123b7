"""Signed package repositories from what `qmail-pkg build` wrote.

One tree serves every target: an apt archive at the top (pool/, dists/
with one suite per Debian release), rpm/<target>/ for each RHEL-family
target, and freebsd/<ABI>/ for each FreeBSD one. Each format's writer is a
module registered in WRITERS.

Rules every writer keeps:
- A published file never changes: publishing the same version again with
  other content is refused (the identity of each published file is kept in
  .qmail-pkg/published.json); the same bytes again change nothing.
- Indexes are regenerated so that a reader never sees a half-written one:
  new content goes beside the old under new names, and the file that
  points at it (Release, repomd.xml, the catalogue) is replaced last.
- Test-only packages (built on a foreign userland) are refused unless
  explicitly allowed, and then the repository says so in its metadata.
- Old versions stay unless --prune N keeps only the newest N.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import QmailPkgError

STATE = ".qmail-pkg/published.json"


class PublishError(QmailPkgError):
    """The artifacts cannot be published as asked."""


@dataclass(frozen=True)
class Published:
    """One artifact to publish, with what its build record says about it."""

    path: Path
    format: str
    version: str
    package: str
    target: str
    family: str
    release: str
    suite: str
    architecture: str
    revision: int
    test_only: bool


@dataclass
class PublishReport:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"added": self.added, "unchanged": self.unchanged, "pruned": self.pruned, "indexes": self.indexes}


def collect(artifact_dir: Path) -> list[Published]:
    """Every artifact named by a build record below artifact_dir."""
    found = []
    records = sorted(artifact_dir.glob("*/*.build.json"))
    if not records:
        raise PublishError(f"{artifact_dir}: no build records (*/*.build.json): give the folder `qmail-pkg build --out` wrote")
    for record_path in records:
        try:
            record = json.loads(record_path.read_text())
            rows = record["artifacts"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PublishError(f"{record_path}: not a build record ({exc})") from None
        if record.get("variant"):
            # a variant (e.g. the power-cut baseline without syncdir) lacks
            # what the package is for: no repository ever carries one
            said = ", ".join(f"{'with' if on else 'without'} {name}" for name, on in sorted(record["variant"].items()))
            raise PublishError(f"{record_path}: a variant build ({said}) is never published; "
                               "build variants into another folder than the one you publish")
        for row in rows:
            path = record_path.parent / row["file"]
            if not path.is_file():
                raise PublishError(f"{record_path}: names {row['file']}, which is not beside it")
            found.append(Published(
                path=path, format=row["format"], version=row.get("version") or record["version"],
                package=record["package"], target=record["target"], family=record["family"],
                release=record.get("release", ""), suite=record.get("suite") or "",
                architecture=record.get("architecture", "amd64"), revision=int(record.get("revision", 0)),
                test_only=bool(record.get("test_only")),
            ))
    return found


class State:
    """What has been published, by repository path -> identity of its content."""

    def __init__(self, repo: Path):
        self.path = repo / STATE
        try:
            self.files: dict[str, str] = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.files = {}
        except ValueError as exc:
            raise PublishError(f"{self.path}: damaged ({exc}); it records what was published, restore it") from None

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
        self.files[where] = identity

    def forget(self, where: str) -> None:
        self.files.pop(where, None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.files, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, self.path)


def version_key(version: str) -> list:
    """Natural order: 1.03-10 after 1.03-9 (our versions differ by revision)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", version)]


def newest(items: Iterable, keep: int, version) -> tuple[list, list]:
    ordered = sorted(items, key=lambda item: version_key(version(item)), reverse=True)
    return ordered[:keep], ordered[keep:]


def publish(artifact_dir: Path, repo: Path, *, key: str | None, pkg_key: Path | None = None,
            prune: int | None = None, allow_test_only: bool = False, formats: Iterable[str] | None = None,
            base_url: str = "") -> PublishReport:
    from .apt import AptRepository
    from .freebsd import PkgRepository
    from .gpg import Signer
    from .rpm import RpmRepository

    writers = {"deb": AptRepository, "rpm": RpmRepository, "pkg": PkgRepository}
    artifacts = [a for a in collect(artifact_dir) if formats is None or a.format in formats]
    if not artifacts:
        raise PublishError(f"{artifact_dir}: nothing to publish")
    test_only = sorted({a.target for a in artifacts if a.test_only})
    if test_only and not allow_test_only:
        raise PublishError(
            f"refusing to publish test-only packages (targets {', '.join(test_only)}: built on a foreign userland "
            "for qmail-pkg's own tests); --allow-test-only publishes them into a repository marked as a test")
    needs_gpg = any(a.format in ("deb", "rpm") for a in artifacts)
    if needs_gpg and not key:
        raise PublishError("--key is required: apt and rpm repositories are signed (GnuPG key id or key file)")
    if any(a.format == "pkg" for a in artifacts) and pkg_key is None:
        raise PublishError("--pkg-key is required for FreeBSD packages: pkg(8) repositories are signed with an RSA key (PEM)")
    repo.mkdir(parents=True, exist_ok=True)
    state = State(repo)
    report = PublishReport()
    signer = Signer(key) if needs_gpg else None
    try:
        for fmt, writer in writers.items():
            chosen = [a for a in artifacts if a.format == fmt]
            if chosen:
                writer(repo, state, signer, pkg_key=pkg_key, test=bool(test_only), base_url=base_url).publish(
                    chosen, prune, report)
    finally:
        state.save()
        if signer is not None:
            signer.close()
    return report
