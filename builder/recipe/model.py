"""Typed values a validated recipe turns into.

Later stages only ever see these frozen dataclasses, never the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Source:
    """One upstream tarball, pinned by size and checksums."""

    name: str  # short handle used by steps: $SRC_<NAME> (upper-cased)
    filename: str  # file name in the source cache, e.g. qmail-1.03.tar.gz
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    sha512: str | None = None
    md5: str | None = None

    def checksums(self) -> dict[str, str]:
        """The digests the recipe pins, by hashlib algorithm name."""
        pinned = {"sha256": self.sha256, "sha512": self.sha512, "md5": self.md5}
        return {algo: value for algo, value in pinned.items() if value}


@dataclass(frozen=True)
class Patch:
    """A patch file written by this project, applied to one source tree."""

    file: Path  # absolute path (resolved against the recipe's folder)
    source: str  # name of the Source it applies to
    strip: int = 1
    targets: tuple[str, ...] = ()  # empty: every target
    architectures: tuple[str, ...] = ()  # empty: every architecture


@dataclass(frozen=True)
class Group:
    name: str
    gid: int


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    group: str  # primary group name
    home: str
    shell: str = "/usr/sbin/nologin"


@dataclass(frozen=True)
class Accounts:
    groups: tuple[Group, ...]
    users: tuple[User, ...]

    def names(self) -> set[str]:
        """Every account and group name: the owners a package may carry."""
        return {user.name for user in self.users} | {group.name for group in self.groups}

    def group(self, name: str) -> Group:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(name)


@dataclass(frozen=True)
class PackageMeta:
    """What every format says about the package. Relations are per format
    (the `debian:`, `rpm:` and `freebsd:` sections): package names differ."""

    name: str
    version: str  # upstream version
    revision: int  # packaging revision: Debian revision, RPM release, pkg PORTREVISION
    maintainer: str
    license: str
    summary: str
    description: str
    homepage: str
    section: str = "mail"
    priority: str = "optional"
    copyright: str = ""  # shipped as /usr/share/doc/<name>/copyright


@dataclass(frozen=True)
class Layout:
    prefix: str = "/var/qmail"  # the tree `make setup` installs into
    state: tuple[str, ...] = ("/var/qmail/queue",)  # trees recreated by scripts, not shipped
    config: tuple[str, ...] = ("/var/qmail/control",)  # files below are conffiles
    # extra absolute paths outside prefix to harvest (e.g. /usr/share/man/...)
    harvest: tuple[str, ...] = ()


@dataclass(frozen=True)
class Services:
    """daemontools services the package ships (issue 3 fills these in)."""

    directories: tuple[str, ...] = ("/service", "/etc/service", "/var/service")
    default_delivery: str = "./Maildir/"
    log_dir: str = "/var/log/qmail"
    smtpd: bool = True
    # control files created on first install when absent (config-fast)
    postmaster_alias_to: str = "root"


# The userland of the images cross builds run in (builder/toolchains.py), and
# its release for targets of other families (their cross-built packages are
# verified there too).
CROSS_USERLAND = "debian"
CROSS_SUITE = "bookworm"
METHODS = ("native", "cross")


@dataclass(frozen=True)
class Cross:
    """How a target builds by cross-compilation on a Linux Docker host."""

    toolchain: str  # zig | gnu (builder/toolchains.py)
    architectures: tuple[str, ...]  # built this way unless told otherwise (--native)


@dataclass(frozen=True)
class Target:
    """One build target with every per-target override already applied."""

    name: str  # e.g. debian-12
    family: str  # debian | rhel | freebsd: whose systems install the packages
    release: str  # the distribution release: 12, 9, 14.1
    image: str  # build image reference, e.g. qmail-pkg/debian-12:latest (a jail's base release for jails)
    formats: tuple[str, ...]  # deb | rpm | pkg
    make: str  # make program (gmake on BSD)
    jobs: int  # parallel make jobs; 0 = number of CPUs
    env: tuple[tuple[str, str], ...]  # extra environment for steps, in order
    cflags: tuple[str, ...]  # extra compiler flags appended to conf-cc ($EXTRA_CFLAGS)
    ldflags: tuple[str, ...]  # extra linker flags appended to conf-ld ($EXTRA_LDFLAGS)
    steps: tuple[str, ...]  # shell snippets, run in order with sh -eu
    patches: tuple[Patch, ...]  # patches that apply to this target (for every architecture; see patches_for)
    accounts: Accounts  # ids compiled into this target's binaries
    suite: str = ""  # Debian suite for bootstrap images (bookworm...)
    architecture: str = "amd64"  # the one this build is for (Debian's spelling; each format translates)
    architectures: tuple[str, ...] = ("amd64",)  # every one the recipe builds the target for
    native_builder: str = "docker"  # sandbox backend of a native build: docker | jail
    cross: Cross | None = None  # how it cross-compiles, when it can
    method: str = "native"  # how this build builds: native | cross (see for_architecture)
    source_date_epoch: int | None = None  # build.source_date_epoch, when the recipe fixes it
    # where the target is written in the recipe (line, column), for messages
    position: tuple[int, int] = field(default=(1, 1), compare=False)
    # per step: None (always), or (option, True) for `if:`, (option, False) for `unless:`
    step_when: tuple[tuple[str, bool] | None, ...] = ()
    # per step: prepare (changes the sources: a source package's patches),
    # build (compiles) or install (into the layout); in that order
    step_phases: tuple[str, ...] = ()

    def for_architecture(self, architecture: str) -> "Target":
        """This target as built for one of its architectures, by the method the
        recipe gives that architecture (cross where `cross:` lists it)."""
        cross = self.cross is not None and architecture in self.cross.architectures
        return replace(self, architecture=architecture, method="cross" if cross else "native")

    def with_method(self, method: str) -> "Target":
        """This build forced native or cross (`build --native/--cross`)."""
        if method == "cross" and self.cross is None:
            raise ValueError(f"{self.name} has no cross: section; it builds natively only")
        return replace(self, method=method)

    @property
    def userland(self) -> str:
        """The family of the build image's userland: the target's own, or the
        cross images' for a cross build."""
        return CROSS_USERLAND if self.method == "cross" else self.family

    @property
    def userland_suite(self) -> str:
        """The release of the build image's userland: the target's own, or
        the cross userland's for another family's cross build."""
        if self.userland == self.family:
            return self.suite or self.release
        return CROSS_SUITE

    @property
    def builder(self) -> str:
        """The sandbox backend: cross builds run in Docker on any Linux host."""
        return "docker" if self.method == "cross" else self.native_builder

    @property
    def active_patches(self) -> tuple[Patch, ...]:
        """The patches a build for this architecture applies."""
        return tuple(p for p in self.patches if not p.architectures or self.architecture in p.architectures)

    @property
    def label(self) -> str:
        """The target and architecture, as progress lines and errors name a build."""
        return self.name if self.architecture == self.architectures[0] else f"{self.name}/{self.architecture}"

    def steps_for(self, chosen: dict[str, bool]) -> tuple[str, ...]:
        """The steps a build with these option values runs."""
        return tuple(script for _, script in self.phased_steps(chosen))

    def phased_steps(self, chosen: dict[str, bool]) -> tuple[tuple[str, str], ...]:
        """(phase, script) of each step a build with these option values runs."""
        when = self.step_when or (None,) * len(self.steps)
        phases = self.step_phases or ("build",) * len(self.steps)
        return tuple((phase, step) for step, rule, phase in zip(self.steps, when, phases, strict=True)
                     if rule is None or chosen.get(rule[0]) == rule[1])


@dataclass(frozen=True)
class BuildOption:
    """A build option, as pkgsrc has them: on or off per build."""

    name: str
    default: bool
    description: str


@dataclass(frozen=True)
class Recipe:
    path: Path  # the recipe file
    package: PackageMeta
    sources: tuple[Source, ...]
    layout: Layout
    services: Services
    targets: tuple[Target, ...]
    # Each packager's own section, by its recipe key (debian, rpm, freebsd).
    options: dict[str, Any] = field(default_factory=dict)
    build_options: tuple[BuildOption, ...] = ()  # the recipe's `options:`

    def option_defaults(self) -> dict[str, bool]:
        return {option.name: option.default for option in self.build_options}

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


__all__ = [
    "Accounts",
    "Group",
    "Layout",
    "PackageMeta",
    "Patch",
    "Recipe",
    "Services",
    "Source",
    "Target",
    "User",
]
