"""What the maintainer scripts and the daemontools service files are made from.

A ScriptModel is plain data: every value in it ends up shell-quoted in the
rendered scripts (see render.py), so nothing here needs escaping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..platforms import platform_for
from ..recipe.model import Accounts, Recipe, Target

STATE_KINDS = ("dir", "file", "fifo")
# Owners and groups a state entry may use besides the compiled-in accounts.
SYSTEM_OWNERS = ("root",)
SYSTEM_GROUPS = ("root", "wheel")


def _check_path(what: str, path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"{what}: {path!r} is not an absolute path")
    if "\n" in path or "\0" in path:
        raise ValueError(f"{what}: {path!r} contains a newline or NUL")


@dataclass(frozen=True)
class StateEntry:
    """Runtime state (the queue skeleton): recreated by postinst, never shipped."""

    path: str
    kind: str  # "dir" | "file" | "fifo"
    owner: str
    group: str
    mode: int  # including setuid/setgid/sticky bits, e.g. 0o750

    def __post_init__(self) -> None:
        _check_path("state entry", self.path)
        if self.kind not in STATE_KINDS:
            raise ValueError(f"state entry {self.path}: kind {self.kind!r} is not one of {', '.join(STATE_KINDS)}")
        if not 0 <= self.mode <= 0o7777:
            raise ValueError(f"state entry {self.path}: mode {self.mode:o} is out of range")


@dataclass(frozen=True)
class ServiceSpec:
    """One daemontools service the package ships."""

    name: str  # link name in the service directory: qmail-send, qmail-smtpd
    directory: str  # e.g. /var/qmail/supervise/qmail-send (holds run and log/run)
    # programs its run files (and log/run) call that the package does not ship
    programs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ValueError(f"service name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        _check_path(f"service {self.name}", self.directory)


@dataclass(frozen=True)
class ServiceFile:
    """A file render_service_files produces: the package ships it."""

    path: str
    content: str
    mode: int


@dataclass(frozen=True)
class ScriptModel:
    package: str  # qmail-syncdir
    version: str  # full version, e.g. 1.03-1
    prefix: str  # /var/qmail
    accounts: Accounts  # ids compiled into this build
    state: tuple[StateEntry, ...]  # creation order, parents first
    services: tuple[ServiceSpec, ...]
    service_dirs: tuple[str, ...]  # candidates; the first that exists wins
    log_dir: str  # /var/log/qmail; multilog writes log_dir/<service>
    default_delivery: str  # ./Maildir/
    postmaster_alias_to: str  # root
    sendmail_links: tuple[tuple[str, str], ...]  # shipped by the package itself
    state_dir: str  # /var/lib/qmail-syncdir: the scripts' own bookkeeping
    script_platform: str = "linux"  # templates/common/platform-<name>.sh.j2
    # Roles of the qmail accounts the scripts and run files need by name.
    log_user: str = "qmaill"
    smtpd_user: str = "qmaild"
    alias_user: str = "alias"
    tcp_rules: str = "/etc/tcp.smtp.cdb"  # tcpserver -x, used only when it exists
    smtpd_softlimit: int = 8000000  # softlimit -m for qmail-smtpd
    # Bounds, in seconds, of the waits around svc.
    stop_timeout: int = 60  # svc -d / svc -dx until down / supervise gone
    start_timeout: int = 20  # after linking on first install, until up and staying up
    stable_seconds: int = 3  # "up" only after this long with one pid: not crash-looping
    # Files and links the package ships (takeover backs up those that exist).
    shipped: tuple[str, ...] = ()
    backup_dir: str = ""  # where a takeover keeps copies of the files it replaces
    # Where systemd units go ("" = no systemd on this platform): the
    # alternative supervisor, one unit per service, logging to the journal.
    systemd_unit_dir: str = ""
    # Packages of other qmails the recipe names as conflicting (their names
    # in this format): said when a qmail that is not this package's is found.
    conflicts: tuple[str, ...] = ()
    # (service, program, how to get it) for each program a service calls:
    # named when that service cannot stay up and the program is missing
    needed_programs: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.package or not all(c.isalnum() or c in "+-." for c in self.package):
            raise ValueError(f"package name {self.package!r} is not a valid package name")
        for what, path in (("prefix", self.prefix), ("log_dir", self.log_dir), ("state_dir", self.state_dir)):
            _check_path(what, path)
        if self.state_dir.rstrip("/") in ("", "/var", "/var/lib", "/etc", "/usr"):
            raise ValueError(f"state_dir {self.state_dir!r} must be a directory of its own")
        for directory in self.service_dirs:
            _check_path("service directory", directory)
        users = {user.name for user in self.accounts.users}
        groups = {group.name for group in self.accounts.groups}
        for user in self.accounts.users:
            if user.group not in groups:
                raise ValueError(f"user {user.name}: primary group {user.group!r} is not among the accounts")
        for role in ("log_user", "smtpd_user", "alias_user"):
            if getattr(self, role) not in users:
                raise ValueError(f"{role} {getattr(self, role)!r} is not among the accounts")
        for entry in self.state:
            if entry.owner not in users and entry.owner not in SYSTEM_OWNERS:
                raise ValueError(f"state entry {entry.path}: owner {entry.owner!r} is not among the accounts")
            if entry.group not in groups and entry.group not in SYSTEM_GROUPS:
                raise ValueError(f"state entry {entry.path}: group {entry.group!r} is not among the accounts")
        names = [service.name for service in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate service names: {names}")
        if not self.default_delivery.strip() or "\n" in self.default_delivery:
            raise ValueError("default_delivery must be one non-empty line")
        if not self.postmaster_alias_to.strip() or "\n" in self.postmaster_alias_to:
            raise ValueError("postmaster_alias_to must be one non-empty line")
        for path in self.shipped:
            _check_path("shipped file", path)
        if self.backup_dir:
            _check_path("backup_dir", self.backup_dir)
        if self.systemd_unit_dir:
            _check_path("systemd_unit_dir", self.systemd_unit_dir)
        for number in ("smtpd_softlimit", "stop_timeout", "start_timeout", "stable_seconds"):
            if not isinstance(getattr(self, number), int) or getattr(self, number) < 0:
                raise ValueError(f"{number} must be a non-negative integer")

    @property
    def systemd_mark(self) -> str:
        """Exists while systemd is the chosen supervisor: the units'
        ConditionPathExists=, so they never run beside daemontools."""
        return f"{self.state_dir.rstrip('/')}/supervisor-is-systemd"

    @property
    def units(self) -> tuple[tuple[str, str], ...]:
        """(unit, service name) of every systemd unit the package ships."""
        if not self.systemd_unit_dir:
            return ()
        return tuple((f"{service.name}.service", service.name) for service in self.services)

    def user(self, name: str):
        for user in self.accounts.users:
            if user.name == name:
                return user
        raise KeyError(name)


SENDMAIL_LINKS = ("/usr/sbin/sendmail", "/usr/lib/sendmail")


def script_model(
    recipe: Recipe,
    target: Target,
    *,
    version: str,
    state: tuple[StateEntry, ...],
    smtpd: bool,
    sendmail: bool,
    conflicts: tuple[str, ...] = (),
) -> ScriptModel:
    """The ScriptModel for one target of a recipe: the one place it is assembled.

    `state` is the harvested queue skeleton (parents first); `smtpd` and
    `sendmail` say whether the build installed bin/qmail-smtpd and bin/sendmail.
    """
    prefix = recipe.layout.prefix.rstrip("/") or "/"
    supervise = f"{prefix}/supervise"
    logger = ("setuidgid", "multilog")  # every log/run
    services = [ServiceSpec("qmail-send", f"{supervise}/qmail-send", logger)]
    if recipe.services.smtpd and smtpd:
        services.append(ServiceSpec("qmail-smtpd", f"{supervise}/qmail-smtpd",
                                    ("tcpserver", "envuidgid", "softlimit", *logger)))
    links = tuple((link, f"{prefix}/bin/sendmail") for link in SENDMAIL_LINKS) if sendmail else ()
    platform = platform_for(target.family)
    return ScriptModel(
        package=recipe.package.name,
        version=version,
        prefix=prefix,
        accounts=target.accounts,
        state=state,
        services=tuple(services),
        service_dirs=tuple(recipe.services.directories),
        log_dir=recipe.services.log_dir,
        default_delivery=recipe.services.default_delivery,
        postmaster_alias_to=recipe.services.postmaster_alias_to,
        sendmail_links=links,
        state_dir=platform.state_dir(recipe.package.name),
        script_platform=platform.script_platform,
        backup_dir=f"/var/backups/{recipe.package.name}-takeover",
        systemd_unit_dir=platform.systemd_unit_dir(target),
        conflicts=conflicts,
        needed_programs=tuple(
            (service.name, program, platform.program_install.format(package=platform.program_packages[program]))
            for service in services for program in service.programs if program in platform.program_packages),
    )
