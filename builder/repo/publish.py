"""`qmail-pkg repo publish`: verify everything it is handed, then write the
repository tree, then sign.

Order matters. Every flag, the signing keys, the tree itself (no symlink or
special file anywhere in it) and its state file are checked, and every
artifact admitted (admit.py), before the first byte is written; a refusal
leaves the repository exactly as it was. The tree is locked while a publish
writes to it. Last, the front page and a page per package version are made
from what the tree holds (builder/site/)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import printable
from ..package import PACKAGERS
from ..recipe.model import Recipe
from ..safefs import Folder, FsError, read_file
from ..site import write_site
from .admit import Admission, admit
from .base import PublishError, PublishReport, Settings, State, check_base_url
from .gpg import Signer

MAX_PKG_KEY = 1 << 20


@contextmanager
def _locked(tree: Folder) -> Iterator[None]:
    try:
        fcntl.flock(tree.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PublishError(f"{tree.where}: another publish is writing to this repository") from None
    try:
        yield
    finally:
        fcntl.flock(tree.fd, fcntl.LOCK_UN)


def _private_key_copy(pkg_key: Path, private: Path) -> Path:
    text = str(pkg_key)
    if text.startswith("-"):
        raise PublishError(f"--pkg-key {printable(text)!r}: a file name, not an option")
    try:
        data = read_file(pkg_key, MAX_PKG_KEY, f"--pkg-key {text}")
    except FsError as exc:
        raise PublishError(str(exc)) from None
    copy = private / "pkg-key.pem"
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return copy


def publish(artifact_dir: Path, repo: Path, *, recipe: Recipe, key: str | None, pkg_key: Path | None = None,
            prune: int | None = None, base_url: str = "",
            rebuilt: Path | None = None, require_provenance: bool = False) -> PublishReport:
    if str(repo).startswith("-"):
        raise PublishError(f"--repo {printable(str(repo))!r}: a folder name, not an option")
    base = check_base_url(base_url, repo)
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-publish-") as scratch:
        private = Path(scratch)
        (private / "artifacts").mkdir()
        admissions = admit(artifact_dir, Admission(recipe, require_provenance, rebuilt),
                           private / "artifacts")
        admitted = admissions.artifacts
        formats = sorted({item.format for item in admitted}, key=list(PACKAGERS).index)
        needs_gpg = any(fmt in ("deb", "rpm") for fmt in formats)
        if needs_gpg and not key:
            raise PublishError("--key is required: apt and rpm repositories are signed (GnuPG key id or key file)")
        if "pkg" in formats and pkg_key is None:
            raise PublishError("--pkg-key is required for FreeBSD packages: pkg(8) repositories are signed with an "
                               "RSA key (PEM)")
        key_copy = _private_key_copy(pkg_key, private) if pkg_key is not None and "pkg" in formats else None
        signer = Signer(key) if needs_gpg and key else None
        settings = Settings(base, pkg_key=key_copy)
        try:
            tree = Folder.open(repo, create=True, what=str(repo))
        except FsError as exc:
            raise PublishError(str(exc)) from None
        report = PublishReport(ignored=list(admissions.ignored))
        try:
            with tree, _locked(tree):
                try:
                    tree.check_plain()
                except FsError as exc:
                    raise PublishError(f"{exc}; refusing to write into it") from None
                state = State(tree, str(repo))
                writers = [PACKAGERS[fmt].repository(tree, repo, state, signer, settings) for fmt in formats]
                try:
                    for fmt, writer in zip(formats, writers, strict=True):
                        writer.publish([item for item in admitted if item.format == fmt], prune, report)
                finally:
                    state.save()
                write_site(tree, admitted, state.files, settings, signer.fingerprint if signer else "", report)
        except FsError as exc:
            raise PublishError(str(exc)) from None
        finally:
            if signer is not None:
                signer.close()
    return report


__all__ = ["publish"]
