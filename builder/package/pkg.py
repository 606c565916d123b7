"""FreeBSD's pkg(8) format, written here (nfpm has no such packager).

The layout is what `pkg create` writes (read from freebsd/pkg's libpkg and
checked with the real tool): a tar named NAME-VERSION.pkg, zstd-compressed,
whose first members are +COMPACT_MANIFEST and +MANIFEST (compact JSON,
which is UCL), then the files by absolute path, then the folders. Each file
in the manifest carries its checksum ("2$" + BLAKE2b, z-base32, as pkg
computes it), owner and group names, permissions and mtime; the scripts
are stored in the manifest itself. Tar members carry uid/gid 65534 and the
names, as pkg's own writer does, and every mtime is SOURCE_DATE_EPOCH, so
the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..platforms import platform_for
from .base import Artifact, PackageSpec, own_entries

# z-base32, the alphabet and bit order of libpkg's pkg_checksum_encode_base32
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
HASH_BLAKE2_BASE32 = 2
# pkg's "legacy" arch spelling of each ABI architecture
_LEGACY_ARCH = {"amd64": "x86:64", "i386": "x86:32", "aarch64": "aarch64:64", "armv7": "armv7:32:el:eabi:hardfp"}
NOBODY = 65534
SCRIPT_KEYS = ("pre-install", "post-install", "pre-deinstall", "post-deinstall")


def zbase32(data: bytes) -> str:
    """libpkg's base32: 5 bits at a time from the least significant end."""
    out = []
    remain = -1
    for index, byte in enumerate(data):
        step = index % 5
        if step == 0:
            out.append(_ZBASE32[byte & 0x1F])
            remain = byte >> 5
        elif step == 1:
            x = remain | byte << 3
            out += [_ZBASE32[x & 0x1F], _ZBASE32[x >> 5 & 0x1F]]
            remain = x >> 10
        elif step == 2:
            x = remain | byte << 1
            out.append(_ZBASE32[x & 0x1F])
            remain = x >> 5
        elif step == 3:
            x = remain | byte << 4
            out += [_ZBASE32[x & 0x1F], _ZBASE32[x >> 5 & 0x1F]]
            remain = x >> 10 & 0x3
        else:
            x = remain | byte << 2
            out += [_ZBASE32[x & 0x1F], _ZBASE32[x >> 5 & 0x1F]]
            remain = -1
    if remain >= 0:
        out.append(_ZBASE32[remain])
    return "".join(out)


def file_sum(content: bytes) -> str:
    return f"{HASH_BLAKE2_BASE32}${zbase32(hashlib.blake2b(content, digest_size=64).digest())}"


def symlink_sum(target: str) -> str:
    """pkg hashes a link's target without its leading '/', but as many bytes
    as the whole target: an absolute target's hash ends in a NUL."""
    data = (target[1:] + "\0") if target.startswith("/") else target
    return file_sum(data.encode())


def urlencode(text: str) -> str:
    """pkg's urlencode: every non-ASCII byte and '%' as %xx."""
    return "".join(
        f"%{byte:02x}" if byte > 0x7F or byte == ord("%") else chr(byte) for byte in text.encode("utf-8")
    )


def perm(mode: int) -> str:
    """As pkg prints it ("%#4.4o"): 0755, 0644, 04711."""
    return "0" + format(mode, "o").rjust(3, "0")


@dataclass(frozen=True)
class PkgDep:
    name: str
    origin: str
    version: str


@dataclass(frozen=True)
class FreeBSDOptions:
    """The recipe's `freebsd:` section."""

    origin: str = ""  # category/name in the ports tree, e.g. mail/qmail-syncdir
    categories: tuple[str, ...] = ("mail",)
    licenses: tuple[str, ...] = ()
    licenselogic: str = "single"
    deps: tuple[PkgDep, ...] = ()
    conflicts: tuple[str, ...] = ()  # package name globs


class PkgPackager:
    format = "pkg"
    family = "freebsd"
    script_set = "pkg"
    script_names = SCRIPT_KEYS
    options_key = "freebsd"
    options_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "origin": {"type": "string", "pattern": "^[a-z0-9-]+/[A-Za-z0-9._+-]+$",
                       "x-messages": {"pattern": "must be category/name, such as mail/qmail-syncdir"}},
            "categories": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9-]+$",
                                                       "x-messages": {"pattern": "must be a ports category such as mail"}}},
            "licenses": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._+-]+$",
                                                     "x-messages": {"pattern": "must be a license name such as PD or GPLv2"}}},
            "licenselogic": {"enum": ["single", "and", "or"]},
            "deps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "origin", "version"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[A-Za-z0-9._+-]+$",
                                 "x-messages": {"pattern": "must be a package name"}},
                        "origin": {"type": "string", "pattern": "^[a-z0-9-]+/[A-Za-z0-9._+-]+$",
                                   "x-messages": {"pattern": "must be category/name"}},
                        "version": {"type": "string", "pattern": "^[0-9][A-Za-z0-9._,+]*$",
                                    "x-messages": {"pattern": "must be a pkg version such as 0.76_19"}},
                    },
                },
            },
            "conflicts": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9._+*?-]+$",
                                                      "x-messages": {"pattern": "must be a package name or glob"}}},
        },
    }

    def options(self, raw: dict[str, Any]) -> FreeBSDOptions:
        values = dict(raw)
        values["deps"] = tuple(PkgDep(**dep) for dep in values.get("deps", ()))
        for key in ("categories", "licenses", "conflicts"):
            if key in values:
                values[key] = tuple(values[key])
        return FreeBSDOptions(**values)

    def version(self, spec: PackageSpec) -> str:
        return f"{spec.meta.version}_{spec.revision}"

    def file_name(self, spec: PackageSpec) -> str:
        return f"{spec.meta.name}-{self.version(spec)}.pkg"

    def abi(self, spec: PackageSpec) -> tuple[str, str]:
        major = spec.release.split(".")[0]
        arch = platform_for(self.family).arch(spec.architecture)
        return f"FreeBSD:{major}:{arch}", f"freebsd:{major}:{_LEGACY_ARCH.get(arch, arch)}"

    def manifests(self, spec: PackageSpec) -> tuple[dict, dict]:
        """(+COMPACT_MANIFEST, +MANIFEST) as pkg_emit_object orders them."""
        options: FreeBSDOptions = spec.options or FreeBSDOptions()
        group = platform_for(self.family).root_group
        abi, arch = self.abi(spec)
        summary, _, body = spec.description.partition("\n")
        files: dict[str, dict] = {}
        directories: dict[str, dict] = {}
        flatsize = 0
        for entry in own_entries(spec):  # FreeBSD's base owns /usr/local, /var...
            owner = {"uname": entry.owner, "gname": group if entry.group == "root" else entry.group}
            if entry.kind == "dir":
                directories[urlencode(entry.path)] = {**owner, "perm": perm(entry.mode)}
            elif entry.kind == "file":
                flatsize += entry.size
                files[urlencode(entry.path)] = {"sum": file_sum(spec.tree.store.read(entry.sha256)), **owner,
                                                "perm": perm(entry.mode), "mtime": spec.source_date_epoch}
            elif entry.kind == "symlink":
                files[urlencode(entry.path)] = {"sum": symlink_sum(entry.link_target), **owner, "perm": "0777",
                                                "symlink_target": entry.link_target, "mtime": spec.source_date_epoch}
        compact: dict[str, Any] = {
            "name": spec.meta.name,
            "origin": options.origin or f"{(options.categories or ('mail',))[0]}/{spec.meta.name}",
            "version": self.version(spec),
            "comment": summary,
            "maintainer": spec.meta.maintainer,
            "www": spec.meta.homepage,
            "abi": abi,
            "arch": arch,
            "prefix": spec.install_prefix or "/usr/local",
            "flatsize": flatsize,
            "licenselogic": options.licenselogic,
        }
        if options.licenses:
            compact["licenses"] = list(options.licenses)
        compact["desc"] = urlencode(body.strip() or summary)
        if options.deps:
            compact["deps"] = {dep.name: {"origin": dep.origin, "version": dep.version} for dep in options.deps}
        compact["categories"] = list(options.categories)
        compact["users"] = list(spec.users)
        compact["groups"] = list(spec.groups)
        if options.conflicts:
            compact["conflicts"] = list(options.conflicts)
        full = dict(compact)
        full["files"] = dict(sorted(files.items()))
        if spec.conffiles:
            full["config"] = [urlencode(path) for path in sorted(spec.conffiles)]
        full["directories"] = dict(sorted(directories.items()))
        scripts = dict(spec.scripts)
        full["scripts"] = {key: urlencode(scripts[key]) for key in SCRIPT_KEYS if key in scripts}
        return compact, full

    def build(self, spec: PackageSpec, out_dir: Path, workdir: Path) -> Artifact:
        import zstandard

        compact, full = self.manifests(spec)
        group = platform_for(self.family).root_group
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, document in (("+COMPACT_MANIFEST", compact), ("+MANIFEST", full)):
                data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
                _add(tar, name, tarfile.REGTYPE, 0o644, "root", group, spec.source_date_epoch, data)
            entries = sorted(own_entries(spec), key=lambda e: e.path)
            for entry in [e for e in entries if e.kind != "dir"] + [e for e in entries if e.kind == "dir"]:
                gname = group if entry.group == "root" else entry.group
                if entry.kind == "file":
                    _add(tar, entry.path, tarfile.REGTYPE, entry.mode, entry.owner, gname,
                         spec.source_date_epoch, spec.tree.store.read(entry.sha256))
                elif entry.kind == "symlink":
                    _add(tar, entry.path, tarfile.SYMTYPE, 0o777, entry.owner, gname, spec.source_date_epoch,
                         link=entry.link_target)
                elif entry.kind == "dir":
                    _add(tar, entry.path, tarfile.DIRTYPE, entry.mode, entry.owner, gname, spec.source_date_epoch)
        target = out_dir / self.file_name(spec)
        compressor = zstandard.ZstdCompressor(level=19, write_checksum=True)
        target.write_bytes(compressor.compress(raw.getvalue()))
        return Artifact.of(target, self.format, self.version(spec))


def read_pkg(artifact: Path) -> tuple[list[tarfile.TarInfo], dict, dict, dict[str, bytes]]:
    """Members, +COMPACT_MANIFEST, +MANIFEST and file contents of a .pkg."""
    import zstandard

    members, contents, manifests = [], {}, {}
    with artifact.open("rb") as handle:
        raw = zstandard.ZstdDecompressor().stream_reader(handle)
        with tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                members.append(member)
                if member.isreg():
                    data = tar.extractfile(member).read()
                    if member.name.startswith("+"):
                        manifests[member.name] = json.loads(data)
                    else:
                        contents[member.name] = data
    return members, manifests.get("+COMPACT_MANIFEST", {}), manifests.get("+MANIFEST", {}), contents


def urldecode(text: str) -> str:
    """The inverse of urlencode: %xx sequences back to bytes."""
    out = bytearray()
    index = 0
    while index < len(text):
        if text[index] == "%" and index + 2 < len(text) and all(c in "0123456789abcdefABCDEF" for c in text[index + 1:index + 3]):
            out.append(int(text[index + 1:index + 3], 16))
            index += 3
        else:
            out += text[index].encode("utf-8")
            index += 1
    return out.decode("utf-8", "replace")


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, uname: str, gname: str, mtime: int,
         data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = info.gid = NOBODY
    info.uname, info.gname = uname, gname
    info.mtime = mtime
    info.linkname = link
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


__all__ = ["FreeBSDOptions", "PkgPackager", "file_sum", "read_pkg", "symlink_sum", "urldecode", "zbase32"]
