"""Power cuts in a virtual machine: the package keeps every acknowledged
message, the baseline built --without syncdir does not.

The integration test boots Debian's kernel under qemu (TCG), with the
miniature qmail, whose qmail-queue writes and fsyncs the message and then
links it into the queue without syncing the directory, as qmail does; a few
cycles per variant on ext4 without a journal, where the difference shows
most. The unit tests pin the classification and the machine's command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.cli import main
from builder.evidence import Evidence
from builder.verify.powercut.classify import acknowledged, classify, snapshots
from builder.verify.powercut.machine import Boot, Disk, job_disk, qemu_command

from .conftest import RECIPE, artifact_of

HERE = Path(__file__).resolve().parents[1] / "builder" / "verify" / "powercut"


# -- classification -------------------------------------------------------------
CRASH = [
    "QP READY", "QP ACK 1.1", "QP ACK 2.1", "QP NACK 3.1", "QP ACK 1.2", "QP ACK 2.2", "QP ACK 3.2",
    "QP ACK 1.3", "garbage QP ACK 9.9", "QP ACK 1.2",  # repeated: counted once
]
RECOVERY = [
    "QP REPAIR-BEGIN", "QP REPAIR Pass 1", "QP REPAIR-END",
    "QP BEFORE MAILDIR 1.1",
    "QP BEFORE MESS 101 2.1", "QP BEFORE FILE todo 101",  # queued through todo/
    "QP BEFORE MESS 102 1.2", "QP BEFORE FILE info 102", "QP BEFORE FILE local 102",  # queued, being delivered
    "QP BEFORE MESS 103 2.2", "QP BEFORE FILE intd 103",  # never linked into todo/: stranded
    "QP BEFORE LOSTFOUND 3.2",  # only in lost+found: lost
    "QP BEFORE MESS 104 -",  # a message file with its contents gone
    # 1.3 is nowhere: lost
    "QP AFTER MAILDIR 1.1", "QP AFTER MAILDIR 2.1", "QP AFTER MAILDIR 1.2", "QP AFTER MAILDIR 1.2",
    "QP AFTER FILE intd 103", "QP DONE",
]


def test_every_acknowledged_message_gets_one_state():
    assert acknowledged(CRASH) == ["1.1", "2.1", "1.2", "2.2", "3.2", "1.3"]
    outcome = classify(CRASH, RECOVERY)
    assert outcome.acknowledged == 6
    assert outcome.counts == {"delivered": 1, "queued": 2, "stranded": 1, "lost": 2}
    assert outcome.not_recovered == ()
    assert outcome.duplicated == ("1.2",)  # delivered twice after recovery
    assert outcome.examples["stranded"] == ("2.2",) and outcome.examples["lost"] == ("3.2", "1.3")
    assert not outcome.safe


def test_queued_mail_that_recovery_did_not_deliver_is_reported():
    recovery = [line for line in RECOVERY if line != "QP AFTER MAILDIR 2.1"]
    outcome = classify(["QP ACK 2.1"], recovery)
    assert outcome.counts["queued"] == 1 and outcome.not_recovered == ("2.1",) and not outcome.safe


def test_safe_means_nothing_stranded_lost_or_missing_and_duplicates_are_counted():
    crash = ["QP ACK 1.1", "QP ACK 1.2"]
    recovery = ["QP BEFORE MAILDIR 1.1", "QP BEFORE MESS 7 1.2", "QP BEFORE FILE todo 7",
                "QP AFTER MAILDIR 1.1", "QP AFTER MAILDIR 1.2", "QP DONE"]
    assert classify(crash, recovery).safe
    twice = classify(crash, recovery + ["QP AFTER MAILDIR 1.2"])
    assert twice.safe and twice.duplicated == ("1.2",)  # at least once, as qmail promises; shown in the report


@pytest.mark.parametrize("line", [
    "QP BEFORE MESS 1 1.1; rm -rf /", "QP BEFORE FILE etc 1", "QP BEFORE MAILDIR ../x", "QP AFTER MESS x 1.1",
    "QP BEFORE MESS 1 1.1 extra", "QP BEFORE MAILDIR " + "1" * 5000,
])
def test_lines_that_do_not_fit_the_grammar_are_ignored(line):
    before, after = snapshots([line])
    assert not before.mess and not before.files and not before.maildir and not after.maildir


# -- the machine --------------------------------------------------------------------
def test_qemu_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv("QMAIL_PKG_VM_ACCEL", raising=False)
    boot = Boot(tmp_path / "vmlinuz", tmp_path / "initrd", Disk(tmp_path / "root,1.qcow2", format="qcow2"),
                Disk(tmp_path / "job.tar"), Disk(tmp_path / "data.img", writable=True, direct=True))
    command = qemu_command(boot)
    drives = [command[i + 1] for i, word in enumerate(command) if word == "-drive"]
    assert drives[0] == f"file={tmp_path}/root,,1.qcow2,format=qcow2,if=virtio,readonly=on"  # comma doubled
    assert drives[1].endswith("format=raw,if=virtio,readonly=on")
    assert drives[2].endswith("format=raw,if=virtio,cache=none")  # the power cut drops only the guest's cache
    append = command[command.index("-append") + 1]
    assert "root=/dev/vda ro" in append and "init=/sbin/qmail-pkg-init" in append
    assert command[command.index("-accel") + 1].startswith("tcg") and "-no-reboot" in command


def test_job_settings_reach_the_guest_as_written(tmp_path):
    tricky = "it's \"$HOME\" `id`; $(touch pwned) \\ end"
    disk = job_disk(tmp_path / "job.tar", {"QP_VALUE": tricky, "QP_OTHER": "plain"})
    assert disk.stat().st_size % 512 == 0
    unpacked = tmp_path / "job"
    unpacked.mkdir()
    subprocess.run(["tar", "-xf", str(disk), "-C", str(unpacked)], check=True)
    shown = subprocess.run(["sh", "-c", '. ./settings && printf %s "$QP_VALUE"'], cwd=unpacked,
                           capture_output=True, text=True, check=True).stdout
    assert shown == tricky and not (unpacked / "pwned").exists()


@pytest.mark.parametrize("script", ["guest.sh", "init.sh"])
def test_machine_scripts_are_shellcheck_clean(script):
    result = subprocess.run(["shellcheck", "-s", "sh", str(HERE / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# -- options, variants and their guards ----------------------------------------------
@pytest.fixture(scope="module")
def baseline(engine, recipe, fixture_sources, tmp_path_factory):
    """The miniature package built --without syncdir: the power-cut baseline."""
    from builder.pipeline import BuildOptions, build_target

    out = tmp_path_factory.mktemp("baseline")
    options = BuildOptions(out_dir=out, sources_dir=out / "no-cache", overrides=tuple(fixture_sources.items()),
                           revision=1, quiet=True, choices=(("syncdir", False),))
    return build_target(recipe, recipe.target("debian-12"), options)


def test_the_baseline_is_a_renamed_variant_without_syncdir(baseline, built):
    deb = artifact_of(baseline, "deb")
    record = json.loads(baseline.record_path.read_text())
    assert deb.name.startswith("qmail-syncdir-no-syncdir_")
    assert record["variant"] == {"syncdir": False} and record["official"] is False
    assert not any("syncdir" in step.lower() and "libsyncdir" in step for step in record["steps"])
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Description"], capture_output=True, text=True,
                            check=True).stdout
    assert "Package: qmail-syncdir-no-syncdir" in fields and "VARIANT BUILD (without syncdir)" in fields
    # the relinked binaries carry syncdir's open(); the baseline's import libc's
    symbols = {}
    for name, result in (("package", built), ("baseline", baseline)):
        tree = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(artifact_of(result, "deb"))], capture_output=True,
                              check=True).stdout
        folder = Path(str(result.record_path.parent)) / f"x-{name}"
        folder.mkdir(exist_ok=True)
        subprocess.run(["tar", "-xf", "-", "-C", str(folder), "./var/qmail/bin/qmail-queue"], input=tree, check=True)
        symbols[name] = subprocess.run(["nm", "-D", str(folder / "var/qmail/bin/qmail-queue")], capture_output=True,
                                       text=True, check=True).stdout
        shutil.rmtree(folder)
    assert " T link" in symbols["package"] and " T link" not in symbols["baseline"]


def test_variants_are_never_published(baseline, tmp_path, capsys):
    dist = tmp_path / "dist"
    shutil.copytree(baseline.record_path.parent, dist / "debian-12")
    assert main(["repo", "publish", str(dist), "--repo", str(tmp_path / "repo"), "--key", "ABCD"]) != 0
    err = capsys.readouterr().err
    assert "a variant build (without syncdir) is never published" in err and len(err.strip().splitlines()) == 1


def test_option_errors_stop_before_any_sandbox(tmp_path, capsys):
    assert main(["build", str(RECIPE), "--target", "debian-12", "--without", "fsync", "--out", str(tmp_path)]) == 1
    assert "--without fsync: the recipe has no option 'fsync' (options: syncdir)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build", str(RECIPE), "--target", "debian-12", "--with", "Bad_Name"])
    assert not any(tmp_path.iterdir())


def test_power_cut_refuses_swapped_package_and_baseline(built, baseline, tmp_path, capsys):
    package, variant = artifact_of(built, "deb"), artifact_of(baseline, "deb")
    args = ["verify", "--target", "debian-12", "--power-cut", "1", "--keep", str(tmp_path / "k")]
    assert main([*args, str(variant)]) != 0
    assert "is a variant build" in capsys.readouterr().err
    assert main([*args, str(package), "--baseline", str(package)]) != 0
    assert "not a variant build; build it with --without syncdir" in capsys.readouterr().err


# -- real power cuts -------------------------------------------------------------
@pytest.fixture(scope="module")
def vm_cache(tmp_path_factory):
    """Machines made for this run only (the base takes about a minute)."""
    folder = tmp_path_factory.mktemp("vm-cache", numbered=True)
    previous = os.environ.get("QMAIL_PKG_VM_CACHE")
    os.environ["QMAIL_PKG_VM_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("QMAIL_PKG_VM_CACHE", None)
    else:
        os.environ["QMAIL_PKG_VM_CACHE"] = previous


def test_acknowledged_mail_survives_power_cuts_only_with_syncdir(built, baseline, vm_cache, tmp_path, capsys):
    keep = tmp_path / "power-cut"
    code = main(["verify", str(artifact_of(built, "deb")), "--target", "debian-12", "--power-cut", "2",
                 "--fs", "ext4-nojournal", "--baseline", str(artifact_of(baseline, "deb")), "--keep", str(keep),
                 "--json"])
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    assert code == 0 and report["passed"] is True, printed.err[-3000:]
    package = report["filesystems"]["ext4-nojournal"]["package"]
    variant = report["filesystems"]["ext4-nojournal"]["baseline"]
    for totals in (package, variant):
        assert {"acknowledged", "delivered", "queued", "stranded", "lost"} <= set(totals)
        assert all(isinstance(totals[k], int) for k in ("acknowledged", "delivered", "queued", "stranded", "lost"))
    assert package["cycles"] == 2 and package["failed_cycles"] == 0
    assert package["acknowledged"] > 0 and package["stranded"] == 0 and package["lost"] == 0
    assert package["delivered"] + package["queued"] == package["acknowledged"]
    # the miniature qmail-local never delivers one message to one mailbox twice
    assert package["not_recovered"] == 0 and package["duplicated"] == 0
    # the experiment can fail: without syncdir, acknowledged mail is stranded or lost
    assert variant["failed_cycles"] == 0 and variant["stranded"] + variant["lost"] >= 1
    # what each cycle saw is kept; passing cycles drop their disk image
    for row in report["cycles"]:
        folder = Path(row["folder"])
        assert (folder / "crash.console").read_text().count("QP ACK ") >= row["acknowledged"]
        assert "QP DONE" in (folder / "recover.console").read_text()
        assert (folder / "repair.log").read_text().strip()  # e2fsck's own words
        assert not (folder / "data.img").exists()
    assert json.loads((keep / "report.json").read_text())["passed"] is True
    deb = artifact_of(built, "deb")  # the run as evidence beside the package, for the publishing job
    evidence = Evidence.loads(deb.with_name(f"{deb.name}.power-cut.evidence.json").read_text(), "e")
    rows = {(row.filesystem, row.variant): row for row in evidence.power_cut}
    assert evidence.passed and rows["ext4-nojournal", "package"].acknowledged == package["acknowledged"]
    assert rows["ext4-nojournal", "baseline"].lost == variant["lost"]
