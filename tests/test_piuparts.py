"""piuparts, Debian's own package tester, strictly (no --warn-on-* option,
adequate's findings fatal, --install-remove-install) on the fixture package
of every Debian target, with the target's own image as the base system and
the mirror from the host's apt configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from builder.evidence import Evidence
from builder.verify.piuparts import IGNORED, STRICT_OPTIONS, base_tarball, findings_of, piuparts_command

from .conftest import ROOT, TARGET, artifact_of
from .test_verify import repack_control

DEBIAN_TARGETS = ("debian-11", "debian-12", "debian-13")


def qmail_pkg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)


def test_the_command_is_strict(recipe):
    target = recipe.target(TARGET)
    command = piuparts_command(target, ROOT / "x.deb", ROOT / "base.tgz", "http://mirror.invalid/debian")
    assert command[:9] == ["piuparts", "--defaults", "debian", "--distribution", "bookworm",
                           "--mirror", "http://mirror.invalid/debian", "--basetgz", str(ROOT / "base.tgz")]
    assert not any(word.startswith("--warn") for word in command)
    for option in ("--install-remove-install", "--fail-if-inadequate", "--pedantic-purge-test"):
        assert option in command and option in STRICT_OPTIONS
    # the only ignore: a folder debconf makes for every package with a config script
    assert [word for word in command if word.startswith("--ignore")] == ["--ignore=/var/cache/debconf/tmp.ci/"]
    assert IGNORED == ("/var/cache/debconf/tmp.ci/",)


def test_findings_are_the_error_and_warning_lines_with_what_they_list():
    log = (
        "0m1.0s INFO: Command line arguments: piuparts ...\n"
        "0m9.0s DEBUG: Recording chroot state\n"
        "0m9.2s ERROR: FAIL: Package purging left files on system:\n"
        "  /var/log/qmail/\t not owned\n"
        "  /var/qmail/queue/lock/trigger\t not owned\n"
        "\n"
        "0m9.2s ERROR: FAIL: Installation and purging test.\n"
        "0m9.3s DEBUG: Starting command: ['umount', '/tmp/x/proc']\n"
        "0m9.9s WARN: Broken symlinks:\n"
        "  /usr/lib/sendmail -> /var/qmail/bin/sendmail\n"
        "0m10.0s ERROR: piuparts run ends.\n"
    )
    assert findings_of(log) == [
        "FAIL: Package purging left files on system:",
        "  /var/log/qmail/\t not owned",
        "  /var/qmail/queue/lock/trigger\t not owned",
        "FAIL: Installation and purging test.",
        "WARN: Broken symlinks:",
        "  /usr/lib/sendmail -> /var/qmail/bin/sendmail",
    ]
    assert findings_of("0m14.2s INFO: PASS: All tests.\n0m14.2s INFO: piuparts run ends.\n") == []


def test_other_formats_and_missing_files_are_one_line_errors(tmp_path):
    result = qmail_pkg("piuparts", str(tmp_path / "x.rpm"), "--target", "el-9")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "el-9: piuparts tests Debian packages" in result.stderr and "Traceback" not in result.stderr
    result = qmail_pkg("piuparts", str(tmp_path / "missing.deb"), "--target", TARGET)
    assert result.returncode == 1 and "missing.deb: no such .deb" in result.stderr
    result = qmail_pkg("piuparts", "a.deb", "b.deb", "--target", TARGET, "--log", str(tmp_path / "l"))
    assert result.returncode == 1 and "--log names one log file" in result.stderr


@pytest.mark.parametrize("target_name", DEBIAN_TARGETS)
def test_piuparts_passes_strictly(built_for, recipe, target_name):
    """What `qmail-pkg piuparts` runs, through the command line: install,
    remove, install again, purge, nothing left; adequate finds nothing."""
    assert shutil.which("piuparts") and os.geteuid() == 0, "piuparts runs as root (./run.sh setup installs it)"
    deb = artifact_of(built_for(target_name), "deb")
    result = qmail_pkg("piuparts", str(deb), "--target", target_name, "--json")
    assert result.stdout, result.stderr
    [report] = json.loads(result.stdout)
    assert report["passed"] and report["findings"] == [], report["findings"]
    assert result.returncode == 0
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", f"qmail-pkg/{target_name}-verify:latest"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert report["base"].endswith(f"@{image_id.split(':')[-1][:16]}.tgz")  # the target's own image
    assert "--install-remove-install" in report["command"] and not any("--warn" in w for w in report["command"])
    log = open(report["log"]).read()
    assert "PASS: All tests." in log and "left files" not in log
    suite = recipe.target(target_name).suite
    assert f"--distribution {suite}" in " ".join(report["command"])
    assert "Purging configuration files for qmail-syncdir" in log
    assert "purge removed what the install scripts made" in log  # the postrm's own account of it
    # installed twice (install-remove-install), so the second install ran in config-files state
    assert log.count("Setting up qmail-syncdir") >= 2
    evidence = Evidence.loads(deb.with_name(f"{deb.name}.piuparts.evidence.json").read_text(), "e")
    assert evidence.kind == "piuparts" and evidence.passed and evidence.artifact == deb.name


def test_the_base_is_made_once_per_image(recipe):
    target = recipe.target(TARGET)
    first = base_tarball(target)
    stamp = first.stat().st_mtime_ns
    assert base_tarball(target) == first and first.stat().st_mtime_ns == stamp


def test_piuparts_fails_a_purge_that_leaves_the_queue(built_for, tmp_path):
    """Strict means strict: the purge this project used to have (the empty
    queue, log folders and Maildir kept) fails."""
    good = artifact_of(built_for(TARGET), "deb")
    broken = repack_control(good, tmp_path, "postrm", insert='[ "$1" = purge ] && exit 0\n')
    result = qmail_pkg("piuparts", str(broken), "--target", TARGET, "--json")
    [report] = json.loads(result.stdout)
    assert result.returncode == 1 and not report["passed"]
    assert "FAIL: Package purging left files on system:" in report["findings"]
    assert any(line.strip().startswith("/var/qmail/queue/lock/trigger") for line in report["findings"])
    assert any(line.strip().startswith("/var/log/qmail/") for line in report["findings"])
