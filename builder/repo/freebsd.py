"""FreeBSD pkg(8) repositories: freebsd/<ABI>/ with All/*.pkg and the
catalogue pkg reads (meta.conf, packagesite.pkg, data.pkg), built here from
the packages' own manifests and signed with an RSA key as `pkg repo` signs:
the signature member holds RSA (PKCS#1 v1.5, SHA-256) over the hex SHA-256
of the catalogue file, then a NUL. On a FreeBSD host, `pkg repo` itself
writes the catalogue.

The catalogue files are replaced after the packages are in place and
meta.conf last, each in one rename."""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import ClassVar

import zstandard

from ..errors import printable
from ..formats.pkgfile import file_sum, read_pkg, urldecode
from ..safefs import Folder
from .base import (
    ABI,
    Admitted,
    Instructions,
    Listed,
    PublishError,
    PublishReport,
    Settings,
    State,
    checked,
    newest,
    split_key,
    version_key,
)

META = ('version = 2;\npacking_format = "tzst";\nmanifests = "packagesite.yaml";\ndata = "data";\n'
        'filesite = "files";\nmanifests_archive = "packagesite";\nfilesite_archive = "files";\n')
# the order pkg writes a catalogue entry's keys in
ENTRY_KEYS = ("name", "origin", "version", "comment", "maintainer", "www", "abi", "arch", "prefix", "sum",
              "flatsize", "path", "repopath", "licenselogic", "licenses", "pkgsize", "desc", "deps", "categories",
              "users", "groups", "conflicts", "provides", "requires", "options", "annotations")


MAX_PKG = 2 << 30
PUBLIC_KEY = "qmail-pkg-freebsd.pub"


def newest_of_each(entries: list[dict]) -> list[dict]:
    """The newest version of each package name, as a ports tree's repository
    holds one: with two listed, pkg(8) upgrades to the newer but `pkg
    version -vR` compares an install with the older and calls it up to date.
    Older files stay in All/ until --prune removes them."""
    kept: dict[str, dict] = {}
    for entry in entries:
        held = kept.get(entry["name"])
        if held is None or version_key(entry["version"]) > version_key(held["version"]):
            kept[entry["name"]] = entry
    return [kept[name] for name in sorted(kept)]


def catalogue_entry(data: bytes, repopath: str) -> dict:
    """What `pkg repo` lists for one package: its compact manifest, decoded,
    with the package file's checksum, size and path."""
    entry = dict(read_pkg(Path(repopath), data).compact)
    entry["desc"] = urldecode(entry.get("desc", ""))
    if "licenses" in entry:
        entry["licenses"] = sorted(entry["licenses"])
    entry.update(sum=file_sum(data), pkgsize=len(data), path=repopath, repopath=repopath)
    return {key: entry[key] for key in ENTRY_KEYS if key in entry}


def sign(data: bytes, key: Path) -> bytes:
    digest = hashlib.sha256(data).hexdigest().encode()
    result = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=digest, capture_output=True)
    if result.returncode != 0:
        raise PublishError(f"--pkg-key: cannot sign the catalogue with it: "
                           f"{printable(result.stderr.decode(errors='replace').strip()[-200:])}")
    return result.stdout + b"\0"


def _archive(member: str, data: bytes, signature: bytes | None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in ([("signature", signature)] if signature is not None else []) + [(member, data)]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uname, info.gname = len(content), 0o644, "root", "wheel"
            tar.addfile(info, io.BytesIO(content))
    return zstandard.ZstdCompressor(level=19).compress(raw.getvalue())


CONF = "qmail-pkg-freebsd.conf"


PACKAGE_FILE_TAIL = re.compile(r"\.freebsd[0-9]+\.[a-z0-9_]+$")


def conf_text(settings: Settings) -> str:
    """The pkg(8) repository configuration (for /usr/local/etc/pkg/repos/)."""
    return (f"# qmail-syncdir: /usr/local/etc/pkg/repos/qmail-pkg.conf\n"
            f'qmail-pkg: {{\n  url: "{settings.base_url}/freebsd/${{ABI}}",\n  signature_type: "pubkey",\n'
            f'  pubkey: "/usr/local/etc/ssl/{PUBLIC_KEY}",\n  enabled: yes\n}}\n')


def name_and_version(file: str) -> tuple[str, str]:
    """NAME and VERSION of a package file as the packager names it
    (NAME-VERSION.freebsdN.ARCH.pkg), or as pkg does (NAME-VERSION.pkg)."""
    stem = PACKAGE_FILE_TAIL.sub("", file.removesuffix(".pkg"))
    name, _, version = stem.rpartition("-")
    return name, version


class PkgRepository:
    label: ClassVar[str] = "FreeBSD (pkg)"
    area: ClassVar[str] = "ABI"
    keys: ClassVar[tuple[str, ...]] = (PUBLIC_KEY,)
    signature: ClassVar[str] = "rsa"  # pkg(8) pubkey: known by the sha256 of the key file, as pkg's fingerprints are

    @staticmethod
    def listing(files: dict[str, str]) -> list[Listed]:
        found = []
        for key in files:
            parts = key.split("/")
            if parts[0] == "freebsd":
                name, version = name_and_version(parts[3])
                found.append(Listed(parts[1], parts[1].rsplit(":", 1)[-1], name, version, parts[3], split_key(key)))
        return found

    @staticmethod
    def instructions(area: str, package: str, settings: Settings) -> Instructions:
        return Instructions(area, ((PUBLIC_KEY, f"/usr/local/etc/ssl/{PUBLIC_KEY}"),), CONF,
                            "/usr/local/etc/pkg/repos/qmail-pkg.conf", conf_text(settings),
                            f"pkg update && pkg install {package}")

    def __init__(self, tree: Folder, root: Path, state: State, signer, settings: Settings):
        if settings.pkg_key is None:
            raise PublishError("--pkg-key is required for FreeBSD packages: pkg(8) repositories are signed with an "
                               "RSA key (PEM)")
        if not shutil.which("openssl"):
            raise PublishError("signing a pkg repository needs openssl")
        self.tree = tree
        self.root = root
        self.state = state
        self.key = settings.pkg_key
        self.settings = settings

    def publish(self, artifacts: list[Admitted], prune: int | None, report: PublishReport) -> None:
        areas: set[str] = set()
        for artifact in artifacts:
            abi = checked(artifact.facts.architecture, ABI, "package ABI")
            where = f"freebsd/{abi}/All/{artifact.name}"
            identity = artifact.row.sha256
            if self.state.check(where, identity):
                report.unchanged.append(where)
            else:
                with self.tree.sub("freebsd", abi, "All", create=True) as folder:
                    folder.put(artifact.name, artifact.path)
                self.state.record(where, identity)
                report.added.append(where)
            areas.add(abi)
        for abi in sorted(areas):
            if prune:
                members = [k for k in self.state.files if k.startswith(f"freebsd/{abi}/All/")]
                _, dropped = newest(members, prune, lambda key: name_and_version(key.rsplit("/", 1)[-1])[1])
                for where in dropped:
                    *folders, name = split_key(where)
                    with self.tree.sub(*folders) as folder:
                        folder.unlink(name)
                    self.state.forget(where)
                    report.pruned.append(where)
            self._catalogue(abi, report)
        self._export_key()

    def _catalogue(self, abi: str, report: PublishReport) -> None:
        area = f"freebsd/{abi}"
        if platform.system() == "FreeBSD" and shutil.which("pkg"):
            with self.tree.sub("freebsd", abi) as folder:
                folder.check_plain()
            result = subprocess.run(["pkg", "repo", "--", str(self.root / area), str(self.key)], capture_output=True,
                                    text=True)
            if result.returncode != 0:
                raise PublishError(f"pkg repo {area} failed: "
                                   f"{printable((result.stderr or result.stdout).strip()[-300:])}")
            report.indexes.append(area)
            return
        found = []
        with self.tree.sub("freebsd", abi, "All") as packages:
            for name, _ in packages.entries(100_000):
                if name.endswith(".pkg"):
                    found.append(catalogue_entry(packages.read(name, MAX_PKG), f"All/{name}"))
        entries = newest_of_each(found)
        lines = "".join(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n" for entry in entries)
        site = lines.encode()
        data = json.dumps({"groups": [], "expired_packages": [], "packages": entries},
                          separators=(",", ":"), ensure_ascii=False).encode()
        with self.tree.sub("freebsd", abi) as folder:
            folder.write("packagesite.pkg", _archive("packagesite.yaml", site, sign(site, self.key)))
            folder.write("data.pkg", _archive("data", data, sign(data, self.key)))
            for name in ("meta", "meta.conf"):
                folder.write(name, META.encode())
        report.indexes.append(area)

    def _export_key(self) -> None:
        result = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-pubout"], capture_output=True)
        if result.returncode != 0:
            raise PublishError(f"--pkg-key: not an RSA private key: "
                               f"{printable(result.stderr.decode(errors='replace').strip()[-200:])}")
        self.tree.write(PUBLIC_KEY, result.stdout)
        self.tree.write(CONF, conf_text(self.settings).encode())


__all__ = ["PkgRepository", "catalogue_entry", "newest_of_each", "sign"]
