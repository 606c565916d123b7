"""`qmail-pkg verify`: the install / upgrade / remove lifecycle of real
packages in a clean sandbox, on each kind of host (hosts.py: svscan as the
main process, systemd with daemontools-run, systemd alone).

Every step reports pass/fail with the evidence it saw. The maintainer scripts'
calls to the supervisor (svc, or systemctl) are recorded by a logging wrapper
that takes the real program's place; it also notes the inode of
bin/qmail-send at each call, which proves whether the call came before or
after dpkg replaced the files.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..emulation import emulated
from ..errors import VerifyError
from ..recipe.model import Recipe, Target
from ..platforms import platform_for
from ..environment import open_sandbox, prepare_environment
from ..sandbox import Sandbox
from ..record import BuildRecord, RecordError
from .checks import CheckResult, installed_checks, put_artifact
from .hosts import HOSTS, UP_SECONDS, Host, Supervision

SVC_LOG = "/var/log/qmail-pkg-svc.log"
TEST_USER = "verifyuser"
IN_FLIGHT = 200  # messages queued before the upgrade
IN_FLIGHT_EMULATED = 1000
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


def find_record(artifact: Path) -> BuildRecord:
    """The build record written beside the artifact by `qmail-pkg build`."""
    try:
        return BuildRecord.beside(artifact)
    except RecordError as exc:
        raise VerifyError(f"{exc}; verify needs it") from None


class Lifecycle:
    """One verification run: a sandbox of one host kind (hosts.py), and the
    steps in order. The package manager's verbs come from the target's
    platform, the supervisor's from the host's Supervision."""

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
        self.pm = platform_for(target.family).package_manager_on(target.userland)
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
            f"cat /home/{TEST_USER}/Maildir/new/* /home/{TEST_USER}/Maildir/cur/* 2>/dev/null | grep '^Subject: ' || true"
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

    def install(self, artifact: BuiltPackage) -> bool:
        if self.host.installer:
            path = put_artifact(self.box, artifact.path)
            code, out = self.sh(self.host.installer.format(path=shlex.quote(path)) + " 2>&1")
            if not self.result(f"install: apt installs it with its recommends ({', '.join(self.host.pulled)})",
                               code == 0, _tail(out, 4)):
                return False
            pulled = [name for name in self.host.pulled
                      if self.pm_command("installed", name=name)[0] == 0]
            self.wrap_control()
            _, chosen = self.sh(f"cat {shlex.quote(self.state_dir)}/supervisor")
            self.result(f"install: qmail runs under {self.host.supervisor}, which apt brought in",
                        pulled == list(self.host.pulled) and chosen.strip() == self.host.supervisor,
                        f"installed: {' '.join(pulled) or 'none'}; supervisor: {chosen.strip() or 'none'}")
        else:
            code, out = self.pm_install(artifact)
            if not self.result(f"install: {self.pm.name} installs it on a clean system", code == 0, _tail(out)):
                return False
        for check in installed_checks(self.box, self.recipe, self.target, artifact.record.staged_manifest):
            self.add(check, "install")
        up = self.all_up("install")
        subject = f"verify-install-{int(time.time())}"
        code, out = self.inject([subject])
        ok, evidence = self.wait_delivered([subject], timeout=30) if code == 0 else (False, f"qmail-inject failed: {_tail(out)}")
        self.result(f"install: mail to the bare name {TEST_USER!r} delivered into ~/Maildir (host name "
                    f"{self.host.hostname!r})", ok, evidence)
        smtp_ok = self.smtp("install", f"verify-smtp-install-{int(time.time())}")
        return ok and up and smtp_ok

    def syncdir_proof(self) -> None:
        name = "syncdir: strace shows a directory fsync after every queue link/unlink"
        if emulated(self.target.architecture):
            check = CheckResult(name, True, f"not available: {self.target.architecture} runs under qemu-user "
                                "emulation here, which has no ptrace for strace; the symbol proof above stands",
                                skipped=True)
            self.report.steps.append(check)
            self.emit(check)
            return
        trace = "/tmp/qmail-queue.trace"
        code, out = self.sh(
            f"printf 'To: {TEST_USER}\\nSubject: verify-strace\\n\\nx\\n' | "
            f"strace -f -qq -y -o {trace} -e trace=chdir,open,openat,link,linkat,unlink,unlinkat,rename,renameat,renameat2,fsync,fdatasync "
            f"{self.prefix}/bin/qmail-inject {TEST_USER} 2>&1; echo exit=$?"
        )
        _, text = self.sh(f"cat {trace}")
        ok, evidence = fsync_follows_queue_changes(text, f"{self.prefix}/queue")
        self.result(name, ok and "exit=0" in out, evidence)

    def upgrade_in_flight(self, old: BuiltPackage, new: BuiltPackage, messages: int) -> None:
        name = "upgrade"
        control = f"{self.prefix}/control"
        self.sh(f"echo verify.invalid >> {control}/locals; echo '# edited by the administrator' >> {control}/rcpthosts 2>/dev/null; true")
        _, control_before = self.sh(f"cd {control} && sha256sum * 2>/dev/null")
        self.sh(self.sup.stop("qmail-send"))
        subjects = [f"verify-flight-{n:04d}" for n in range(messages)]
        code, out = self.inject(subjects)
        if not self.result(f"{name}: {messages} messages queued while qmail-send is down", code == 0, _tail(out) or "queued"):
            return
        # A full queue is state, not package content: the package manager must not flag it.
        code, out = self.pm_command("verify", name=self.package)
        self.result(f"{name}: {self.pm.name} verifies the files with a full queue", code == 0 and not out.strip(),
                    out.strip() or "no differences reported")
        self.sh(f": > {SVC_LOG}")
        # Bring qmail-send up on a full queue and start the upgrade at once.
        upgrade = self.pm.command("upgrade", path=put_artifact(self.box, new.path))
        code, out = self.sh(
            f"{self.sup.start('qmail-send')}; "
            f"until [ -n \"$(ls /home/{TEST_USER}/Maildir/new | grep -v install | head -1)\" ]; do sleep 0.05; done; "
            f"{upgrade} 2>&1"
        )
        self.result(f"{name}: {self.pm.name} upgrades {old.version} -> {new.version} while delivering", code == 0, _tail(out))
        log = self.svc_log()
        ok, evidence = svc_order(log, self.sup)
        self.result(f"{name}: {self.sup.name} stops qmail-send before files are replaced, starts it after", ok, evidence)
        ok, evidence = self.wait_delivered(subjects, timeout=max(60, messages))
        self.result(f"{name}: every in-flight message delivered exactly once", ok, evidence)
        _, queued = self.sh(f"find {self.prefix}/queue/mess {self.prefix}/queue/todo -type f | wc -l")
        self.result(f"{name}: queue drained", queued.strip() == "0", f"{queued.strip()} files left in mess/ and todo/")
        _, control_after = self.sh(f"cd {control} && sha256sum * 2>/dev/null")
        self.result(f"{name}: edited control files unchanged", control_before == control_after,
                    "identical" if control_before == control_after else f"before: {control_before!r} after: {control_after!r}")
        _, version = self.pm_command("version", name=self.package)
        self.result(f"{name}: new version installed", version.strip() == new.version, version.strip())
        self.all_up(name)
        self.smtp(name, f"verify-smtp-upgrade-{int(time.time())}")

    def admin_down_stays_down(self, artifact: BuiltPackage) -> None:
        name = "upgrade with service down"
        self.sh(f"{self.sup.stop('qmail-send')}; sleep 2; : > {SVC_LOG}")
        code, out = self.pm_install(artifact, "upgrade")
        down, status = self.sup.is_down("qmail-send")
        ups = [line for line in self.svc_log() if self.sup.is_start_call(line, "qmail-send")]
        self.result(f"{name}: a service the administrator took down stays down",
                    code == 0 and down and not ups,
                    f"{self.pm.name} exit {code}; status: {status}; start calls: {len(ups)}")
        self.sh(self.sup.start("qmail-send"))

    def switch_supervisor(self, artifact: BuiltPackage) -> None:
        """The documented switch (Debian: the debconf answer and
        dpkg-reconfigure; EL: SUPERVISOR= in sysconfig and a reinstall) from
        the supervisor the package chose to the other and back, with mail
        in the queue: at no sample is more than one qmail-send running, the
        old supervisor keeps nothing of ours, and mail flows afterwards."""
        chosen = self.sup
        self.switched = True
        for to in ("systemd", "daemontools") if chosen.name == "daemontools" else ("daemontools", "systemd"):
            name = f"switch to {to}"
            stamp = int(time.time())
            queued = [f"verify-switch-{to}-{stamp}-{n}" for n in range(20)]
            self.inject(queued)
            switch = self.pm.command("switch_supervisor", name=self.package, supervisor=to,
                                     path=put_artifact(self.box, artifact.path))
            code, out = self.sh(
                "rm -f /tmp/qmail-pkg-send-count; "
                "(while :; do pgrep -x qmail-send | wc -l >> /tmp/qmail-pkg-send-count; sleep 0.05; done) & sampler=$!; "
                f"{{ {switch}; }} 2>&1; rc=$?; sleep 3; kill $sampler; exit $rc")
            switched = f"-> {to}" in out
            self.result(f"{name}: {switch}", code == 0 and switched, _tail(out, 3) or f"exit {code}, no output")
            counts = [int(word) for word in self.sh("cat /tmp/qmail-pkg-send-count")[1].split() if word.isdigit()]
            tally = ", ".join(f"{counts.count(value)} x {value}" for value in sorted(set(counts)))
            self.result(f"{name}: never two qmail-send at once", bool(counts) and max(counts) <= 1,
                        f"{len(counts)} samples of the number of qmail-send processes: {tally}")
            previous, self.sup = self.sup, self.host.supervision(self.box, to)
            gone, evidence = previous.removed()
            self.result(f"{name}: {previous.name} keeps nothing of the package", gone, evidence)
            self.all_up(name)
            ok, evidence = self.wait_delivered(queued, timeout=60)
            self.result(f"{name}: the mail queued before the switch is delivered exactly once", ok, evidence)
            self.smtp(name, f"verify-smtp-switch-{to}-{stamp}")

    def hold_mail(self) -> None:
        """Mail the last removal must keep: a message delivered into the
        package's own ~alias/Maildir (mail to root) and one left in the queue
        with qmail-send down."""
        stamp = int(time.time())
        self.kept_delivered = self.kept_delivered_path = ""
        if self.sh(f"test -d {shlex.quote(self.alias_maildir)}")[0] == 0:
            subject = f"verify-kept-delivered-{stamp}"
            self.sh(f"printf 'Subject: %s\\n\\nqmail-pkg verify\\n' {subject} | {self.prefix}/bin/qmail-inject {self.alias_user}")
            deadline = time.monotonic() + 30
            while not self.kept_delivered_path and time.monotonic() < deadline:
                self.kept_delivered_path = self.sh(
                    f"grep -l '^Subject: {subject}$' {shlex.quote(self.alias_maildir)}/new/* 2>/dev/null | head -1")[1].strip()
                time.sleep(0.5)
            self.kept_delivered = subject if self.kept_delivered_path else ""
        self.sh(self.sup.stop("qmail-send"))
        self.kept_queued = f"verify-kept-queued-{stamp}"
        self.inject([self.kept_queued])
        self.kept_queued_path = self.sh(
            f"grep -rl '^Subject: {self.kept_queued}$' {self.prefix}/queue/mess 2>/dev/null | head -1")[1].strip()
        self.result("remove: mail held before the removal: one message in the queue, one delivered into "
                    f"{self.alias_maildir}",
                    bool(self.kept_queued_path) and bool(self.kept_delivered_path),
                    f"queued: {self.kept_queued_path or 'none'}; delivered: {self.kept_delivered_path or 'none'}")

    def remove_and_purge(self) -> None:
        self.hold_mail()
        _, mail_before = self.sh(f"ls /home/{TEST_USER}/Maildir/new | wc -l")
        code, out = self.pm_command("remove", name=self.package)
        self.result(f"remove: {self.pm.command('remove', name=self.package)}", code == 0, _tail(out))
        last_words = out
        gone, evidence = self.sup.removed()
        procs = self.qmail_processes()
        self.result(f"remove: services taken out of {self.sup.name} and stopped, no qmail process left",
                    gone and not procs, f"{evidence}; processes: [{procs}]")
        _, left = self.sh(f"test -d {self.prefix}/queue && ls /home/{TEST_USER}/Maildir/new | wc -l")
        self.result("remove: queue and Maildirs kept", left.strip() == mail_before.strip(),
                    f"{left.strip() or 'no queue'} messages in Maildir (had {mail_before.strip()})")
        if self.pm.purge is None:
            final = f"{self.pm.name} erase"  # no purge in this format: the erase is the last removal
        else:
            final = "purge"
            code, last_words = self.pm_command("purge", name=self.package)
            self.result(f"purge: {self.pm.command('purge', name=self.package)}", code == 0, _tail(last_words))
        self.mail_kept(final, last_words)
        self.made_things_gone(final)

    def mail_kept(self, step: str, output: str) -> None:
        kept = [path for path in (self.kept_queued_path, self.kept_delivered_path) if path]
        _, present = self.sh("for f in " + " ".join(shlex.quote(p) for p in kept) + "; do test -f \"$f\" && echo \"$f\"; done")
        present_paths = present.split()
        named = [path for path in kept if path in output]
        self.result(f"{step}: the queued and the delivered message survive it, and its output names them",
                    len(kept) == 2 and present_paths == kept and named == kept,
                    f"kept {len(present_paths)}/{len(kept)}, named {len(named)}/{len(kept)}: {' '.join(kept)}"
                    + ("" if named == kept else f"; output: {_tail(output, 8)}"))

    def made_things_gone(self, step: str) -> None:
        """Everything else the scripts made went; the accounts stayed."""
        checks = {
            "control/me": f"test ! -e {self.prefix}/control/me",
            ".qmail-root": f"test ! -e {shlex.quote(self.alias_home)}/.qmail-root",
            "logs": f"test ! -e {shlex.quote(self.log_dir)}",
            "state directory": f"test ! -e {shlex.quote(self.state_dir)}",
            "accounts kept": "getent passwd qmailq >/dev/null",
        }
        failed = [what for what, test in checks.items() if self.sh(test)[0] != 0]
        self.result(f"{step}: everything else the scripts made is gone (configuration, logs, state), accounts kept",
                    not failed, "wrong: " + ", ".join(failed) if failed else ", ".join(checks))

    def reinstall(self, artifact: BuiltPackage) -> None:
        code, out = self.pm_install(artifact)
        if not self.result(f"reinstall over leftover state: {self.pm.name}", code == 0, _tail(out)):
            return
        up, status = self.wait_up("qmail-send")
        ok, evidence = self.wait_delivered([self.kept_queued], timeout=30)
        self.result("reinstall: the message the removal kept in the queue is delivered", ok, evidence)
        subject = f"verify-reinstall-{int(time.time())}"
        code, out = self.inject([subject])
        ok, evidence = self.wait_delivered([subject], timeout=30) if code == 0 else (False, _tail(out))
        self.result("reinstall: qmail-send up and delivering", up and ok, f"{status}; {evidence}")
        self.all_up("reinstall")
        self.smtp("reinstall", f"verify-smtp-reinstall-{int(time.time())}")

    def snapshot(self) -> set[str]:
        _, listing = self.sh(SNAPSHOT)
        return set(listing.splitlines())

    def purge_without_mail(self) -> None:
        """Once the mail is dealt with (the kept message read and removed by
        hand, the queue drained), the last removal leaves nothing behind:
        the filesystem is as it was before the first install."""
        self.sh(f"rm -rf {shlex.quote(self.alias_maildir)}")
        self.sh(f"for i in $(seq 60); do [ -z \"$(find {self.prefix}/queue/mess -type f)\" ] && break; sleep 0.5; done")
        code, out = self.pm_command("remove", name=self.package)
        if code == 0 and self.pm.purge is not None:
            code, out = self.pm_command("purge", name=self.package)
        if code == 0 and self.host.pulled:
            # what apt brought in goes too, as `apt purge --autoremove` would take
            # it (its program back in place first, or dpkg would leave the copy)
            self.sh(f"mv -f {self.wrapped[1]} {self.wrapped[0]}")
            code, pulled_out = self.sh("DEBIAN_FRONTEND=noninteractive dpkg -P " + " ".join(self.host.pulled) + " 2>&1")
            out += "\n" + pulled_out
        after = self.snapshot()
        # What the output names as kept (files the administrator edited, where
        # the format keeps those) may stay, with the folders above it.
        named = {line.strip() for line in out.splitlines() if line.strip().startswith("/")}
        if self.switched and self.pm.switch_supervisor_file:
            # the administrator's answer (EL: /etc/sysconfig/<name>) is theirs, not the package's
            named.add(self.pm.switch_supervisor_file.format(name=self.package))
        allowed = named | {parent for path in named for parent in _parents(path)}
        new = sorted(path for path in after - self.before if not LIFECYCLE_NOISE.match(path))
        left = [path for path in new if path not in allowed]
        gone = sorted(path for path in self.before - after if not LIFECYCLE_NOISE.match(path))
        step = "purge" if self.pm.purge is not None else f"{self.pm.name} erase"
        kept = f"; kept what it named: {' '.join(p for p in new if p in named)}" if set(new) & named else ""
        self.result(f"{step} without mail: nothing the package made is left unnamed, nothing else is gone",
                    code == 0 and not left and not gone,
                    f"exit {code}; left: {left[:8]}; gone: {gone[:8]}" if (code or left or gone)
                    else f"{len(after)} paths, as before the first install{kept}")


# The whole filesystem of a verification container, less what is not ours to
# judge: kernel and runtime filesystems, the test user's home, verify's own files.
SNAPSHOT = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp "
            f"-o -path /home/{TEST_USER} -o -path {SVC_LOG} \\) -prune -o -print | sort")
# Changed by any package installation, not by the package: the package
# managers' databases and logs, the account databases' backups, debconf's cache.
LIFECYCLE_NOISE = re.compile(
    r"^/var/lib/(dpkg|rpm|apt)(/|$)|^/var/cache/(debconf|apt|ldconfig)(/|$)|^/var/log/(dpkg\.log|apt|alternatives\.log)"
    r"|^/etc/(passwd|group|shadow|gshadow)-$|^/var/lib/alternatives(/|$)"
    # systemd's own state on the systemd hosts (not the package's: its unit
    # links and deb-systemd-helper's records must go, and are checked)
    r"|^/var/log/journal(/|$)|^/var/lib/systemd/(timers|random-seed|catalog|coredump|pstore|linger|timesync)(/|$)"
    r"|^/var/(lib|cache|log)/private(/|$)"
)


def smtp_script(subject: str, local: str, foreign: str) -> str:
    """A shell SMTP client for tcpclient (ucspi-tcp): reads the server on fd 6,
    writes on fd 7, prints the conversation as C:/S: lines."""
    dialogue = f"""
r() {{ IFS= read -r line <&6 || line="(connection closed)"; printf 'S: %s\\n' "$(printf '%s' "$line" | tr -d '\\r')"; }}
w() {{ printf '%s\\r\\n' "$1" >&7; printf 'C: %s\\n' "$1"; }}
r
w 'HELO client.verify.test'; r
w 'MAIL FROM:<sender@client.verify.test>'; r
w 'RCPT TO:<{local}>'; r
w 'RCPT TO:<{foreign}>'; r
w 'DATA'; r
printf 'Subject: {subject}\\r\\n\\r\\nsent by qmail-pkg verify over SMTP\\r\\n.\\r\\n' >&7; printf 'C: (message)\\n'; r
w 'QUIT'; r
"""
    return f"tcpclient -RHl0 127.0.0.1 25 sh -c {shlex.quote(dialogue)} 2>&1"


SMTP_EXPECTED = ("220", "250", "250", "250", "553", "354", "250", "221")


def smtp_transcript_ok(transcript: str) -> tuple[bool, str]:
    """The server said 220, accepted HELO, MAIL and the local RCPT, refused the
    foreign RCPT (553: not an open relay), took the message and said goodbye."""
    replies = [line[3:] for line in transcript.splitlines() if line.startswith("S: ")]
    codes = tuple(reply[:3] for reply in replies)
    summary = " | ".join(replies) or transcript.strip()[-200:] or "no reply"
    return codes == SMTP_EXPECTED, summary


def _parents(path: str) -> list[str]:
    parents = []
    while (path := posixpath.dirname(path)) not in ("/", ""):
        parents.append(path)
    return parents


def _tail(text: str, lines: int = 2) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


_CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FD_PATH = re.compile(r"^\d+<([^>]*)>")  # strace -y: fsync(4</var/qmail/queue/mess/3>)
_CHANGES = ("link", "linkat", "unlink", "unlinkat", "rename", "renameat", "renameat2")


def _changed_dir(args: str, cwd: str) -> str | None:
    """The directory whose entry a link/unlink/rename changed (the new name's)."""
    paths = _QUOTED.findall(args)
    if not paths:
        return None
    return posixpath.dirname(posixpath.normpath(posixpath.join(cwd, paths[-1])))


def fsync_follows_queue_changes(trace: str, queue: str) -> tuple[bool, str]:
    """Every successful link/unlink/rename in the queue is followed, in the same
    process and before its next such change, by an fsync of the very directory
    whose entry changed. Reads `strace -f -y` output (fds annotated with paths)."""
    cwd: dict[str, str] = {}
    pending: dict[str, tuple[str, str]] = {}  # pid -> (call, directory awaiting fsync)
    changes = 0
    failures: list[str] = []
    for line in trace.splitlines():
        match = _CALL.match(line)
        if not match:
            continue
        pid, call, args, result = match.groups()
        if int(result) != 0:
            continue
        here = cwd.get(pid, "/")
        if call == "chdir":
            paths = _QUOTED.findall(args)
            if paths:
                cwd[pid] = posixpath.normpath(posixpath.join(here, paths[0]))
        elif call in _CHANGES:
            directory = _changed_dir(args, here)
            if directory is None or not (directory + "/").startswith(queue.rstrip("/") + "/"):
                continue
            if pid in pending:
                failures.append(f"no fsync of {pending[pid][1]} after {pending[pid][0]}")
            pending[pid] = (f"{call}({args[:60]})", directory)
            changes += 1
        elif call in ("fsync", "fdatasync") and pid in pending:
            synced = _FD_PATH.match(args)
            if synced and synced.group(1) == pending[pid][1]:
                del pending[pid]
    failures.extend(f"no fsync of {directory} after {what}" for what, directory in pending.values())
    if changes == 0:
        return False, "no link/unlink in the queue was traced"
    if failures:
        return False, f"{changes} queue changes, {len(failures)} without a directory fsync: {failures[0]}"
    return True, f"{changes} queue link/unlink/rename calls, each followed by fsync of the changed directory"


def svc_order(log: list[str], sup: Supervision) -> tuple[bool, str]:
    """The scripts stopped qmail-send while the old binary was in place and
    started it again only once the new one was."""
    downs = [line for line in log if sup.is_stop_call(line, "qmail-send")]
    ups = [line for line in log if sup.is_start_call(line, "qmail-send")]
    if not downs:
        return False, f"the scripts never stopped qmail-send ({sup.control_command})"
    if not ups:
        return False, f"the scripts never started qmail-send again ({sup.control_command})"
    inode_down = re.search(r"inode=(\S+)", downs[0]).group(1)
    inode_up = re.search(r"inode=(\S+)", ups[-1]).group(1)
    queued = re.search(r"queued=(\d+)", downs[0]).group(1)
    if log.index(downs[0]) > log.index(ups[-1]):
        return False, "the start came before the stop"
    if inode_down == inode_up:
        return False, f"qmail-send was not stopped before dpkg replaced it (same inode {inode_down} at svc -d and svc -u)"
    if int(queued) == 0:
        return False, "the queue was already empty at svc -d: the upgrade did not interrupt a working qmail-send"
    return True, (f"{sup.control_command} stopped the old qmail-send (inode {inode_down}, {queued} queue files), "
                  f"started the new (inode {inode_up})")


def _printer(stream: TextIO | None) -> Callable[[CheckResult], None]:
    def emit(check: CheckResult) -> None:
        if stream is not None:
            word = "SKIP" if check.skipped else "PASS" if check.passed else "FAIL"
            print(f"{word}  {check.name}: {check.evidence}", file=stream, flush=True)

    return emit


def run_verify(
    recipe: Recipe,
    target: Target,
    artifacts: list[Path],
    previous: Path | None = None,
    messages: int | None = None,
    stream: TextIO | None = None,
    host: Host = HOSTS["svscan"],
) -> Report:
    if target.builder != "docker":
        raise VerifyError(
            f"{target.name}: lifecycle verification runs in containers; {target.builder} targets are verified on their "
            "own hosts (FreeBSD: the .pkg read-back checks run everywhere, `qmail-pkg lint`)")
    for path in [*artifacts, *([previous] if previous else [])]:
        if not path.exists():
            raise VerifyError(f"{path}: no such artifact")
    current = BuiltPackage(artifacts[-1], find_record(artifacts[-1]))
    old_path = previous or (artifacts[0] if len(artifacts) > 1 else artifacts[-1])
    old = BuiltPackage(old_path, find_record(old_path))
    # the packages say which architecture's system they need
    architecture = current.record.architecture
    if architecture not in target.architectures:
        raise VerifyError(f"{current.path.name} is built for {architecture}, which {target.name} does not list")
    target = target.for_architecture(architecture)
    if messages is None:
        # Emulated, dpkg takes seconds to reach the preinst that stops
        # qmail-send; 200 messages are delivered by then and the check that
        # the upgrade interrupted a working qmail-send would find it idle.
        messages = IN_FLIGHT_EMULATED if emulated(architecture) else IN_FLIGHT
    environment = prepare_environment(target, host.role)
    report = Report(target.name if host.name == "svscan" else f"{target.name} on a {host.name} host")
    emit = _printer(stream)
    sandbox = open_sandbox(
        target,
        environment.reference,
        role=host.role,
        labels={"qmail-pkg.target": target.name, "qmail-pkg.host": host.name},
        cap_add=["SYS_PTRACE"],  # strace for the syncdir proof; verification containers only
        **host.container_options(),
    )
    with sandbox:
        life = Lifecycle(recipe, target, sandbox, report, emit, host)
        life.prepare()
        if life.install(old):
            life.syncdir_proof()
            life.upgrade_in_flight(old, current, messages)
            life.admin_down_stays_down(current)
            if host.switches and life.pm.switch_supervisor:
                life.switch_supervisor(current)
            life.remove_and_purge()
            life.reinstall(current)
            life.purge_without_mail()
    return report
