"""Debian: images bootstrapped with mmdebstrap from the host's own apt
mirror (no registry needed), dpkg as the package manager, `+debN` version
suffixes, versioned library dependencies from dpkg-shlibdeps."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..commands import require, run
from ..emulation import host_architecture, require_emulation
from ..errors import SandboxError, VerifyError
from ..recipe.model import Target
from ..sandbox.docker import client, import_rootfs
from ..sandbox.images import DEFINITION_LABEL, PACKAGES_LABEL, ImageSpec
from ..toolchains import ZIG_CACHE, ZIG_HOME, fetch_wheel, toolchain_named, zig_tarball
from .base import (
    DAEMONTOOLS_PROGRAMS,
    GLIBC_INTERPRETERS,
    GLIBC_LIBRARIES,
    BinaryRules,
    PackageManager,
    Platform,
    Steps,
)
from .gnu import GNU_STRIP, STRIP_SUFFIX, strip_steps

MIRROR_ENV = "QMAIL_PKG_DEBIAN_MIRROR"
VM_INITRAMFS_HOOK = Path(__file__).resolve().parent / "debian-initramfs-hook.sh"
APT_DIR = Path("/etc/apt")
# Each Debian release's glibc: its programs need no newer symbol version.
GLIBC = {"11": "2.31", "12": "2.36", "13": "2.41"}
# Inside images: a flat apt repository of packages offered, not installed.
OFFERED_REPOSITORY = "/var/local/qmail-pkg-apt"
OFFERED_SOURCES = "/etc/apt/sources.list.d/qmail-pkg-offered.list"

class DebianPlatform(Platform):
    family = "debian"
    script_platform = "linux"
    program_install = "apt-get install {package}"
    program_packages = {"tcpserver": "ucspi-tcp", **dict.fromkeys(DAEMONTOOLS_PROGRAMS, "daemontools")}
    strip_command = GNU_STRIP
    noise_paths = (r"^/var/lib/(dpkg|apt)(/|$)", r"^/var/cache/(debconf|apt|ldconfig)(/|$)",
                   r"^/var/log/(dpkg\.log|apt|alternatives\.log)", r"^/etc/(passwd|group|shadow|gshadow)-$")
    package_manager = PackageManager(
        name="dpkg",
        # as apt runs dpkg from a script: debconf asks nothing, takes answers given before
        install="DEBIAN_FRONTEND=noninteractive dpkg -i {path}",
        upgrade="DEBIAN_FRONTEND=noninteractive dpkg -i {path}",
        remove="DEBIAN_FRONTEND=noninteractive dpkg -r {name}",
        purge="DEBIAN_FRONTEND=noninteractive dpkg -P {name}",
        verify="dpkg --verify {name}",
        version="dpkg-query -W -f '${{Version}}' {name}",
        installed="dpkg-query -W -f '${{Status}}' {name} 2>/dev/null | grep -q 'install ok installed'",
        # the debconf answer, then the reconfiguration that acts on it
        switch_supervisor="printf '%s %s/supervisor select %s\\n' {name} {name} {supervisor} | debconf-set-selections"
                          " && DEBIAN_FRONTEND=noninteractive dpkg-reconfigure {name}",
        # apt with only the image's own repository of offered packages: there is
        # no network in a verification sandbox, and the mirror would fail the update
        user_install=f"only='-o Dir::Etc::SourceList={OFFERED_SOURCES} -o Dir::Etc::SourceParts=/nonexistent'; "
                     "apt-get -q $only update && DEBIAN_FRONTEND=noninteractive apt-get -q $only install -y {path}",
    )

    def version_suffix(self, target: Target) -> str:
        # 1.03-1+deb11 < 1.03-1+deb12 < 1.03-1+deb13: a dist-upgrade takes the newer build.
        return f"+deb{target.release}"

    def finish_steps(self, roots: tuple[str, ...]) -> Steps:
        return strip_steps(roots)

    def binary_rules(self, target: Target) -> BinaryRules:
        newest = GLIBC.get(target.release)
        return BinaryRules(("ELFOSABI_SYSV", "ELFOSABI_LINUX"), GLIBC_INTERPRETERS[target.architecture],
                           GLIBC_LIBRARIES, "GLIBC_",
                           tuple(int(part) for part in newest.split(".")) if newest else None)

    def cross_environment(self, target: Target) -> dict[str, str]:
        # dpkg-shlibdeps reads the target architecture's libraries (multiarch)
        return {"DEB_HOST_ARCH": target.architecture}

    def cross_triple(self, target: Target) -> str:
        # Debian's cross gcc (crossbuild-essential-<arch>) is named by the GNU triple
        return {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[target.architecture]

    def systemd_unit_dir(self, target: Target) -> str:
        # Before trixie, Debian's systemd units live in /lib (lintian and
        # deb-systemd-helper expect them there, and a bullseye host need not
        # be merged-/usr); from trixie on, files in /lib are aliased locations
        # that dpkg must not ship, and units go to /usr/lib.
        release = target.release
        if release.isdigit() and int(release) < 13:
            return "/lib/systemd/system"
        return "/usr/lib/systemd/system"

    def dependency_probe(self, roots: tuple[str, ...]) -> tuple[str, ...]:
        return ("sh", "-eu", "-c", PROBE_SCRIPT, "shlibdeps", *roots)

    def parse_dependencies(self, output: list[str]) -> tuple[str, ...]:
        relations: list[str] = []
        for line in output:
            if line.startswith("shlibs:Depends="):
                for relation in line.split("=", 1)[1].split(","):
                    relation = relation.strip()
                    if relation and relation not in relations:
                        relations.append(relation)
        return tuple(relations)

    def mirror(self) -> str:
        return host_debian_mirror()

    def bootstrap(self, spec: ImageSpec, log: Callable[[str], None], engine=None) -> None:
        bootstrap_with_mmdebstrap(spec, log, engine)

    def vm_userland(self, suite: str, architecture: str, init: Path, dest: Path, log: Callable[[str], None]) -> None:
        require("mmdebstrap", "mmdebstrap", VerifyError)
        mirror = host_debian_mirror()
        packages = [f"linux-image-{architecture}", "initramfs-tools", "e2fsprogs", "xfsprogs", "kmod", "util-linux"]
        log(f"bootstrapping a {suite} machine ({architecture}, kernel included) from {mirror}")
        run([
            "mmdebstrap", "--variant=minbase", "--quiet", f"--architectures={architecture}",
            f"--include={','.join(packages)}",
            # only what is asked for: firmware and the like are Recommends
            '--aptopt=APT::Install-Recommends "false"',
            # A small initramfs: only what finds the root disk. The default
            # (MODULES=most) is 36 MB that the emulated machine unpacks at
            # every boot; udev in it loads the virtio modules by alias.
            '--essential-hook=mkdir -p "$1"/etc/initramfs-tools/conf.d "$1"/etc/initramfs-tools/hooks',
            '--essential-hook=echo MODULES=list >"$1"/etc/initramfs-tools/conf.d/qmail-pkg',
            f"--essential-hook=upload {VM_INITRAMFS_HOOK} /etc/initramfs-tools/hooks/qmail-pkg",
            '--essential-hook=chmod 0755 "$1"/etc/initramfs-tools/hooks/qmail-pkg',
            f"--customize-hook=upload {init} /sbin/qmail-pkg-init",
            '--customize-hook=chmod 0755 "$1"/sbin/qmail-pkg-init',
            '--customize-hook=echo powercut >"$1"/etc/hostname',
            '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
            suite, str(dest), mirror,
        ], what=f"bootstrapping the {suite} power-cut machine", error=VerifyError, timeout=1800)


# It runs while the last steps strip the binaries: their temporary copies
# (STRIP_SUFFIX) are skipped, and a failure of dpkg-shlibdeps is the probe's
# failure (the builder then probes again once the steps are over), never a
# package that silently lacks its library dependencies.
PROBE_SCRIPT = r"""
work=$(mktemp -d)
mkdir "$work/debian"
printf 'Source: probe\n\nPackage: probe\nArchitecture: any\n' >"$work/debian/control"
list="$work/elves"
: >"$list"
# the ELF files among them, in one process (dpkg-shlibdeps brings perl)
find "$@" -type f ! -name '*@STRIP_SUFFIX@' -print0 | perl -0ne 'chomp; open(my $f, "<", $_) or next;
    read($f, my $magic, 4); print "$_\n" if $magic eq "\x7fELF"' >"$list"
rc=0
if [ -s "$list" ]; then
    cd "$work"
    # one call for all binaries: dpkg-shlibdeps merges their needs
    tr '\n' '\0' <"$list" | xargs -0 dpkg-shlibdeps -O >"$work/out" 2>"$work/err" || rc=$?
    grep -v 'should already be installed in their package' "$work/err" || true
    cat "$work/out"
fi
rm -rf "$work"
exit "$rc"
""".replace("@STRIP_SUFFIX@", STRIP_SUFFIX)


def host_debian_mirror() -> str:
    """The first Debian archive URI in the host's apt configuration (or $QMAIL_PKG_DEBIAN_MIRROR)."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    candidates: list[str] = []
    apt = APT_DIR
    for sources in sorted(apt.glob("sources.list.d/*.sources")):
        for match in re.finditer(r"^URIs:\s*(.+)$", sources.read_text(), re.M):
            candidates.extend(match.group(1).split())
    for listing in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if listing.exists():
            for line in listing.read_text().splitlines():
                fields = re.sub(r"\[[^]]*\]", "", line).split()
                if len(fields) >= 3 and fields[0] == "deb":
                    candidates.append(fields[1])
    for uri in candidates:
        if "security" not in uri and uri.rstrip("/").endswith("/debian"):
            return uri
    raise SandboxError(f"no Debian mirror found in /etc/apt; set {MIRROR_ENV} to a Debian archive URL")




def _offered_hooks(offered: tuple[str, ...]) -> list[str]:
    """mmdebstrap hooks that download `offered` (with what they depend on
    that the image lacks) into OFFERED_REPOSITORY, index it with
    apt-ftparchive, and name it in a sources file of its own. Verification
    containers have no network: this is how `apt install ./pkg.deb` there
    can still pull recommended packages, as it would from a mirror."""
    if not offered:
        return []
    words = " ".join(offered)
    return [
        f'--customize-hook=mkdir -p "$1"{OFFERED_REPOSITORY} && chroot "$1" sh -c '
        f'"cd {OFFERED_REPOSITORY} && apt-get -q download {words} && apt-ftparchive packages . > Packages"',
        f'--customize-hook=echo "deb [trusted=yes] file:{OFFERED_REPOSITORY} ./" > "$1"{OFFERED_SOURCES}',
    ]


# A C program that makes Zig build (and cache) a target's C library stubs and
# startup files, as a qmail build will: an executable linked against libc.
WARM_PROGRAM = "#include <stdio.h>\nint main(void) { puts(\"warm\"); return 0; }\n"


def _toolchain_hooks(spec: ImageSpec, scratch: Path, log: Callable[[str], None]) -> list[str]:
    """mmdebstrap hooks that put a toolchain which is not a Debian package
    into the image: Zig from its pinned wheel at /opt/zig, its cache warmed
    for every target it serves (a cold cache costs half a minute a build),
    and `gmake` for recipes that call GNU make by its BSD name."""
    if not spec.toolchain:
        return []
    toolchain = toolchain_named(spec.toolchain)
    if toolchain.sha256_of(spec.architecture) != spec.toolchain_sha256:
        raise SandboxError(f"{spec.reference}: the image wants {spec.toolchain} {spec.toolchain_sha256[:12]}, "
                           "which this qmail-pkg does not pin")
    tarball = zig_tarball(fetch_wheel(toolchain, spec.architecture, log), scratch / "zig.tar")
    program = scratch / "warm.c"
    program.write_text(WARM_PROGRAM)
    script = scratch / "warm.sh"
    # two at a time: each builds one C library's stubs and startup files, for
    # each kind of executable the toolchain names (a PIE's are built apart)
    zig = f"{ZIG_HOME}/zig cc -target @"
    links = {"plain": f"{zig} -o /tmp/warm-@ /tmp/warm.c",
             "pie": f"{zig} -O2 -fPIE -c /tmp/warm.c -o /tmp/warm-@.o && "
                    f"{zig} -pie -s /tmp/warm-@.o -o /tmp/warm-@-pie"}
    commands = " && ".join(links[kind] for kind in toolchain.warm_links or ("plain",))
    script.write_text(f"export ZIG_GLOBAL_CACHE_DIR={ZIG_CACHE}\n"
                      f"printf '%s\\n' {' '.join(toolchain.warm)} |\n"
                      f"  xargs -P 2 -I @ sh -euc '{commands}'\n")
    return [
        f"--customize-hook=mkdir -p \"$1\"{ZIG_HOME} \"$1\"{ZIG_CACHE}",
        f"--customize-hook=tar -C \"$1\"{ZIG_HOME} -xf {tarball}",
        f"--customize-hook=upload {program} /tmp/warm.c",
        f"--customize-hook=upload {script} /tmp/warm.sh",
        "--customize-hook=chroot \"$1\" sh -eu /tmp/warm.sh",
        "--customize-hook=rm -f \"$1\"/tmp/warm-* \"$1\"/tmp/warm.c \"$1\"/tmp/warm.sh",
        "--customize-hook=ln -sf make \"$1\"/usr/bin/gmake",
    ]


def bootstrap_with_mmdebstrap(spec: ImageSpec, log: Callable[[str], None], engine=None) -> None:
    """A Debian userland from the host's mirror, `docker import`ed with the
    label that records its definition (no registry involved)."""
    if not shutil.which("mmdebstrap"):
        raise SandboxError("image bootstrap needs mmdebstrap (apt-get install mmdebstrap)")
    if not spec.suite:
        raise SandboxError(f"{spec.reference}: the target names no Debian suite to bootstrap")
    mirror = host_debian_mirror()
    repository, _, tag = spec.reference.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-image-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        installed = Path(tmp) / "installed"
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--quiet",
            f"--architectures={','.join((spec.architecture, *spec.foreign))}",
            f"--include={','.join(spec.packages)}",
            # What went in, version by version: the build record names it.
            "--customize-hook=dpkg-query --admindir=\"$1\"/var/lib/dpkg "
            f"-W -f '${{Package}}=${{Version}}\\n' > {installed}",
            *_offered_hooks(spec.offered),
            *_toolchain_hooks(spec, Path(tmp), log),
            # Keep images small and free of apt lists that would go stale.
            "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*.bin",
            spec.suite,
            str(rootfs),
            mirror,
        ]
        log(f"bootstrapping {spec.reference} ({spec.suite}, {spec.architecture}, {len(spec.packages)} packages) "
            f"from {mirror}")
        if spec.architecture != host_architecture():
            require_emulation(spec.architecture)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise SandboxError(f"mmdebstrap {spec.suite} failed: {' | '.join(tail)}")
        versions = " ".join(sorted(installed.read_text().split())) if installed.exists() else ""
        changes = [
            *([f"LABEL qmail-pkg.toolchain=\"{spec.toolchain} {spec.toolchain_sha256}\""] if spec.toolchain else []),
            f"LABEL {DEFINITION_LABEL}={spec.definition_hash}",
            f"LABEL {PACKAGES_LABEL}=\"{versions}\"",
            f"LABEL qmail-pkg.suite={spec.suite}",
            f"LABEL qmail-pkg.architecture={spec.architecture}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/sh"]',
        ]
        import_rootfs(client(engine), rootfs, spec.reference, changes)
        log(f"imported {spec.reference}")
