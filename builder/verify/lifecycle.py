"""`qmail-pkg verify`: the install / upgrade / remove lifecycle of real
packages in a clean sandbox, on each kind of host (hosts.py: svscan as the
main process, systemd with daemontools-run, systemd alone).

Every step reports pass/fail with the evidence it saw. The maintainer scripts'
calls to the supervisor (svc, or systemctl) are recorded by a logging wrapper
that takes the real program's place (session.py); it also notes the inode of
bin/qmail-send at each call, which proves whether the call came before or
after the package manager replaced the files. Removal and purge are in
removal.py; the readers of SMTP, strace and the call log in traces.py.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..emulation import emulated
from ..environment import open_sandbox, prepare_environment
from ..errors import VerifyError
from ..evidence import CheckResult
from ..recipe.model import Recipe, Target
from ..record import BuildRecord, RecordError
from .checks import installed_checks, put_artifact
from .hosts import HOSTS, Host
from .removal import RemovalSteps
from .session import SVC_LOG, TEST_USER, BuiltPackage, Report, _tail
from .traces import fsync_follows_queue_changes, svc_order

IN_FLIGHT = 200  # messages queued before the upgrade
IN_FLIGHT_EMULATED = 1000


def find_record(artifact: Path) -> BuildRecord:
    """The build record written beside the artifact by `qmail-pkg build`."""
    try:
        return BuildRecord.beside(artifact)
    except RecordError as exc:
        raise VerifyError(f"{exc}; verify needs it") from None


class Lifecycle(RemovalSteps):
    """The steps in order: install, the syncdir proof, the upgrade with mail
    in flight, a service left down, the supervisor switch (removal.py: the rest)."""

    def install(self, artifact: BuiltPackage) -> bool:
        if self.host.user_install:
            if self.pm.user_install is None:
                raise VerifyError(f"{self.pm.name} has no way to install a package as a user does here")
            code, out = self.pm_command("user_install", path=put_artifact(self.box, artifact.path))
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
        ok, evidence = (self.wait_delivered([subject], timeout=30) if code == 0
                        else (False, f"qmail-inject failed: {_tail(out)}"))
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
            f"strace -f -qq -y -o {trace} "
            "-e trace=chdir,open,openat,link,linkat,unlink,unlinkat,rename,renameat,renameat2,fsync,fdatasync "
            f"{self.prefix}/bin/qmail-inject {TEST_USER} 2>&1; echo exit=$?"
        )
        _, text = self.sh(f"cat {trace}")
        ok, evidence = fsync_follows_queue_changes(text, f"{self.prefix}/queue")
        self.result(name, ok and "exit=0" in out, evidence)

    def upgrade_in_flight(self, old: BuiltPackage, new: BuiltPackage, messages: int) -> None:
        name = "upgrade"
        control = f"{self.prefix}/control"
        self.sh(f"echo verify.invalid >> {control}/locals; "
                f"echo '# edited by the administrator' >> {control}/rcpthosts 2>/dev/null; true")
        _, control_before = self.sh(f"cd {control} && sha256sum * 2>/dev/null")
        self.sh(self.sup.stop("qmail-send"))
        subjects = [f"verify-flight-{n:04d}" for n in range(messages)]
        code, out = self.inject(subjects)
        if not self.result(f"{name}: {messages} messages queued while qmail-send is down", code == 0,
                           _tail(out) or "queued"):
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
        self.result(f"{name}: {self.pm.name} upgrades {old.version} -> {new.version} while delivering", code == 0,
                    _tail(out))
        log = self.svc_log()
        ok, evidence = svc_order(log, self.sup)
        self.result(f"{name}: {self.sup.name} stops qmail-send before files are replaced, starts it after", ok,
                    evidence)
        ok, evidence = self.wait_delivered(subjects, timeout=max(60, messages))
        self.result(f"{name}: every in-flight message delivered exactly once", ok, evidence)
        _, queued = self.sh(f"find {self.prefix}/queue/mess {self.prefix}/queue/todo -type f | wc -l")
        self.result(f"{name}: queue drained", queued.strip() == "0", f"{queued.strip()} files left in mess/ and todo/")
        _, control_after = self.sh(f"cd {control} && sha256sum * 2>/dev/null")
        self.result(f"{name}: edited control files unchanged", control_before == control_after,
                    "identical" if control_before == control_after
                    else f"before: {control_before!r} after: {control_after!r}")
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
                "(while :; do pgrep -x qmail-send | wc -l >> /tmp/qmail-pkg-send-count; sleep 0.05; done) & "
                "sampler=$!; "
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


__all__ = ["Lifecycle", "Report", "find_record", "run_verify"]
