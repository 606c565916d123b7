"""One verification run's sandbox and the helpers every lifecycle step
uses: shell in the sandbox, results with evidence, mail in and out, the
package manager's verbs (from the target's platform) and the supervisor's
(from the host's Supervision), and the recording wrapper that logs every
call the maintainer scripts make to the supervisor."""

from __future__ import annotations

import posixpath
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VerifyError
from ..evidence import CheckResult, Evidence
from ..platforms import noise_paths, package_manager_for, platform_for
from ..recipe.model import Recipe, Target
from ..record import BuildRecord
from ..sandbox import Sandbox
from .checks import put_artifact
from .hosts import HOSTS, UP_SECONDS, Host, Supervision
from .traces import smtp_script, smtp_transcript_ok

SVC_LOG = "/var/log/qmail-pkg-svc.log"
TEST_USER = "verifyuser"
ALIAS_USER = "alias"  # qmail's: its ~/Maildir gets mail to root (the recipe's postmaster_alias_to)


# The real program (svc, systemctl) moves aside and the recording wrapper
# takes its place: package managers run scripts with PATHs of their own
# (rpm: /sbin:/bin:/usr/sbin:/usr/bin), so a wrapper earlier in the caller's
# PATH would be missed.
def _call_wrapper(prefix: str, name: str, real: str) -> str:
    return f"""#!/bin/sh
# qmail-pkg verify: record every {name} call, then run the real {name}.
inode=$(stat -c %i {shlex.quote(prefix)}/bin/qmail-send 2>/dev/null || echo none)
queued=$(find {shlex.quote(prefix)}/queue/todo {shlex.quote(prefix)}/queue/mess -type f 2>/dev/null | wc -l)
echo "$(date +%s.%N) inode=$inode queued=$queued {name} $*" >> {SVC_LOG}
exec {real} "$@"
"""


@dataclass(frozen=True)
class BuiltPackage:
    """A package file with the build record written beside it."""

    path: Path
    record: BuildRecord

    @property
    def version(self) -> str:
        """As its format writes it (1.03-1+deb12, 1.03-1.el9)."""
        return self.record.artifact(self.path.name).version


@dataclass
class Report:
    target: str
    steps: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.passed for step in self.steps)

    def as_dict(self) -> dict:
        return {"target": self.target, "passed": self.passed, "steps": [s.as_dict() for s in self.steps]}

    def evidence(self, artifact: Path, sha256: str, host: str) -> Evidence:
        """The run on one kind of host, as evidence for the package it ended with."""
        return Evidence.made("verify", artifact, sha256, self.passed, self.steps, qualifier=host)


# The whole filesystem of a verification container, less what is not ours to
# judge: kernel and runtime filesystems, the test user's home, verify's own files.
SNAPSHOT = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp "
            f"-o -path /home/{TEST_USER} -o -path {SVC_LOG} \\) -prune -o -print | sort")


class Session:
    """One verification run: a sandbox of one host kind (hosts.py). The
    package manager's verbs come from the target's platform, the
    supervisor's from the host's Supervision."""

    def __init__(self, recipe: Recipe, target: Target, sandbox: Sandbox, report: Report,
                 emit: Callable[[CheckResult], None], host: Host = HOSTS["svscan"]):
        self.host = host
        self.sup: Supervision = host.supervision(sandbox)
        self.recipe = recipe
        self.target = target
        self.box = sandbox
        self.report = report
        self.emit = emit
        self.prefix = recipe.layout.prefix
        self.package = recipe.package.name
        self.pm = package_manager_for(target)
        # what any package installation changes (the package managers' own
        # files, the journal): not the package's to make or to leave behind
        self.noise = re.compile("|".join(noise_paths(target) + host.noise))
        alias = next(user for user in target.accounts.users if user.name == ALIAS_USER)
        self.alias_user = alias.name
        self.alias_home = alias.home
        self.alias_maildir = f"{alias.home.rstrip('/')}/Maildir"
        self.log_dir = recipe.services.log_dir
        self.state_dir = platform_for(target.family).state_dir(self.package)
        self.before: set[str] = set()
        self.kept_queued = self.kept_queued_path = ""
        self.kept_delivered = self.kept_delivered_path = ""
        self.wrapped = ("", "")  # the supervisor program's path and where the real one went
        self.switched = False

    # -- helpers ---------------------------------------------------------
    def sh(self, script: str) -> tuple[int, str]:
        return self.box.output(["sh", "-c", script])

    def result(self, name: str, passed: bool, evidence: str) -> bool:
        check = CheckResult(name, passed, evidence)
        self.report.steps.append(check)
        self.emit(check)
        return passed

    def add(self, check: CheckResult, prefix: str) -> bool:
        return self.result(f"{prefix}: {check.name}", check.passed, check.evidence)

    def wait_up(self, service: str, timeout: float = 40) -> tuple[bool, str]:
        return self.sup.wait_up(service, timeout)

    def all_up(self, step: str, timeout: float = 40) -> bool:
        """Every service and its logger up and staying up (checked together)."""
        deadline = time.monotonic() + timeout
        statuses = []
        ok = True
        for service in self.sup.services:
            up, status = self.wait_up(service, max(1.0, deadline - time.monotonic()))
            statuses.append(status)
            ok = ok and up
        return self.result(f"{step}: every service and logger stays up under {self.sup.name} "
                           f"(same pid for {UP_SECONDS} s)", ok, "; ".join(statuses))

    def pm_command(self, verb: str, *, path: str = "", name: str = "") -> tuple[int, str]:
        return self.sh(f"{self.pm.command(verb, path=path, name=name)} 2>&1")

    def smtp(self, step: str, subject: str) -> bool:
        """A real SMTP conversation through tcpserver on port 25: a local
        recipient accepted and the message delivered, a foreign one refused."""
        code, out = self.sh(smtp_script(subject, f"{TEST_USER}@{self.host.hostname}", "someone@relay-test.invalid"))
        ok, evidence = smtp_transcript_ok(out)
        self.result(f"{step}: SMTP on port 25 accepts local mail, refuses to relay", ok and code == 0, evidence)
        delivered, detail = self.wait_delivered([subject], timeout=30)
        return self.result(f"{step}: the message received by SMTP is delivered", ok and delivered, detail)

    def delivered(self) -> list[str]:
        """Subjects of the messages in the test user's Maildir."""
        code, out = self.sh(
            f"cat /home/{TEST_USER}/Maildir/new/* /home/{TEST_USER}/Maildir/cur/* 2>/dev/null "
            "| grep '^Subject: ' || true"
        )
        return [line[len("Subject: "):].strip() for line in out.splitlines() if line.startswith("Subject: ")]

    def inject(self, subjects: list[str]) -> tuple[int, str]:
        # One exec for many messages: the loop runs inside the sandbox.
        words = " ".join(shlex.quote(s) for s in subjects)
        script = (
            f"for s in {words}; do "
            f"printf 'To: {TEST_USER}\\nSubject: %s\\n\\nqmail-pkg verify\\n' \"$s\" "
            f"| {self.prefix}/bin/qmail-inject {TEST_USER} || exit 1; done"
        )
        return self.sh(script)

    def wait_delivered(self, subjects: list[str], timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        while True:
            seen = self.delivered()
            missing = [s for s in subjects if s not in seen]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        dupes = sorted({s for s in seen if seen.count(s) > 1 and s in subjects})
        ok = not missing and not dupes
        return ok, f"{len(subjects) - len(missing)}/{len(subjects)} delivered, {len(dupes)} duplicated" + (
            f"; missing e.g. {missing[:3]}" if missing else ""
        ) + (f"; duplicated e.g. {dupes[:3]}" if dupes else "")

    def pm_install(self, artifact: BuiltPackage, verb: str = "install") -> tuple[int, str]:
        return self.pm_command(verb, path=put_artifact(self.box, artifact.path))

    def svc_log(self) -> list[str]:
        return self.sh(f"cat {SVC_LOG} 2>/dev/null || true")[1].splitlines()

    def qmail_processes(self) -> str:
        return self.sh("ps -eo pid,args | grep -E 'qmail-|supervise qmail|multilog' "
                       "| grep -v -e grep -e readproctitle || true")[1].strip()

    # -- steps -----------------------------------------------------------
    def wrap_control(self) -> None:
        """Put the recording wrapper in the supervisor program's place."""
        control = self.sup.control_command
        path = self.sh(f"command -v {control}")[1].strip()
        if not path.startswith("/"):
            raise VerifyError(f"the {self.host.name} host has no {control}")
        real = f"{path}.qmail-pkg-real"
        self.sh(f"mv {path} {real}")
        self.box.put_file(_call_wrapper(self.prefix, control, real).encode(), path, 0o755)
        self.wrapped = (path, real)

    def prepare(self) -> None:
        # a supervisor the installer brings in is wrapped once it is there
        if not self.host.pulled:
            self.wrap_control()
        if self.pm.prepare:
            self.sh(self.pm.prepare)
        self.sh(
            f"useradd -m -s /bin/sh {TEST_USER} && "
            f"mkdir -p /home/{TEST_USER}/Maildir/new /home/{TEST_USER}/Maildir/cur /home/{TEST_USER}/Maildir/tmp && "
            f"chown -R {TEST_USER}: /home/{TEST_USER}/Maildir"
        )
        self.before = self.snapshot()

    def snapshot(self) -> set[str]:
        _, listing = self.sh(SNAPSHOT)
        return set(listing.splitlines())


def _parents(path: str) -> list[str]:
    parents = []
    while (path := posixpath.dirname(path)) not in ("/", ""):
        parents.append(path)
    return parents


def _tail(text: str, lines: int = 2) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
