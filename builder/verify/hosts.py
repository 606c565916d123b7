"""The kinds of host `qmail-pkg verify` installs the package on, and how
each one supervises qmail.

- svscan: svscan on /service is the container's main process (a minimal
  system, as piuparts sees one).
- systemd-daemontools: systemd is PID 1 and Debian's daemontools-run starts
  svscanboot on /etc/service: the package must choose daemontools by itself.
- systemd: systemd is PID 1 and there is no daemontools at all: the package
  must choose its systemd units by itself.
- systemd-apt: the same host, but the package is installed as a user does,
  `apt install ./package.deb`, with daemontools in a local repository in
  the image: apt pulls the recommended daemontools-run, and qmail must end
  up running under it.

On the systemd hosts the host name has no domain part (as in most containers
and many cloud machines), so every step also proves that mail to a bare local
name is delivered there.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass

from ..errors import VerifyError
from ..sandbox import Sandbox

UP_SECONDS = 5  # "up" for this long with one pid means it is not crash-looping
# systemd's own state on the systemd hosts (not the package's: its unit links
# and deb-systemd-helper's records must go, and are checked)
SYSTEMD_NOISE = (r"^/var/log/journal(/|$)",
                 r"^/var/lib/systemd/(timers|random-seed|catalog|coredump|pstore|linger|timesync)(/|$)",
                 r"^/var/(lib|cache|log)/private(/|$)")


@dataclass(frozen=True)
class Host:
    name: str
    role: str  # the image role (builder.sandbox.images.ROLES)
    boots: bool  # systemd is PID 1
    supervisor: str  # the supervisor the package must choose by itself
    service_dir: str  # daemontools' service directory ("" without daemontools)
    hostname: str
    # only where the package manager has debconf: switching supervisor is a reconfiguration
    switches: bool = False
    # the first install as a user makes it: the package manager's user_install
    # verb, which pulls in what the package recommends
    user_install: bool = False
    # packages the installer pulled in: the last purge takes them away too
    pulled: tuple[str, ...] = ()
    # what the host itself changes whatever is installed (systemd's own state)
    noise: tuple[str, ...] = ()

    def container_options(self) -> dict:
        if self.boots:
            return {"boot": True, "hostname": self.hostname}
        return {"command": ["sh", "-c", f"mkdir -p {self.service_dir} && exec svscan {self.service_dir}"],
                "hostname": self.hostname}

    def supervision(self, box: Sandbox, supervisor: str | None = None) -> "Supervision":
        chosen = supervisor or self.supervisor
        if chosen == "systemd":
            return SystemdSupervision(box)
        return DaemontoolsSupervision(box, self.service_dir)


HOSTS = {
    "svscan": Host("svscan", "verify", False, "daemontools", "/service", "verify.example.org"),
    "systemd-daemontools": Host("systemd-daemontools", "verify-systemd-daemontools", True, "daemontools",
                                "/etc/service", "mailhost", switches=True, noise=SYSTEMD_NOISE),
    "systemd": Host("systemd", "verify-systemd", True, "systemd", "", "mailhost", noise=SYSTEMD_NOISE),
    "systemd-apt": Host(
        "systemd-apt", "verify-systemd-apt", True, "daemontools", "/etc/service", "mailhost",
        # the package installed as a user does, with what it recommends (the
        # package manager's user_install verb), from a repository in the image
        user_install=True, pulled=("daemontools-run", "daemontools"), noise=SYSTEMD_NOISE),
}


def host_named(name: str) -> Host:
    try:
        return HOSTS[name]
    except KeyError:
        raise VerifyError(f"unknown host kind {name!r}; choose one of {', '.join(HOSTS)} (or all)") from None


class Supervision:
    """The supervisor as verify sees it: status, the administrator's own
    stop and start, and the calls the maintainer scripts made."""

    name: str
    services: list[str]  # what must be up, loggers included
    control_command: str  # the program whose calls the recording wrapper logs

    def __init__(self, box: Sandbox):
        self.box = box

    def sh(self, script: str) -> tuple[int, str]:
        return self.box.output(["sh", "-c", script])

    def status(self, service: str) -> tuple[str, str]:
        """(main pid or "", a line of evidence)."""
        raise NotImplementedError

    def uptime(self, service: str) -> tuple[int, str]:
        """Seconds the same process has been up (-1: not up), and evidence."""
        raise NotImplementedError

    def stop(self, service: str) -> str:
        """Shell: what an administrator types to stop it (and waits)."""
        raise NotImplementedError

    def start(self, service: str) -> str:
        raise NotImplementedError

    def is_down(self, service: str) -> tuple[bool, str]:
        raise NotImplementedError

    def removed(self) -> tuple[bool, str]:
        """After removal: nothing of the package left in the supervisor."""
        raise NotImplementedError

    def is_stop_call(self, line: str, service: str) -> bool:
        raise NotImplementedError

    def is_start_call(self, line: str, service: str) -> bool:
        raise NotImplementedError

    def wait_up(self, service: str, timeout: float = 40) -> tuple[bool, str]:
        """Up for UP_SECONDS with the same process: running, not crash-looping."""
        deadline = time.monotonic() + timeout
        evidence = ""
        while time.monotonic() < deadline:
            seconds, evidence = self.uptime(service)
            if seconds >= UP_SECONDS:
                return True, evidence
            time.sleep(1)
        return False, evidence or "no status"


class DaemontoolsSupervision(Supervision):
    name = "daemontools"
    control_command = "svc"

    def __init__(self, box: Sandbox, service_dir: str):
        super().__init__(box)
        self.service_dir = service_dir
        self.services = ["qmail-send", "qmail-send/log", "qmail-smtpd", "qmail-smtpd/log"]

    def svstat(self, service: str) -> str:
        return self.sh(f"svstat {self.service_dir}/{service} 2>&1")[1].strip()

    def uptime(self, service: str) -> tuple[int, str]:
        status = self.svstat(service)
        match = re.search(r": up \(pid (\d+)\) (\d+) seconds", status)
        return (int(match.group(2)) if match else -1), status

    def stop(self, service: str) -> str:
        path = f"{self.service_dir}/{service}"
        return (f"svc -d {path}; for i in $(seq 150); do svstat {path} | grep -q ': down' && break; sleep 0.2; done")

    def start(self, service: str) -> str:
        return f"svc -u {self.service_dir}/{service}"

    def is_down(self, service: str) -> tuple[bool, str]:
        status = self.svstat(service)
        return ": down" in status, status

    def removed(self) -> tuple[bool, str]:
        _, links = self.sh(f"ls -A {self.service_dir}")
        ours = [name for name in links.split() if name.startswith("qmail-")]
        return not ours, f"{self.service_dir}: [{' '.join(ours)}]"

    def is_stop_call(self, line: str, service: str) -> bool:
        return " svc -d" in line and service in line

    def is_start_call(self, line: str, service: str) -> bool:
        return " svc -u" in line and service in line


class SystemdSupervision(Supervision):
    name = "systemd"
    control_command = "systemctl"

    def __init__(self, box: Sandbox):
        super().__init__(box)
        # the units log to the journal: no logger services of their own
        self.services = ["qmail-send", "qmail-smtpd"]

    def show(self, service: str) -> dict[str, str]:
        _, out = self.sh(f"systemctl show -p ActiveState -p SubState -p MainPID -p NRestarts "
                         f"-p ExecMainStartTimestampMonotonic {shlex.quote(service + '.service')}; "
                         "cut -d' ' -f1 /proc/uptime")
        lines = out.splitlines()
        values = dict(line.split("=", 1) for line in lines if "=" in line)
        values["now"] = next((line for line in lines if "=" not in line and line.strip()), "0")
        return values

    def uptime(self, service: str) -> tuple[int, str]:
        values = self.show(service)
        evidence = (f"{service}.service {values.get('ActiveState', '?')} ({values.get('SubState', '?')}) "
                    f"pid {values.get('MainPID', '?')}, restarts {values.get('NRestarts', '?')}")
        if values.get("ActiveState") != "active" or values.get("MainPID", "0") == "0":
            return -1, evidence
        started = int(values.get("ExecMainStartTimestampMonotonic", "0") or 0) / 1e6
        seconds = int(float(values["now"]) - started) if started else -1
        return seconds, f"{evidence}, up {seconds} s"

    def stop(self, service: str) -> str:
        return f"systemctl stop {service}.service"

    def start(self, service: str) -> str:
        return f"systemctl start {service}.service"

    def is_down(self, service: str) -> tuple[bool, str]:
        values = self.show(service)
        state = values.get("ActiveState", "?")
        return state in ("inactive", "failed"), f"{service}.service {state}"

    def removed(self) -> tuple[bool, str]:
        _, out = self.sh("for u in qmail-send.service qmail-smtpd.service; do "
                         "a=$(systemctl is-active $u 2>/dev/null); e=$(systemctl is-enabled $u 2>/dev/null); "
                         "printf '%s %s %s\\n' $u \"${a:-unknown}\" \"${e:-none}\"; "
                         "done; ls /etc/systemd/system/*.wants 2>/dev/null | grep qmail || true")
        bad = [line for line in out.splitlines()
               if line.strip()
               and not re.match(r"^qmail-\S+ (inactive|unknown) (none|disabled|not-found)?\s*$", line.strip())]
        return not bad, out.strip().replace("\n", "; ")

    def is_stop_call(self, line: str, service: str) -> bool:
        return " systemctl" in line and re.search(r"\bstop\b", line) is not None and f"{service}.service" in line

    def is_start_call(self, line: str, service: str) -> bool:
        return (" systemctl" in line and re.search(r"\b(start|restart)\b", line) is not None
                and f"{service}.service" in line)
