"""FreeBSD: builds in jails, pkg(8) as the package manager, accounts with
pw(8), bookkeeping in /var/db, group 0 named wheel. FreeBSD reserves the
qmail ids (users 81-87, groups 81 qnofiles and 82 qmail)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SandboxError, VerifyError
from ..recipe.model import Accounts, Target
from ..sandbox.images import ImageSpec
from .base import DAEMONTOOLS_PROGRAMS, BinaryRules, PackageManager, Platform, Steps

# FreeBSD's stat(1) spells -c as -f, with %Lp for the permission bits.
STRIP_SCRIPT = r"""
find "$@" -type f -exec sh -c '
for f; do
    [ "$(od -An -N4 -tx1 "$f" | tr -d " ")" = 7f454c46 ] || continue
    mode=$(stat -f %Lp "$f")
    owner=$(stat -f %u:%g "$f")
    strip --strip-unneeded "$f"
    chown "$owner" "$f"
    chmod "$mode" "$f"
done' sh {} +
"""

# Every ELF file below the roots gets EI_OSABI (byte 7) = 9, in place.
BRAND_SCRIPT = r"""
find "$@" -type f | while IFS= read -r f; do
    [ "$(od -An -N4 -tx1 "$f" | tr -d " ")" = 7f454c46 ] || continue
    printf '\011' | dd of="$f" bs=1 seek=7 count=1 conv=notrunc 2>/dev/null
done
"""

JAIL_BASE_ENV = "QMAIL_PKG_JAIL_BASE"
# The newest libc symbol version each FreeBSD release's libc.so.7 has.
FBSD_VERSIONS = {"14": (1, 7), "15": (1, 8)}
# The base system's libraries a package may need without depending on a package.
BASE_LIBRARIES = r"^lib(c|m|util|crypt|md|thr|z|elf|kvm|bsdxml|execinfo)\.so\.[0-9]+$"


class FreeBSDPlatform(Platform):
    family = "freebsd"
    script_platform = "freebsd"
    # sysutils/ucspi-tcp and sysutils/daemontools
    program_install = "pkg install {package}"
    program_packages = {"tcpserver": "ucspi-tcp", **dict.fromkeys(DAEMONTOOLS_PROGRAMS, "daemontools")}
    # pkg's database; pw's rebuilt password databases
    noise_paths = (r"^/var/db/pkg(/|$)", r"^/etc/(pwd\.db|spwd\.db|master\.passwd|passwd|group)$")
    root_group = "wheel"
    bookkeeping_root = "/var/db"
    default_builder = "jail"
    doc_root = "/usr/local/share/doc"
    # /usr/sbin/sendmail is mailwrapper(8), configured in /etc/mail/mailer.conf.
    ships_sendmail_links = False
    arch_names = {"amd64": "amd64", "arm64": "aarch64", "i386": "i386"}
    package_manager = PackageManager(
        name="pkg",
        install="pkg add {path}",
        upgrade="pkg add -f {path}",
        remove="pkg delete -y {name}",
        purge=None,  # pkg delete keeps what the scripts made, like a Debian remove
        verify="pkg check -s {name}",
        version="pkg query %v {name}",
        installed="pkg info -e {name}",
    )

    def systemd_unit_dir(self, target: Target) -> str:
        return ""  # no systemd: daemontools (sysutils/daemontools) supervises

    def account_steps(self, accounts: Accounts) -> Steps:
        steps: Steps = []
        for group in accounts.groups:
            steps.append((f"create group {group.name} ({group.gid})",
                          ("pw", "groupadd", "-n", group.name, "-g", str(group.gid))))
        for user in accounts.users:
            argv = ("pw", "useradd", "-n", user.name, "-u", str(user.uid), "-g", user.group,
                    "-d", user.home, "-s", user.shell)
            steps.append((f"create user {user.name} ({user.uid})", argv))
        return steps

    def package_manager_on(self, userland: str) -> PackageManager:
        if userland != self.family:
            raise VerifyError("a FreeBSD package's lifecycle needs a FreeBSD system (its binaries run on FreeBSD "
                              "only); `qmail-pkg lint` checks the package and its binaries here")
        return self.package_manager

    def binary_rules(self, target: Target) -> BinaryRules:
        major = target.release.split(".")[0]
        newest = FBSD_VERSIONS.get(major)
        if newest is None:
            raise ValueError(f"{target.name}: no libc symbol version known for FreeBSD {major} "
                             f"(known: {', '.join(FBSD_VERSIONS)})")
        return BinaryRules(("ELFOSABI_FREEBSD",), "/libexec/ld-elf.so.1", BASE_LIBRARIES, "FBSD_", newest)

    def cross_triple(self, target: Target) -> str:
        """Zig's FreeBSD targets need a minor version (14.0): the release's
        major, .0, so that the binaries run on every release of it."""
        cpu = {"amd64": "x86_64", "arm64": "aarch64"}.get(target.architecture)
        major = target.release.split(".")[0]
        if cpu is None or not major.isdigit():
            raise ValueError(f"{target.name}: no cross target for FreeBSD {target.release} on {target.architecture}")
        return f"{cpu}-freebsd.{major}.0-none"

    def cross_finish_steps(self, roots: tuple[str, ...]) -> Steps:
        # Cross linkers write OS/ABI "UNIX - System V"; FreeBSD's own write
        # "FreeBSD" (e_ident[EI_OSABI] = 9, what brandelf -t FreeBSD sets).
        return [("brand the binaries for FreeBSD (ELF OS/ABI 9)", ("sh", "-eu", "-c", BRAND_SCRIPT, "brand", *roots))]

    def finish_steps(self, roots: tuple[str, ...]) -> Steps:
        return [("strip binaries (owners and modes kept)", ("sh", "-eu", "-c", STRIP_SCRIPT, "strip", *roots))]

    def bootstrap(self, spec: ImageSpec, log: Callable[[str], None], engine=None) -> None:
        raise SandboxError(
            f"{spec.reference}: FreeBSD targets build in jails made from a base release tree, not in images; "
            f"set {JAIL_BASE_ENV} to a folder holding extracted base releases (e.g. .../14.1-RELEASE) on a FreeBSD host"
        )
