"""The apt archive: pool/ shared by every suite, dists/<suite>/ per Debian
release, Packages indexes and the Release file written here from the
packages' own control fields and the verified copies' digests, Release
signed into InRelease and Release.gpg, the public key exported for
`signed-by`.

Indexes are also kept under by-hash/SHA256/<digest> and the Release says
Acquire-By-Hash: a client holding the previous Release keeps fetching the
files it names while the new ones are put in place, and Release/InRelease
are replaced last, each in one rename. Every write goes through the tree's
folder descriptors (builder/safefs.py): nothing is written through a link."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import lzma
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from ..formats.debfile import read_deb_control
from ..safefs import Folder
from .base import (
    SUITE,
    Admitted,
    Instructions,
    Listed,
    PublishError,
    PublishReport,
    Settings,
    State,
    checked,
    newest,
    pool_path,
    split_key,
)

INDEXES = ("Packages", "Packages.gz", "Packages.xz")
MAX_DEB = 2 << 30
KEYRING = "qmail-pkg-archive-keyring.gpg"
KEYRING_ARMORED = "qmail-pkg-archive-keyring.asc"


def _digests(data: bytes) -> dict[str, str]:
    return {name: hashlib.new(algorithm, data).hexdigest()
            for name, algorithm in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"))}


def stanza(control: list[tuple[str, str]], filename: str, data: bytes) -> str:
    """One Packages entry: the control fields as the package has them, then
    where the file is and its digests."""
    fields = [field for field in control if field[0] == "Package"] + [f for f in control if f[0] != "Package"]
    digests = _digests(data)
    lines = [f"{name}: {value}" for name, value in fields]
    lines += [f"Filename: {filename}", f"Size: {len(data)}", f"MD5sum: {digests['MD5Sum']}",
              f"SHA1: {digests['SHA1']}", f"SHA256: {digests['SHA256']}"]
    return "\n".join(lines) + "\n"


def sources_text(base_url: str, suite: str) -> str:
    """The deb822 sources entry for one suite (apt-sources/<suite>.sources)."""
    return (f"Types: deb\nURIs: {base_url}\nSuites: {suite}\nComponents: main\n"
            f"Signed-By: /usr/share/keyrings/{KEYRING}\n")


class AptRepository:
    label: ClassVar[str] = "Debian and derivatives (apt)"
    area: ClassVar[str] = "Suite"
    keys: ClassVar[tuple[str, ...]] = (KEYRING, KEYRING_ARMORED)
    signature: ClassVar[str] = "openpgp"

    @staticmethod
    def listing(files: dict[str, str]) -> list[Listed]:
        found = []
        for key, where in files.items():
            parts = key.split("/")
            if parts[0] == "dists":
                name, _, rest = parts[3].partition("_")
                version = rest.partition("_")[0]
                found.append(Listed(parts[1], parts[2], name, version, parts[3], split_key(where)))
        return found

    @staticmethod
    def instructions(area: str, package: str, settings: Settings) -> Instructions:
        return Instructions(area, ((KEYRING, f"/usr/share/keyrings/{KEYRING}"),), f"apt-sources/{area}.sources",
                            f"/etc/apt/sources.list.d/{package}.sources", sources_text(settings.base_url, area),
                            f"apt update && apt install {package}")

    def __init__(self, tree: Folder, root: Path, state: State, signer, settings: Settings):
        self.tree = tree
        self.root = root
        self.state = state
        self.signer = signer
        self.settings = settings

    def publish(self, artifacts: list[Admitted], prune: int | None, report: PublishReport) -> None:
        suites: set[str] = set()
        for artifact in artifacts:
            suite = checked(artifact.record.suite, SUITE, "suite")
            if not suite:
                raise PublishError(f"{artifact.name}: its build record names no Debian suite "
                                   f"(target {artifact.record.target})")
            parts = pool_path(artifact.record.package, artifact.name)
            where = "/".join(parts)
            identity = artifact.row.sha256
            if self.state.check(where, identity):
                report.unchanged.append(where)
            else:
                with self.tree.sub(*parts[:-1], create=True) as folder:
                    folder.put(parts[-1], artifact.path)
                self.state.record(where, identity)
                report.added.append(where)
            self.state.record(f"dists/{suite}/{artifact.facts.architecture}/{artifact.name}", where)
            suites.add(suite)
        if prune:
            self._prune(prune, report)
            suites |= {key.split("/")[1] for key in self.state.files if key.startswith("dists/")}
        for suite in sorted(suites):
            self._regenerate(suite, report)
        for name, armor in ((KEYRING, False), (KEYRING_ARMORED, True)):
            self.tree.write(name, self.signer.public_key(armor=armor))
        self._write_sources(sorted(suites))

    def _members(self, suite: str) -> dict[str, list[str]]:
        """pool paths of a suite, by architecture."""
        found: dict[str, list[str]] = {}
        for key, where in self.state.files.items():
            parts = key.split("/")
            if parts[0] == "dists" and parts[1] == suite:
                found.setdefault(parts[2], []).append(where)
        return found

    def _prune(self, keep: int, report: PublishReport) -> None:
        groups: dict[tuple[str, str, str], list[str]] = {}
        for key in [k for k in self.state.files if k.startswith("dists/")]:
            _, suite, arch, name = key.split("/")
            groups.setdefault((suite, arch, name.split("_")[0]), []).append(key)
        for members in groups.values():
            _, dropped = newest(members, keep, lambda key: key.rsplit("_", 2)[-2])
            for key in dropped:
                self.state.forget(key)
        referenced = {where for key, where in self.state.files.items() if key.startswith("dists/")}
        for where in [k for k in self.state.files if k.startswith("pool/") and k not in referenced]:
            *folders, name = split_key(where)
            if self.tree.lstat(folders[0]) is not None:
                with self.tree.sub(*folders) as folder:
                    folder.unlink(name)
            self.state.forget(where)
            report.pruned.append(where)

    def _index(self, paths: list[str]) -> bytes:
        entries = []
        for where in sorted(paths):
            *folders, name = split_key(where)
            with self.tree.sub(*folders) as folder:
                data = folder.read(name, MAX_DEB)
            entries.append(stanza(read_deb_control(Path(where), data), where, data))
        return "\n".join(entries).encode()

    def _regenerate(self, suite: str, report: PublishReport) -> None:
        members = self._members(suite)
        files: dict[str, bytes] = {}
        for arch, paths in sorted(members.items()):
            packages = self._index(paths)
            files[f"main/binary-{arch}/Packages"] = packages
            files[f"main/binary-{arch}/Packages.gz"] = gzip.compress(packages, compresslevel=9, mtime=0)
            files[f"main/binary-{arch}/Packages.xz"] = lzma.compress(packages, preset=6)
        release = self._release(suite, sorted(members), files)
        with tempfile.TemporaryDirectory(prefix="qmail-pkg-release-") as private:
            source = Path(private) / "Release"
            source.write_bytes(release)
            signed = {"Release": release,
                      "InRelease": self.signer.clearsign(source, Path(private) / "InRelease"),
                      "Release.gpg": self.signer.detach_sign(source, Path(private) / "Release.gpg", armor=True)}
        with self.tree.sub("dists", suite, create=True) as live:
            for path, data in files.items():
                folders = path.split("/")[:-1]
                with live.sub(*folders, "by-hash", "SHA256", create=True) as by_hash:
                    by_hash.write(hashlib.sha256(data).hexdigest(), data)  # immutable names first
            for path, data in files.items():
                *folders, name = path.split("/")
                with live.sub(*folders, create=True) as folder:
                    folder.write(name, data)
            for name in ("Release.gpg", "Release", "InRelease"):  # what points at the indexes, last
                live.write(name, signed[name])
        report.indexes.append(f"dists/{suite}")

    def _release(self, suite: str, architectures: list[str], files: dict[str, bytes]) -> bytes:
        fields = [
            ("Origin", "qmail-pkg"),
            ("Label", "qmail-syncdir"),
            ("Suite", suite),
            ("Codename", suite),
            ("Date", email.utils.formatdate(time.time(), usegmt=True)),
            ("Architectures", " ".join(architectures)),
            ("Components", "main"),
            ("Acquire-By-Hash", "yes"),
            ("Description", f"qmail 1.03 with syncdir for {suite}"),
        ]
        text = "".join(f"{name}: {value}\n" for name, value in fields)
        digests = {path: _digests(data) for path, data in files.items()}
        for algorithm in ("MD5Sum", "SHA1", "SHA256"):
            text += f"{algorithm}:\n" + "".join(f" {digests[path][algorithm]} {len(files[path]):>8} {path}\n"
                                               for path in sorted(files))
        return text.encode()

    def _write_sources(self, suites: list[str]) -> None:
        """apt sources snippets, one per suite, for /etc/apt/sources.list.d/."""
        with self.tree.sub("apt-sources", create=True) as folder:
            for suite in suites:
                folder.write(f"{suite}.sources", sources_text(self.settings.base_url, suite).encode())


__all__ = ["AptRepository", "stanza"]
