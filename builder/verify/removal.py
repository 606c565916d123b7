"""The last steps of a lifecycle: removal with mail held, purge (or the
format's erase), reinstall over what was kept, and a last purge that must
leave the filesystem as it was before the first install."""

from __future__ import annotations

import shlex
import time

from .session import TEST_USER, BuiltPackage, Session, _parents, _tail


class RemovalSteps(Session):
    """Remove, purge, reinstall: the steps after the upgrade."""

    def hold_mail(self) -> None:
        """Mail the last removal must keep: a message delivered into the
        package's own ~alias/Maildir (mail to root) and one left in the queue
        with qmail-send down."""
        stamp = int(time.time())
        self.kept_delivered = self.kept_delivered_path = ""
        if self.sh(f"test -d {shlex.quote(self.alias_maildir)}")[0] == 0:
            subject = f"verify-kept-delivered-{stamp}"
            self.sh(f"printf 'Subject: %s\\n\\nqmail-pkg verify\\n' {subject} | "
                    f"{self.prefix}/bin/qmail-inject {self.alias_user}")
            deadline = time.monotonic() + 30
            while not self.kept_delivered_path and time.monotonic() < deadline:
                self.kept_delivered_path = self.sh(
                    f"grep -l '^Subject: {subject}$' {shlex.quote(self.alias_maildir)}/new/* 2>/dev/null "
                    "| head -1")[1].strip()
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
        _, present = self.sh("for f in " + " ".join(shlex.quote(p) for p in kept)
                             + "; do test -f \"$f\" && echo \"$f\"; done")
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
        new = sorted(path for path in after - self.before if not self.noise.match(path))
        left = [path for path in new if path not in allowed]
        gone = sorted(path for path in self.before - after if not self.noise.match(path))
        step = "purge" if self.pm.purge is not None else f"{self.pm.name} erase"
        kept = f"; kept what it named: {' '.join(p for p in new if p in named)}" if set(new) & named else ""
        self.result(f"{step} without mail: nothing the package made is left unnamed, nothing else is gone",
                    code == 0 and not left and not gone,
                    f"exit {code}; left: {left[:8]}; gone: {gone[:8]}" if (code or left or gone)
                    else f"{len(after)} paths, as before the first install{kept}")

