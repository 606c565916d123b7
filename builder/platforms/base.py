"""The interface every family implements, with the Linux defaults most share."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import SandboxError, VerifyError
from ..recipe.model import Accounts, Target
from ..sandbox.images import ImageSpec

Steps = list[tuple[str, tuple[str, ...]]]  # (title, argv) run in the build sandbox

# The interpreter of a dynamically linked program on Linux, by architecture.
GLIBC_INTERPRETERS = {"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}
GLIBC_LIBRARIES = r"^lib[a-z0-9_+-]*\.so(\.[0-9]+)*$"


@dataclass(frozen=True)
class BinaryRules:
    """What a program built for a target must be, to run on the target's
    systems: the OS its ELF header names, its interpreter, the libraries it
    may need and the newest symbol version of the C library."""

    osabi: tuple[str, ...]  # accepted EI_OSABI, pyelftools' names
    interpreter: str
    libraries: str  # regex every NEEDED library matches
    version_prefix: str  # GLIBC_ or FBSD_
    newest: tuple[int, ...] | None  # no symbol version newer than this


@dataclass(frozen=True)
class PackageManager:
    """The package-manager verbs verification needs, as shell command
    templates; {path} and {name} are filled in shell-quoted."""

    name: str  # dpkg, rpm, pkg
    install: str  # a package file on a system without it
    upgrade: str  # a newer package file over the installed one
    remove: str  # keep configuration
    purge: str | None  # also configuration; None where the format has no purge
    verify: str  # prints nothing when the installed files are as shipped
    version: str  # prints the installed version
    installed: str  # exit 0 when the package is installed
    prepare: str | None = None  # run once in a fresh system before the first install
    # the administrator's documented way to move the installed package to
    # another supervisor ({supervisor}: daemontools or systemd; {reinstall}:
    # this manager's upgrade of {path} over itself, for formats whose
    # scripts reconfigure on a reinstall); None: none
    switch_supervisor: str | None = None
    # the administrator's file that command writes ({name}), which stays theirs
    switch_supervisor_file: str | None = None
    # a package file installed as a user does: with the dependencies and
    # recommendations it names, from the repositories the system has; None: none
    user_install: str | None = None

    def command(self, verb: str, *, path: str = "", name: str = "", supervisor: str = "") -> str:
        template = getattr(self, verb)
        if template is None:
            raise ValueError(f"{self.name} has no {verb}")
        words = {"path": shlex.quote(path), "name": shlex.quote(name), "supervisor": shlex.quote(supervisor)}
        return template.format(**words, reinstall=self.upgrade.format(**words))

# daemontools' programs that the services' run files call.
DAEMONTOOLS_PROGRAMS = ("envuidgid", "softlimit", "setuidgid", "multilog")


class Platform:
    family: ClassVar[str]
    script_platform: ClassVar[str]  # templates/common/platform-<name>.sh.j2
    package_manager: ClassVar[PackageManager]
    # Name of group id 0 in packages of this family (the staged tree says "root").
    root_group: ClassVar[str] = "root"
    # The maintainer scripts keep their bookkeeping in <bookkeeping_root>/<package>.
    bookkeeping_root: ClassVar[str] = "/var/lib"
    # Debian's architecture names (the recipe's spelling) -> this family's.
    arch_names: ClassVar[dict[str, str]] = {}
    # The sandbox backend that builds on this userland.
    default_builder: ClassVar[str] = "docker"
    # Where packages put their documentation (copyright...).
    doc_root: ClassVar[str] = "/usr/share/doc"
    # Paths (regexes) that any package installation changes on a system of
    # this family: the package manager's database, caches and logs, the
    # account databases' backups. Verification does not judge the package by them.
    noise_paths: ClassVar[tuple[str, ...]] = ()
    # How the family's build strips one ELF file (the word list before the
    # file's name); a source package's install strips the same way.
    strip_command: ClassVar[tuple[str, ...]] = ("strip", "--strip-unneeded")
    # Whether the package ships /usr/sbin/sendmail and /usr/lib/sendmail as
    # links to qmail's; else the scripts deal with the system's own mechanism.
    ships_sendmail_links: ClassVar[bool] = True
    # What the administrator runs to get a program the services call
    # ({package}: from program_packages), said when a service cannot stay up.
    program_install: ClassVar[str] = "install the {package} package"
    # The package of this family that brings each program the services' run
    # files call (tcpserver, daemontools' helpers): qmail-pkg does not ship them.
    program_packages: ClassVar[dict[str, str]] = {}

    def arch(self, arch: str) -> str:
        return self.arch_names.get(arch, arch)

    def package_manager_on(self, userland: str) -> PackageManager:
        """The package manager's verbs on a system of the given userland (a
        cross-built package is verified on the cross userland, where its
        binaries run when the family's are compatible)."""
        return self.package_manager

    def version_suffix(self, target: Target) -> str:
        """Appended to the package revision so that builds for different
        releases of the family never share a version (and sort upward)."""
        return ""

    def state_dir(self, package: str) -> str:
        return f"{self.bookkeeping_root}/{package}"

    def systemd_unit_dir(self, target: Target) -> str:
        """Where the package ships its systemd units; "" where the family
        has no systemd (the package then supervises with daemontools only)."""
        return "/usr/lib/systemd/system"

    def account_steps(self, accounts: Accounts) -> Steps:
        """Commands that create the accounts in a build sandbox of this
        userland (shadow-utils on Linux)."""
        steps: Steps = []
        for group in accounts.groups:
            steps.append((f"create group {group.name} ({group.gid})", ("groupadd", "-g", str(group.gid), group.name)))
        for user in accounts.users:
            argv = ("useradd", "-r", "-M", "-u", str(user.uid), "-g", user.group, "-d", user.home, "-s", user.shell,
                    user.name)
            steps.append((f"create user {user.name} ({user.uid})", argv))
        return steps

    def finish_steps(self, roots: tuple[str, ...]) -> Steps:
        """Commands run in the build sandbox after the recipe's steps."""
        return []

    def binary_rules(self, target: Target) -> BinaryRules:
        """What the target's programs must be (`qmail-pkg lint` checks them)."""
        raise ValueError(f"{self.family}: no rules for its programs")

    def cross_triple(self, target: Target) -> str:
        """The compiler's target for a cross build of this family (the cross
        toolchains' spelling: x86_64-freebsd.14.0-none, aarch64-linux-gnu...)."""
        raise ValueError(f"{self.family} targets cannot be cross-compiled here")

    def cross_environment(self, target: Target) -> dict[str, str]:
        """What this family's own tools need to know of a cross build."""
        return {}

    def cross_finish_steps(self, roots: tuple[str, ...]) -> Steps:
        """What a cross build does after the userland's finishing steps,
        that this family's own toolchain would have done (ELF branding)."""
        return []

    def dependency_probe(self, roots: tuple[str, ...]) -> tuple[str, ...] | None:
        """A command for the build sandbox that prints the libraries the
        binaries below roots need, for parse_dependencies; None: no probe."""
        return None

    def parse_dependencies(self, output: list[str]) -> tuple[str, ...]:
        """The probe's output as relations in this family's format."""
        return ()

    def mirror(self) -> str:
        """The family's package archive this host reaches (where chroots and
        machine images of it are bootstrapped from)."""
        raise SandboxError(f"{self.family}: no package archive is configured on this host")

    def vm_userland(self, suite: str, architecture: str, init: Path, dest: Path, log: Callable[[str], None]) -> None:
        """A bootable userland of this family in the empty folder `dest`, for
        power-cut machines: a kernel and initramfs in /boot, the tools to
        make and repair the file systems tried, `init` installed as
        /sbin/qmail-pkg-init, and the package manager ready to install a
        package file."""
        raise VerifyError(f"power-cut machines are made for Debian targets here; {self.family} has no "
                          "machine image recipe (its userland cannot be bootstrapped on this host)")

    def bootstrap(self, spec: ImageSpec, log: Callable[[str], None], engine=None) -> None:
        raise SandboxError(
            f"image {spec.reference} is missing, and {self.family} images cannot be made on this host; "
            f"make it from containers/{spec.family}/ where that is possible"
        )
