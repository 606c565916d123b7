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
import os
import platform
import shutil
import subprocess
import tarfile
from pathlib import Path

from ..package.pkg import file_sum, read_pkg, urldecode
from . import Published, PublishError, PublishReport, State, newest

META = ('version = 2;\npacking_format = "tzst";\nmanifests = "packagesite.yaml";\ndata = "data";\n'
        'filesite = "files";\nmanifests_archive = "packagesite";\nfilesite_archive = "files";\n')
# the order pkg writes a catalogue entry's keys in
ENTRY_KEYS = ("name", "origin", "version", "comment", "maintainer", "www", "abi", "arch", "prefix", "sum",
              "flatsize", "path", "repopath", "licenselogic", "licenses", "pkgsize", "desc", "deps", "categories",
              "users", "groups", "conflicts", "provides", "requires", "options", "annotations")


def catalogue_entry(package: Path, repopath: str) -> dict:
    """What `pkg repo` lists for one package: its compact manifest, decoded,
    with the package file's checksum, size and path."""
    _, compact, _, _ = read_pkg(package)
    data = package.read_bytes()
    entry = dict(compact)
    entry["desc"] = urldecode(entry.get("desc", ""))
    if "licenses" in entry:
        entry["licenses"] = sorted(entry["licenses"])
    entry.update(sum=file_sum(data), pkgsize=len(data), path=repopath, repopath=repopath)
    return {key: entry[key] for key in ENTRY_KEYS if key in entry}


def sign(data: bytes, key: Path) -> bytes:
    digest = hashlib.sha256(data).hexdigest().encode()
    result = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=digest, capture_output=True)
    if result.returncode != 0:
        raise PublishError(f"{key}: cannot sign the catalogue with it: {result.stderr.decode(errors='replace').strip()[-200:]}")
    return result.stdout + b"\0"


def _archive(member: str, data: bytes, signature: bytes | None) -> bytes:
    import zstandard

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in ([("signature", signature)] if signature is not None else []) + [(member, data)]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uname, info.gname = len(content), 0o644, "root", "wheel"
            tar.addfile(info, io.BytesIO(content))
    return zstandard.ZstdCompressor(level=19).compress(raw.getvalue())


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


class PkgRepository:
    def __init__(self, repo: Path, state: State, signer, *, pkg_key: Path | None = None, test: bool = False,
                 base_url: str = "", **_):
        self.repo = repo
        self.state = state
        self.key = pkg_key
        self.test = test
        self.base_url = base_url or repo.resolve().as_uri()
        if pkg_key is not None and not pkg_key.is_file():
            raise PublishError(f"--pkg-key {pkg_key}: no such file (an RSA private key in PEM)")
        if not shutil.which("openssl"):
            raise PublishError("signing a pkg repository needs openssl")

    def publish(self, artifacts: list[Published], prune: int | None, report: PublishReport) -> None:
        areas: set[str] = set()
        for artifact in artifacts:
            _, compact, _, _ = read_pkg(artifact.path)
            area = f"freebsd/{compact['abi']}"
            where = f"{area}/All/{artifact.path.name}"
            identity = hashlib.sha256(artifact.path.read_bytes()).hexdigest()
            if self.state.check(where, identity):
                report.unchanged.append(where)
            else:
                target = self.repo / where
                target.parent.mkdir(parents=True, exist_ok=True)
                _replace(target, artifact.path.read_bytes())
                self.state.record(where, identity)
                report.added.append(where)
            areas.add(area)
        for area in sorted(areas):
            if prune:
                members = [k for k in self.state.files if k.startswith(f"{area}/All/")]
                _, dropped = newest(members, prune, lambda key: key.rsplit("-", 1)[-1])
                for where in dropped:
                    (self.repo / where).unlink(missing_ok=True)
                    self.state.forget(where)
                    report.pruned.append(where)
            self._catalogue(area, report)
        self._export_key()

    def _catalogue(self, area: str, report: PublishReport) -> None:
        folder = self.repo / area
        if platform.system() == "FreeBSD" and shutil.which("pkg"):
            result = subprocess.run(["pkg", "repo", str(folder), str(self.key)], capture_output=True, text=True)
            if result.returncode != 0:
                raise PublishError(f"pkg repo {area} failed: {(result.stderr or result.stdout).strip()[-300:]}")
            report.indexes.append(area)
            return
        packages = sorted((folder / "All").glob("*.pkg"))
        entries = [catalogue_entry(path, f"All/{path.name}") for path in packages]
        lines = "".join(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n" for entry in entries)
        site = lines.encode()
        data = json.dumps({"groups": [], "expired_packages": [], "packages": entries},
                          separators=(",", ":"), ensure_ascii=False).encode()
        _replace(folder / "packagesite.pkg", _archive("packagesite.yaml", site, sign(site, self.key)))
        _replace(folder / "data.pkg", _archive("data", data, sign(data, self.key)))
        for name in ("meta", "meta.conf"):
            _replace(folder / name, META.encode())
        report.indexes.append(area)

    def _export_key(self) -> None:
        result = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-pubout"], capture_output=True)
        if result.returncode != 0:
            raise PublishError(f"{self.key}: not an RSA private key: {result.stderr.decode(errors='replace').strip()[-200:]}")
        _replace(self.repo / "qmail-pkg-freebsd.pub", result.stdout)
        label = " (TEST packages, not for real systems)" if self.test else ""
        conf = (f"# qmail-syncdir{label}: /usr/local/etc/pkg/repos/qmail-pkg.conf\n"
                f'qmail-pkg: {{\n  url: "{self.base_url}/freebsd/${{ABI}}",\n  signature_type: "pubkey",\n'
                '  pubkey: "/usr/local/etc/ssl/qmail-pkg-freebsd.pub",\n  enabled: yes\n}\n')
        _replace(self.repo / "qmail-pkg-freebsd.conf", conf.encode())
