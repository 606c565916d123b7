"""Cross-compiled packages, checked as their users' systems would need them:
for one FreeBSD and one EL target on each architecture, and Debian arm64
built with Debian's own cross gcc.

Each is an official build of the miniature recipe in a Docker container on
this Linux host (no FreeBSD or EL machine). `qmail-pkg lint` reads every
program in the package: OS/ABI, interpreter, libraries, the newest libc
symbol version it needs (no newer than the release's), and syncdir's open,
link, rename and unlink defined in the programs that touch the queue. The
miniature qmail builds the programs its Makefile runs (auto-uid and friends)
with the build machine's compiler, as the real one needs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from builder.environment import build_image_spec
from builder.formats.elf import read_program
from builder.formats.pkgfile import read_pkg
from builder.package import PACKAGERS
from builder.pipeline import BuildOptions, build_target
from builder.platforms import platform_for
from builder.record import BuildRecord
from builder.verify.binaries import check_programs
from builder.verify.lint import lint_artifact

from .conftest import ROOT, artifact_of
from .test_repo import gnupg, publish  # noqa: F401  (the module's fixture: a signing key and a pkg key)

BUILDS = {
    ("freebsd-14", "amd64"): ("pkg", "ELFOSABI_FREEBSD", "/libexec/ld-elf.so.1", "FBSD_1.7", "EM_X86_64"),
    ("freebsd-14", "arm64"): ("pkg", "ELFOSABI_FREEBSD", "/libexec/ld-elf.so.1", "FBSD_1.7", "EM_AARCH64"),
    ("el-9", "amd64"): ("rpm", "ELFOSABI_SYSV", "/lib64/ld-linux-x86-64.so.2", "GLIBC_2.34", "EM_X86_64"),
    ("el-9", "arm64"): ("rpm", "ELFOSABI_SYSV", "/lib/ld-linux-aarch64.so.1", "GLIBC_2.34", "EM_AARCH64"),
    ("el-8", "amd64"): ("rpm", "ELFOSABI_SYSV", "/lib64/ld-linux-x86-64.so.2", "GLIBC_2.28", "EM_X86_64"),
    ("debian-12", "arm64"): ("deb", "ELFOSABI_SYSV", "/lib/ld-linux-aarch64.so.1", "GLIBC_2.36", "EM_AARCH64"),
}


@pytest.fixture(scope="module")
def cross_built(engine, recipe, miniature, tmp_path_factory):
    """Each of BUILDS, built by the method its recipe gives it (all cross),
    into one folder as `build --all --arch all` writes them."""
    results = {}
    out = tmp_path_factory.mktemp("cross")
    for name, architecture in BUILDS:
        target = recipe.target(name).for_architecture(architecture)
        assert target.method == "cross"
        results[name, architecture] = build_target(recipe, target, BuildOptions(out_dir=out, sources_dir=miniature[1],
                                                                                quiet=True))
    return results


def _programs(path: Path, fmt: str):
    data = path.read_bytes()
    return [(name, content) for name, content in PACKAGERS[fmt].files(path, data) if content[:4] == b"\x7fELF"]


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_the_programs_are_what_the_target_runs(cross_built, recipe, build):
    fmt, osabi, interpreter, newest_allowed, machine = BUILDS[build]
    result = cross_built[build]
    package = artifact_of(result, fmt)
    checks = lint_artifact(package, recipe)
    failed = [f"{c.name}: {c.evidence}" for c in checks if not c.passed]
    assert not failed, failed
    programs = [read_program(name, content) for name, content in _programs(package, fmt)]
    assert len(programs) >= 12
    assert {p.osabi for p in programs} == {osabi} and {p.interpreter for p in programs} == {interpreter}
    assert {p.machine for p in programs} == {machine}
    prefix = newest_allowed.split("_")[0] + "_"
    newest = max(tuple(int(x) for x in v[len(prefix):].split(".")) for p in programs for v in p.versions
                 if v.startswith(prefix))
    assert newest <= tuple(int(x) for x in newest_allowed[len(prefix):].split(".")), newest
    queue = next(p for p in programs if p.path.endswith("/bin/qmail-queue"))
    assert {"open", "link", "rename", "unlink"} <= queue.defined
    if fmt == "pkg":
        assert {library for p in programs for library in p.needed} == {"libc.so.7"}
        manifest = read_pkg(package).full
        assert manifest["abi"] == f"FreeBSD:14:{'amd64' if build[1] == 'amd64' else 'aarch64'}"
        assert manifest["arch"] == ("freebsd:14:x86:64" if build[1] == "amd64" else "freebsd:14:aarch64:64")
        assert "conflicts" not in manifest


def test_the_checks_can_fail(cross_built, recipe):
    """A FreeBSD program branded System V, an EL 8 program that needs the
    glibc of EL 9, a queue program without syncdir: each is caught."""
    package = artifact_of(cross_built["freebsd-14", "amd64"], "pkg")
    programs = _programs(package, "pkg")
    unbranded = [(name, content[:7] + b"\x00" + content[8:]) for name, content in programs]
    target = recipe.target("freebsd-14")
    rules = platform_for("freebsd").binary_rules(target)
    failed = {c.name for c in check_programs(unbranded, rules, "/var/qmail") if not c.passed}
    assert failed == {"programs: branded ELFOSABI_FREEBSD"}
    el9 = _programs(artifact_of(cross_built["el-9", "amd64"], "rpm"), "rpm")
    el8_rules = platform_for("rhel").binary_rules(recipe.target("el-8"))
    failed = {c.name: c.evidence for c in check_programs(el9, el8_rules, "/var/qmail") if not c.passed}
    assert (list(failed) == ["programs: no GLIBC_ version newer than 2.28"]
            and "needs GLIBC_2.34" in "".join(failed.values()))
    # a program that imports open() from libc is not relinked against syncdir
    without = [(name, content) for name, content in programs if not name.endswith("/bin/qmail-queue")]
    syncdir = [c for c in check_programs(without, rules, "/var/qmail") if c.name == "programs: syncdir linked in"]
    assert syncdir and not syncdir[0].passed and "no qmail-queue" in syncdir[0].evidence


def test_build_time_programs_ran_on_the_build_machine(cross_built):
    """The cross build made qmail's build-time programs with the build
    machine's compiler, compiled the target's account ids in (FreeBSD's
    reserved 81-87, from the recipe through $ACCOUNT_UIDS, not from
    auto-uid), and pinned the probes that run a program; the
    compile-and-link probes probed the target."""
    result = cross_built["freebsd-14", "amd64"]
    log = result.log_path.read_text()
    steps = log.split("==> step")
    compile_step = next(part for part in steps if ": compile, and format the manual pages" in part.split("\n", 1)[0])
    # the helpers' tree first (host cc), then the target's (the cross compiler)
    host, target = compile_step.split("> auto-ccld.sh", 2)[1:3]
    for program in ("auto-str", "auto-int", "auto-int8", "chkshsgr", "install", "instcheck"):
        assert f"./load {program}" in host and f"./load {program}" not in target, program
    assert "./auto-uid" not in compile_step and "./auto-gid" not in compile_step  # ids from the recipe
    assert any(": compile the accounts' ids from the recipe" in part.split("\n", 1)[0] for part in steps)
    assert "./auto-str auto_qmail" in target and "./auto-int8 auto_patrn" in target  # host-built, run for the target
    assert "./compile tryflock.c" in target  # a compile-and-link probe: it probes the target
    assert "tryulong32" not in target and "trynpbg1" not in target  # run probes: pinned, never run
    record = json.loads(result.record_path.read_text())
    queue = next(row for row in record["staged_manifest"] if row["path"] == "/var/qmail/bin/qmail-queue")
    assert (queue["owner"], queue["mode"]) == ("qmailq", "4711")  # installed by the host-built install, id 85
    assert record["accounts"]["users"]["qmailq"]["uid"] == 85


def test_debian_arm64_cross_is_a_regular_debian_package(cross_built):
    """Debian's cross gcc: dpkg-shlibdeps still computed Depends (from the
    arm64 libc beside the host's), as on Debian's buildds."""
    deb = artifact_of(cross_built["debian-12", "arm64"], "deb")
    assert deb.name == "qmail-syncdir_1.03-1+deb12_arm64.deb"
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture", "Depends"], capture_output=True, text=True)
    assert "Architecture: arm64" in info.stdout and "libc6 (>= 2." in info.stdout, info.stdout
    record = json.loads(cross_built["debian-12", "arm64"].record_path.read_text())
    assert record["method"] == "cross" and record["toolchain"]["name"] == "gnu"
    assert record["toolchain"]["target"] == "aarch64-linux-gnu"


def test_the_zig_image_is_warmed_for_the_links_the_builds_make(recipe):
    """EL and FreeBSD link PIE: a cache warmed for plain executables only
    cost each build six seconds; the warm-up is part of the image's
    definition, so changing it makes a new image."""
    spec = build_image_spec(recipe.target("freebsd-14"))
    assert spec.reference == "qmail-pkg/cross-zig:latest"
    assert {"x86_64-freebsd.14.0-none", "aarch64-linux-gnu.2.28", "plain", "pie"} <= set(spec.toolchain_warm)
    assert replace(spec, toolchain_warm=spec.toolchain_warm[:-1]).definition_hash != spec.definition_hash


def test_the_command_line_says_how_each_target_builds(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "builder.cli", "build", "--help"], capture_output=True,
                               text=True, cwd=ROOT).stdout
    assert "--native" in help_text and "--cross" in help_text and "Zig" in help_text


def test_every_architecture_keeps_its_own_file_and_publishes_into_its_own_area(cross_built, gnupg, tmp_path):  # noqa: F811
    """Two architectures of one FreeBSD release in one folder: pkg's own
    NAME-VERSION.pkg would be one file; the release and architecture in the
    name keep both, and each lands in its ABI's catalogue."""
    out = artifact_of(cross_built["freebsd-14", "amd64"], "pkg").parent.parent
    for (name, architecture), result in cross_built.items():
        artifact = artifact_of(result, BUILDS[name, architecture][0])
        record = BuildRecord.beside(artifact)
        assert record.artifact(artifact.name).sha256 == result.artifacts[0].sha256 == _sha256(artifact)
    pkgs = sorted(path.name for path in (out / "freebsd-14").glob("*.pkg"))
    assert pkgs == ["qmail-syncdir-1.03_1.freebsd14.aarch64.pkg", "qmail-syncdir-1.03_1.freebsd14.amd64.pkg"]
    repo = tmp_path / "repo"
    publish(out, repo, key=str(gnupg["secret_file"]), pkg_key=gnupg["pkg_key"])
    for abi, arch in (("FreeBSD:14:amd64", "amd64"), ("FreeBSD:14:aarch64", "aarch64")):
        assert [p.name for p in (repo / "freebsd" / abi / "All").iterdir()] == [
            f"qmail-syncdir-1.03_1.freebsd14.{arch}.pkg"]
        assert (repo / "freebsd" / abi / "packagesite.pkg").is_file()
    assert sorted(p.name for p in (repo / "rpm" / "el-9").rglob("*.rpm")) == [
        "qmail-syncdir-1.03-1.el9.aarch64.rpm", "qmail-syncdir-1.03-1.el9.x86_64.rpm"]
    pages = sorted(p.name for p in (repo / "packages" / "pkg").glob("*.html"))
    assert pages == [f"{name}.html" for name in pkgs]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
