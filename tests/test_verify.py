"""`qmail-pkg verify` on the fixture package: the whole lifecycle passes for
a good package, and a package whose scripts skip `svc -d` is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from builder.sandbox.docker import DockerSandbox
from builder.sandbox.images import image_spec
from builder.verify import run_verify
from builder.verify.checks import put_artifact
from builder.verify.hosts import HOSTS, DaemontoolsSupervision, SystemdSupervision
from builder.verify.lifecycle import fsync_follows_queue_changes, svc_order

from .conftest import ROOT, TARGET

EXPECTED_STEPS = (
    "install: dpkg installs it on a clean system",
    "install: every service and logger stays up under daemontools (same pid for 5 s)",
    "install: mail to the bare name 'verifyuser' delivered into ~/Maildir (host name 'verify.example.org')",
    "install: SMTP on port 25 accepts local mail, refuses to relay",
    "install: the message received by SMTP is delivered",
    "install: layout",
    "install: syncdir symbols",
    "install: dpkg verifies the installed files",
    "syncdir: strace shows a directory fsync after every queue link/unlink",
    "upgrade: daemontools stops qmail-send before files are replaced, starts it after",
    "upgrade: every in-flight message delivered exactly once",
    "upgrade: edited control files unchanged",
    "upgrade: every service and logger stays up under daemontools (same pid for 5 s)",
    "upgrade: SMTP on port 25 accepts local mail, refuses to relay",
    "upgrade with service down: a service the administrator took down stays down",
    "remove: services taken out of daemontools and stopped, no qmail process left",
    "purge: the queued and the delivered message survive it, and its output names them",
    "purge: everything else the scripts made is gone (configuration, logs, state), accounts kept",
    "reinstall: the message the removal kept in the queue is delivered",
    "reinstall: qmail-send up and delivering",
    "reinstall: SMTP on port 25 accepts local mail, refuses to relay",
    "reinstall: the message received by SMTP is delivered",
    "purge without mail: nothing the package made is left unnamed, nothing else is gone",
)


def deb_of(result) -> Path:
    return next(a.path for a in result.artifacts if a.format == "deb")


def test_lifecycle_passes_for_the_fixture_package(built, built_next):
    """Through the command line, as a user runs it: `qmail-pkg verify --json`."""
    result = subprocess.run(
        [sys.executable, "-m", "builder.cli", "verify", str(deb_of(built)), str(deb_of(built_next)),
         "--target", TARGET, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    report = json.loads(result.stdout)
    failed = [f"{s['name']}: {s['evidence']}" for s in report["steps"] if not s["passed"]]
    assert not failed, failed
    assert result.returncode == 0 and report["passed"] is True and report["target"] == TARGET
    names = [s["name"] for s in report["steps"]]
    for expected in EXPECTED_STEPS:
        assert expected in names


def repack_preinst(good: Path, dest_dir: Path, *, insert: str = "", append: str = "") -> Path:
    """Repack a .deb with its preinst changed (data member untouched)."""
    return repack_control(good, dest_dir, "preinst", insert=insert, append=append)


def repack_control(good: Path, dest_dir: Path, script: str, *, insert: str = "", append: str = "") -> Path:
    """Repack a .deb with one maintainer script changed (data member untouched)."""
    work = dest_dir / "repack"
    work.mkdir()
    subprocess.run(["ar", "x", str(good)], cwd=work, check=True)
    control = work / "control"
    control.mkdir()
    member = next(p.name for p in work.iterdir() if p.name.startswith("control.tar"))
    with tarfile.open(work / member) as tar:
        tar.extractall(control, filter="fully_trusted")
    changed = control / script
    lines = changed.read_text().splitlines(keepends=True)
    lines.insert(1, insert)
    changed.write_text("".join(lines) + append)
    (work / member).unlink()
    with tarfile.open(work / "control.tar.gz", "w:gz") as tar:
        for path in sorted(control.iterdir()):
            tar.add(path, arcname=f"./{path.name}",
                    filter=lambda i: (setattr(i, "uid", 0), setattr(i, "gid", 0), i)[-1])
    repacked = dest_dir / good.name
    data = next(p.name for p in work.iterdir() if p.name.startswith("data.tar"))
    subprocess.run(["ar", "rc", str(repacked), "debian-binary", "control.tar.gz", data], cwd=work, check=True)
    return repacked


def _without_svc_down(good: Path, dest_dir: Path) -> Path:
    # A shell function shadows the command: every `svc -d` becomes a no-op.
    return repack_preinst(good, dest_dir, insert='svc() { case "$1" in -d) return 0 ;; esac; command svc "$@"; }\n')


def test_verify_fails_when_scripts_skip_svc_down(built, built_next, recipe, tmp_path):
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    broken = _without_svc_down(deb_of(built_next), broken_dir)
    shutil.copy(built_next.record_path, broken_dir / built_next.record_path.name)
    report = run_verify(recipe, recipe.target(TARGET), [deb_of(built), broken], messages=50)
    assert not report.passed
    step = next(s for s in report.steps
                if s.name == "upgrade: daemontools stops qmail-send before files are replaced, starts it after")
    assert not step.passed and "never stopped qmail-send (svc)" in step.evidence


def test_strace_parser_needs_an_fsync_of_the_changed_directory():
    queue = "/var/qmail/queue"
    good = (
        '10 chdir("/var/qmail") = 0\n10 chdir("queue") = 0\n'
        '10 link("pid/10", "mess/3/99") = 0\n'
        '10 openat(AT_FDCWD</var/qmail/queue>, "mess/3", O_RDONLY) = 4</var/qmail/queue/mess/3>\n'
        '10 fsync(4</var/qmail/queue/mess/3>) = 0\n'
        '10 unlink("pid/10") = 0\n10 fsync(5</var/qmail/queue/pid>) = 0\n'
    )
    assert fsync_follows_queue_changes(good, queue)[0]
    no_fsync = good.replace("10 fsync(4</var/qmail/queue/mess/3>) = 0\n", "")
    ok, evidence = fsync_follows_queue_changes(no_fsync, queue)
    assert not ok and "no fsync of /var/qmail/queue/mess/3" in evidence
    # fsync of the message file itself is not an fsync of the directory
    file_only = good.replace("fsync(4</var/qmail/queue/mess/3>)", "fsync(6</var/qmail/queue/mess/3/99>)")
    assert not fsync_follows_queue_changes(file_only, queue)[0]
    # changes outside the queue are not ours to judge
    assert not fsync_follows_queue_changes('10 unlink("/tmp/x") = 0\n', queue)[0]
    assert not fsync_follows_queue_changes("", queue)[0]


def test_svc_order_needs_old_binary_at_down_and_new_at_up():
    sup = DaemontoolsSupervision(None, "/service")
    good = ["1.0 inode=10 queued=5 svc -d /service/qmail-send", "2.0 inode=11 queued=3 svc -u /service/qmail-send"]
    assert svc_order(good, sup)[0]
    same_inode = ["1.0 inode=10 queued=5 svc -d /service/qmail-send",
                  "2.0 inode=10 queued=3 svc -u /service/qmail-send"]
    assert not svc_order(same_inode, sup)[0]
    empty_queue = ["1.0 inode=10 queued=0 svc -d /service/qmail-send",
                   "2.0 inode=11 queued=0 svc -u /service/qmail-send"]
    assert "did not interrupt" in svc_order(empty_queue, sup)[1]
    assert not svc_order(good[1:], sup)[0]
    # the wrapper's lines are the sandbox's output: a line without its fields is a failed check, not a crash
    bare = ["1.0 svc -d /service/qmail-send", "2.0 svc -u /service/qmail-send"]
    assert "lack inode= or queued=" in svc_order(bare, sup)[1]


def test_systemd_order_reads_systemctl_calls_not_queries():
    sup = SystemdSupervision(None)
    good = ["1.0 inode=10 queued=5 systemctl is-active --quiet qmail-send.service",
            "1.1 inode=10 queued=5 systemctl stop qmail-send.service",
            "2.0 inode=11 queued=3 systemctl start qmail-send.service"]
    assert svc_order(good, sup)[0]
    # queries alone, or a stop of another unit, are no stop of qmail-send
    assert not svc_order([good[0], good[2]], sup)[0]
    assert not svc_order(["1.1 inode=10 queued=5 systemctl stop qmail-smtpd.service", good[2]], sup)[0]
    # a daemontools wrapper log means nothing to the systemd reading
    assert not svc_order(["1.0 inode=10 queued=5 svc -d /service/qmail-send",
                          "2.0 inode=11 queued=3 svc -u /service/qmail-send"], sup)[0]


@pytest.mark.parametrize("host", ["systemd", "systemd-daemontools", "systemd-apt"])
def test_lifecycle_passes_on_systemd_hosts(built, built_next, host):
    """systemd as PID 1, a host name without a domain part: the package picks
    its own supervisor (its units without daemontools, daemontools-run's
    svscan with it, and daemontools-run when apt installs the recommends),
    serves SMTP and delivers to bare local names; with daemontools-run,
    switching supervisor back and forth never runs two qmail-send."""
    result = subprocess.run(
        [sys.executable, "-m", "builder.cli", "verify", str(deb_of(built)), str(deb_of(built_next)),
         "--target", TARGET, "--host", host, "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    report = json.loads(result.stdout)
    failed = [f"{s['name']}: {s['evidence']}" for s in report["steps"] if not s["passed"]]
    assert not failed, failed
    assert result.returncode == 0 and report["passed"] is True
    names = [s["name"] for s in report["steps"]]
    supervisor = HOSTS[host].supervisor
    assert f"install: every service and logger stays up under {supervisor} (same pid for 5 s)" in names
    assert "install: mail to the bare name 'verifyuser' delivered into ~/Maildir (host name 'mailhost')" in names
    assert f"upgrade: {supervisor} stops qmail-send before files are replaced, starts it after" in names
    assert "purge without mail: nothing the package made is left unnamed, nothing else is gone" in names
    if host == "systemd-apt":
        # `apt install ./pkg.deb` on a fresh systemd host: the recommends make supervision run
        assert "install: qmail runs under daemontools, which apt brought in" in names
    switching = [n for n in names if n.startswith("switch to ")]
    if host == "systemd-daemontools":
        assert "switch to systemd: never two qmail-send at once" in switching
        assert "switch to daemontools: never two qmail-send at once" in switching
    else:
        assert not switching


def test_smtp_transcript_needs_a_refused_relay_and_every_reply():
    from builder.verify.traces import smtp_transcript_ok

    good = ("S: 220 x ESMTP\nC: HELO\nS: 250 x\nS: 250 ok\nS: 250 ok\nS: 553 sorry\nS: 354 go\nS: 250 ok 1 qp 2\n"
            "S: 221 x\n")
    assert smtp_transcript_ok(good)[0]
    open_relay = good.replace("S: 553 sorry", "S: 250 ok")
    assert not smtp_transcript_ok(open_relay)[0]
    assert not smtp_transcript_ok("tcpclient: unable to connect to 127.0.0.1 port 25: connection refused")[0]
    assert not smtp_transcript_ok("S: 220 x\nS: (connection closed)\n")[0]


def test_a_crash_looping_smtpd_is_not_up_and_serves_nothing(built, recipe):
    """The bug verify once missed: tcpserver given the port by name on a system
    without /etc/services dies at once, and supervise restarts it every second."""
    from builder.verify.lifecycle import Lifecycle, Report

    spec = image_spec(recipe.target(TARGET), "verify")
    box = DockerSandbox(spec.reference, role="verify", hostname=HOSTS["svscan"].hostname,
                        command=["sh", "-c", "mkdir -p /service && exec svscan /service"])
    with box:
        code, out = box.output(["sh", "-c",
                                f"DEBIAN_FRONTEND=noninteractive dpkg -i {put_artifact(box, deb_of(built))}"])
        assert code == 0, out
        box.output(["sh", "-c", "rm -f /etc/services; "
                                "sed -i 's/ 0 25 / 0 smtp /' /var/qmail/supervise/qmail-smtpd/run; "
                                "svc -t /service/qmail-smtpd"])
        report = Report(TARGET)
        life = Lifecycle(recipe, recipe.target(TARGET), box, report, lambda check: None)
        life.prepare()
        assert not life.all_up("broken", timeout=15)
        assert not life.smtp("broken", "verify-smtp-broken")
        assert [s.passed for s in report.steps] == [False, False, False]


def test_host_images_and_their_offered_packages(recipe):
    """Each host kind has its own image; the apt host's image carries the
    recommends in a local repository, and that list is part of its identity."""
    from dataclasses import replace

    from builder.platforms.debian import _offered_hooks
    from builder.sandbox.images import image_spec

    target = recipe.target(TARGET)
    specs = {host.name: image_spec(target, host.role) for host in HOSTS.values()}
    assert specs["svscan"].reference == f"qmail-pkg/{TARGET}-verify:latest"
    assert specs["systemd-apt"].reference == f"qmail-pkg/{TARGET}-verify-systemd-apt:latest"
    assert "daemontools" not in specs["systemd"].packages and "systemd-sysv" in specs["systemd"].packages
    assert "daemontools-run" in specs["systemd-daemontools"].packages
    assert specs["systemd-apt"].offered == ("daemontools", "daemontools-run")
    assert "daemontools-run" not in specs["systemd-apt"].packages
    apt = specs["systemd-apt"]
    assert replace(apt, offered=()).definition_hash != apt.definition_hash
    assert specs["svscan"].offered == () and _offered_hooks(()) == []
    hooks = " ".join(_offered_hooks(apt.offered))
    assert "apt-get -q download daemontools daemontools-run" in hooks and "apt-ftparchive packages" in hooks


@pytest.mark.parametrize("host", ["svscan", "systemd"])
def test_a_missing_tcpserver_is_named_with_the_package_that_brings_it(built, recipe, host):
    """An admin who installed without ucspi-tcp sees why qmail-smtpd cannot
    stay up and what to install, under either supervisor."""
    kind = HOSTS[host]
    spec = image_spec(recipe.target(TARGET), kind.role)
    with DockerSandbox(spec.reference, role="verify", **kind.container_options()) as box:
        if kind.boots:
            box.output(["sh", "-c", "systemctl is-system-running --wait"])
        code, out = box.output(["sh", "-c", "rm -f \"$(command -v tcpserver)\" && ! command -v tcpserver"])
        assert code == 0, out
        code, out = box.output(["sh", "-c",
                                f"DEBIAN_FRONTEND=noninteractive dpkg -i {put_artifact(box, deb_of(built))}"])
    assert code == 0, out
    assert "qmail-smtpd needs tcpserver, which is not installed: apt-get install ucspi-tcp" in out, out
    assert "qmail-send needs" not in out  # only what is missing is named
