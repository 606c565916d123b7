"""The apt archive: pool/ shared by every suite, dists/<suite>/ per Debian
release, indexes made by Debian's own apt-ftparchive, Release signed into
InRelease and Release.gpg, the public key exported for `signed-by`.

Indexes are also kept under by-hash/SHA256/<digest> and the Release says
Acquire-By-Hash: a client holding the previous Release keeps fetching the
files it names while the new ones are put in place, and Release/InRelease
are replaced last, each in one rename."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from . import Published, PublishError, PublishReport, State, newest

INDEXES = ("Packages", "Packages.gz", "Packages.xz")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_in(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temporary)
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)


class AptRepository:
    def __init__(self, repo: Path, state: State, signer, *, test: bool = False, base_url: str = "", **_):
        if not shutil.which("apt-ftparchive"):
            raise PublishError("publishing an apt repository needs apt-ftparchive (apt-get install apt-utils)")
        self.repo = repo
        self.state = state
        self.signer = signer
        self.test = test
        self.base_url = base_url or repo.resolve().as_uri()

    def _pool(self, artifact: Published) -> str:
        name = artifact.package
        initial = name[:4] if name.startswith("lib") else name[0]
        return f"pool/main/{initial}/{name}/{artifact.path.name}"

    def publish(self, artifacts: list[Published], prune: int | None, report: PublishReport) -> None:
        suites: set[str] = set()
        for artifact in artifacts:
            if not artifact.suite:
                raise PublishError(f"{artifact.path}: its build record names no Debian suite (target {artifact.target})")
            where = self._pool(artifact)
            identity = _sha256(artifact.path)
            if self.state.check(where, identity):
                report.unchanged.append(where)
            else:
                _copy_in(artifact.path, self.repo / where)
                self.state.record(where, identity)
                report.added.append(where)
            member = f"dists/{artifact.suite}/{artifact.architecture}/{artifact.path.name}"
            self.state.record(member, where)
            suites.add(artifact.suite)
        if prune:
            self._prune(prune, report)
            suites |= {key.split("/")[1] for key in self.state.files if key.startswith("dists/")}
        for suite in sorted(suites):
            self._regenerate(suite, report)
        self.signer.export_public(self.repo / "qmail-pkg-archive-keyring.gpg")
        self.signer.export_public(self.repo / "qmail-pkg-archive-keyring.asc", armor=True)
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
            (self.repo / where).unlink(missing_ok=True)
            self.state.forget(where)
            report.pruned.append(where)

    def _regenerate(self, suite: str, report: PublishReport) -> None:
        members = self._members(suite)
        staging = self.repo / "dists" / f".{suite}.new"
        shutil.rmtree(staging, ignore_errors=True)
        lists = self.repo / ".qmail-pkg" / "lists"
        lists.mkdir(parents=True, exist_ok=True)
        blocks = []
        for arch, paths in sorted(members.items()):
            (staging / "main" / f"binary-{arch}").mkdir(parents=True)
            listing = lists / f"{suite}-{arch}.list"
            listing.write_text("".join(f"{path}\n" for path in sorted(paths)))
            blocks.append(f'BinDirectory "dists/.{suite}.new/main/binary-{arch}" '
                          f'{{ Packages "dists/.{suite}.new/main/binary-{arch}/Packages"; '
                          f'FileList "{listing.relative_to(self.repo)}"; }};')
        config = lists / f"{suite}.conf"
        config.write_text('Dir { ArchiveDir "."; CacheDir ".qmail-pkg"; };\n'
                          'Default { Packages::Compress ". gzip xz"; };\n' + "\n".join(blocks) + "\n")
        self._run(["apt-ftparchive", "generate", str(config.relative_to(self.repo))])
        label = "qmail-syncdir (TEST packages)" if self.test else "qmail-syncdir"
        options = {
            "Origin": "qmail-pkg", "Label": label, "Suite": suite, "Codename": suite,
            "Architectures": " ".join(sorted(members)), "Components": "main", "Acquire-By-Hash": "yes",
            "Description": f"qmail 1.03 with syncdir for {suite}" + (" - TEST PACKAGES, not for real systems" if self.test else ""),
        }
        argv = ["apt-ftparchive"]
        for name, value in options.items():
            argv += ["-o", f"APT::FTPArchive::Release::{name}={value}"]
        release = self._run(argv + ["release", f"dists/.{suite}.new"])
        (staging / "Release").write_bytes(release)
        self.signer.clearsign(staging / "Release", staging / "InRelease")
        self.signer.detach_sign(staging / "Release", staging / "Release.gpg", armor=True)
        self._swap_in(suite, staging, members)
        report.indexes.append(f"dists/{suite}")

    def _swap_in(self, suite: str, staging: Path, members: dict[str, list[str]]) -> None:
        live = self.repo / "dists" / suite
        for arch in members:
            folder = staging / "main" / f"binary-{arch}"
            target = live / "main" / f"binary-{arch}"
            by_hash = target / "by-hash" / "SHA256"
            by_hash.mkdir(parents=True, exist_ok=True)
            for name in INDEXES:  # immutable names first: the current Release still works
                _copy_in(folder / name, by_hash / _sha256(folder / name))
            for name in INDEXES:
                os.replace(folder / name, target / name)
        for name in ("Release.gpg", "Release", "InRelease"):  # what points at the indexes, last
            os.replace(staging / name, live / name)
        shutil.rmtree(staging, ignore_errors=True)

    def _run(self, argv: list[str]) -> bytes:
        result = subprocess.run(argv, cwd=self.repo, capture_output=True)
        if result.returncode != 0:
            raise PublishError(f"{' '.join(argv[:2])} failed: {result.stderr.decode(errors='replace').strip()[-300:]}")
        return result.stdout

    def _write_sources(self, suites: list[str]) -> None:
        """apt sources snippets, one per suite, for /etc/apt/sources.list.d/."""
        folder = self.repo / "apt-sources"
        folder.mkdir(exist_ok=True)
        for suite in suites:
            text = (f"Types: deb\nURIs: {self.base_url}\nSuites: {suite}\nComponents: main\n"
                    "Signed-By: /usr/share/keyrings/qmail-pkg-archive-keyring.gpg\n")
            (folder / f"{suite}.sources").write_text(text)
