"""One recipe, three formats: the el-9 .rpm (cross-compiled with Zig against
EL 9's glibc, linted and verified through its whole lifecycle with rpm in a
clean container, whose glibc is newer) and the freebsd-14 .pkg (cross-compiled
against FreeBSD's libc, read back: member order, manifest, checksums,
owners, modes; its lifecycle needs a FreeBSD system)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from builder.formats.pkgfile import file_sum, read_pkg, symlink_sum, urldecode, zbase32
from builder.package import PACKAGERS
from builder.verify import run_verify

from .conftest import ROOT, artifact_of

# -- the .pkg writer's checksums, against what FreeBSD's pkg computes -----------

def test_pkg_checksum_is_the_one_freebsd_pkg_writes():
    # `pkg create` (freebsd/pkg 2.8.4) gave this sum to a file holding "#!/bin/sh\n"
    assert file_sum(b"#!/bin/sh\n") == (
        "2$g96bccogdnmip7a3w8wwy84wzurzapfmujhdd9ouj1sp8nwbip1eotzo1xy61pijs9s8rryow8kywqnfja1w1nqj8gp9tizo1x3fp8d")
    assert zbase32(b"") == "" and zbase32(b"\x00") == "yy"
    # a link's sum covers its target without the leading '/', NUL-terminated
    assert symlink_sum("/var/qmail/bin/sendmail") == file_sum(b"var/qmail/bin/sendmail\0")
    assert symlink_sum("../x") == file_sum(b"../x")


def test_pkg_reads_back_as_pkg_would(built_pkg, recipe):
    pkg = artifact_of(built_pkg, "pkg")
    assert pkg.name == "qmail-syncdir-1.03_1.freebsd14.amd64.pkg"
    archive = read_pkg(pkg)
    members, compact, full, contents = archive.members, archive.compact, archive.full, archive.contents
    assert [m.name for m in members[:2]] == ["+COMPACT_MANIFEST", "+MANIFEST"]
    assert all(m.mtime == built_pkg_epoch(built_pkg) for m in members)
    assert (full["name"], full["version"], full["origin"]) == ("qmail-syncdir", "1.03_1", "mail/qmail-syncdir")
    assert (full["abi"], full["arch"], full["prefix"]) == ("FreeBSD:14:amd64", "freebsd:14:x86:64", "/var/qmail")
    assert full["users"][:2] == ["alias", "qmaild"] and "qnofiles" in full["groups"]
    assert full["licenselogic"] == "and" and full["licenses"] == ["PD", "GPLv2"]
    assert full["config"] == ["/var/qmail/control/defaultdelivery"]
    assert set(full["scripts"]) == {"pre-install", "post-install", "pre-deinstall", "post-deinstall"}
    assert "PKG_UPGRADE" in full["scripts"]["pre-install"] and "pw groupadd" in full["scripts"]["pre-install"]
    # the scripts name versions as pkg does; conflicting ports are refused by the
    # pre-install (pkg cannot install a manifest whose `conflicts` is absent)
    pre_install = urldecode(full["scripts"]["pre-install"])
    assert "QS_VERSION='1.03_1'" in pre_install
    assert "QS_CONFLICTING_PACKAGES='qmail netqmail notqmail'" in pre_install
    assert "conflicts" not in full and "conflicts" not in compact
    queue = full["files"]["/var/qmail/bin/qmail-queue"]
    assert (queue["uname"], queue["gname"], queue["perm"]) == ("qmailq", "qmail", "04711")
    assert queue["sum"] == file_sum(contents["/var/qmail/bin/qmail-queue"])
    assert full["directories"]["/var/qmail/alias"] == {"uname": "alias", "gname": "qmail", "perm": "02755"}
    assert full["directories"]["/var/qmail"]["gname"] == "qmail"
    # the system's folders are not the package's, and the queue is state
    assert not [d for d in full["directories"] if d in ("/var", "/usr", "/usr/local", "/usr/local/share")]
    assert not [p for p in full["files"] if p.startswith("/var/qmail/queue")]
    assert full["files"]["/usr/local/share/doc/qmail-syncdir/copyright"]["gname"] == "wheel"
    assert sum(len(data) for data in contents.values()) == full["flatsize"]
    assert {k: v for k, v in compact.items()} == {k: v for k, v in full.items() if k not in
                                                  ("files", "directories", "scripts", "config")}
    # every member is in the manifest, with the same owner and mode
    assert PACKAGERS["pkg"].lint(pkg, recipe).passed
    # the build record says what the tree was, and the package agrees
    record = json.loads(built_pkg.record_path.read_text())
    manifest = {row["path"]: row for row in record["staged_manifest"]}
    for path, attrs in full["files"].items():
        row = manifest[path]
        assert (row["owner"], row["group"] if row["group"] != "root" else "wheel") == (attrs["uname"], attrs["gname"])


def built_pkg_epoch(result) -> int:
    return json.loads(result.record_path.read_text())["source_date_epoch"]


def test_cross_builds_say_so_in_their_record(built_pkg, built_rpm):
    for result, triple in ((built_pkg, "x86_64-freebsd.14.0-none"), (built_rpm, "x86_64-linux-gnu.2.34")):
        record = json.loads(result.record_path.read_text())
        assert record["official"] is True and record["method"] == "cross" and record["userland"] == "debian"
        assert record["toolchain"]["name"] == "zig" and record["toolchain"]["target"] == triple
        assert len(record["toolchain"]["sha256"]) == 64 and record["toolchain"]["version"] == "0.17.1"
        provenance = json.loads(result.record_path.with_name(
            result.record_path.name.replace(".build.json", ".intoto.json")).read_text())
        dependencies = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert {"name": "toolchain:zig", "uri": triple, "digest": {"sha256": record["toolchain"]["sha256"]},
                "annotations": {"version": "0.17.1"}} in dependencies
        log = result.log_path.read_text()
        assert f"cross build (zig, {triple})" in log and "-o auto-uid" not in log.split("==> step")[0]


# -- the .rpm ------------------------------------------------------------------

def rpm_query(rpm, *args: str) -> str:
    return subprocess.run(["rpm", "-qp", *args, str(rpm)], capture_output=True, text=True, check=True).stdout


def test_rpm_metadata_scripts_and_files(built_rpm, recipe):
    rpm = artifact_of(built_rpm, "rpm")
    assert rpm.name == "qmail-syncdir-1.03-1.el9.x86_64.rpm"
    requires = rpm_query(rpm, "--requires").splitlines()
    assert any(line.startswith("libc.so.6(GLIBC_") for line in requires)  # from rpmdeps, versioned by symbol
    provides = rpm_query(rpm, "--provides").splitlines()
    for capability in ("MTA", "smtpdaemon", "server(smtp)", "/usr/sbin/sendmail"):
        assert capability in provides
    scripts = rpm_query(rpm, "--scripts")
    for scriptlet in ("preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet",
                      "postuninstall scriptlet"):
        assert scriptlet in scripts
    listing = rpm_query(rpm, "-lv")
    assert "-rws--x--x    1 qmailq   qmail" in listing and "/var/qmail/bin/qmail-queue" in listing
    assert " /usr\n" not in listing and " /var\n" not in listing  # the filesystem package's folders
    configs = rpm_query(rpm, "-c")
    assert configs.split() == ["/var/qmail/control/defaultdelivery"]
    flags = rpm_query(rpm, "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]")
    assert "cn /var/qmail/control/defaultdelivery" in flags  # %config(noreplace)
    assert "Release     : 1.el9" in rpm_query(rpm, "-i") and "Build Host  : qmail-pkg.invalid" in rpm_query(rpm, "-i")
    assert rpm_query(rpm, "--changelog").startswith("* ")


def test_rpmlint_finds_no_error(built_rpm, recipe):
    result = PACKAGERS["rpm"].lint(artifact_of(built_rpm, "rpm"), recipe)
    assert result.passed, result.evidence
    assert "0 errors" in result.evidence


def test_rpm_lifecycle_with_rpm_in_a_clean_system(built_rpm, built_rpm_next, recipe):
    """install, syncdir proof, upgrade with mail in flight, erase (rpm's purge: mail kept, the rest gone),
    reinstall, erase without mail (nothing left), with rpm."""
    report = run_verify(recipe, recipe.target("el-9"),
                        [artifact_of(built_rpm, "rpm"), artifact_of(built_rpm_next, "rpm")], messages=100)
    failed = [f"{s.name}: {s.evidence}" for s in report.steps if not s.passed]
    assert not failed, failed
    names = [s.name for s in report.steps]
    for expected in ("install: rpm installs it on a clean system", "install: rpm verifies the installed files",
                     "upgrade: rpm upgrades 1.03-1.el9 -> 1.03-2.el9 while delivering",
                     "upgrade: daemontools stops qmail-send before files are replaced, starts it after",
                     "upgrade: every in-flight message delivered exactly once", "remove: rpm -e qmail-syncdir",
                     "rpm erase: the queued and the delivered message survive it, and its output names them",
                     "rpm erase: everything else the scripts made is gone (configuration, logs, state), accounts kept",
                     "reinstall: the message the removal kept in the queue is delivered",
                     "rpm erase without mail: nothing the package made is left unnamed, nothing else is gone",
                     "reinstall: SMTP on port 25 accepts local mail, refuses to relay"):
        assert expected in names


@pytest.mark.parametrize("host", ["systemd", "systemd-daemontools"])
def test_rpm_lifecycle_on_systemd_hosts(built_rpm, built_rpm_next, recipe, host):
    """The rpm under systemd as PID 1: its own units where there is no
    daemontools (stopped before the upgrade replaces the files, started
    after, as %systemd_preun/%systemd_post would), and with daemontools-run
    the switch by SUPERVISOR= in sysconfig and a reinstall, both ways,
    never two qmail-send."""
    from builder.verify.hosts import HOSTS

    report = run_verify(recipe, recipe.target("el-9"),
                        [artifact_of(built_rpm, "rpm"), artifact_of(built_rpm_next, "rpm")], messages=100,
                        host=HOSTS[host])
    failed = [f"{s.name}: {s.evidence}" for s in report.steps if not s.passed]
    assert not failed, failed
    names = [s.name for s in report.steps]
    supervisor = HOSTS[host].supervisor
    assert f"upgrade: {supervisor} stops qmail-send before files are replaced, starts it after" in names
    assert f"install: every service and logger stays up under {supervisor} (same pid for 5 s)" in names
    if host == "systemd-daemontools":
        assert "switch to systemd: never two qmail-send at once" in names
        assert "switch to daemontools: systemd keeps nothing of the package" in names


def test_one_recipe_builds_all_three_formats_through_the_command_line(engine, miniature, tmp_path):
    args = [sys.executable, "-m", "builder.cli", "build", str(miniature[0]),
            "--target", "debian-12", "--target", "el-9", "--target", "freebsd-14",
            "--out", str(tmp_path), "--sources", str(miniature[1]), "--json"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr
    formats = sorted(a["format"] for entry in json.loads(result.stdout) for a in entry["artifacts"])
    assert formats == ["deb", "pkg", "rpm"]
    packages = sorted(str(p) for p in tmp_path.glob("*/*") if p.suffix in (".deb", ".rpm", ".pkg"))
    lint_run = subprocess.run([sys.executable, "-m", "builder.cli", "lint", *packages],
                              capture_output=True, text=True, cwd=ROOT)
    # per package: the format's linter, then six checks of its programs
    assert lint_run.returncode == 0 and lint_run.stdout.count("PASS") == 3 * 7, lint_run.stdout + lint_run.stderr
    assert "FAIL" not in lint_run.stdout
