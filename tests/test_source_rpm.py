"""`qmail-pkg source` for the rhel-family test target: a .spec and its SRPM
(pristine tarballs, the recipe's changes as patches, %attr for every owner
and mode, EL's macros with fallbacks for Debian's rpm), which `rpmbuild
--rebuild` turns, in a clean container as a user that is not root with the
network off, into an rpm that passes `qmail-pkg verify` on the test target's
host and carries `qmail-pkg build`'s files, owners and modes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from builder.formats.rpmfile import read_rpm
from builder.source.farm import rebuild
from builder.sourcing import SourceOptions, make_sources
from builder.verify import run_verify

from .conftest import artifact_of

pytestmark = pytest.mark.docker

TARGET = "el-9"  # cross-built here: its farm build runs in the cross userland with rpmbuild
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def rpm_source(engine, recipe, miniature, tmp_path_factory):
    out = tmp_path_factory.mktemp("source-rpm")
    started = time.monotonic()
    outcome = make_sources(recipe, recipe.target(TARGET), SourceOptions(out_dir=out, sources_dir=miniature[1],
                                                                         quiet=True))
    TIMES["qmail-pkg source"] = time.monotonic() - started
    (result,) = outcome.results
    assert result.kind == "srpm" and result.main.name == "qmail-syncdir-1.03-1.el9.src.rpm"
    return result


@pytest.fixture(scope="module")
def rebuilt_rpm(rpm_source, recipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("farm-rpm")
    done = rebuild(recipe.target(TARGET), rpm_source, folder / "out", folder / "logs", quiet=True)
    TIMES["rpmbuild --rebuild"] = done.seconds
    (rpm,) = done.files
    return rpm, done


def _spec(rpm_source) -> Path:
    return next(path for path in rpm_source.files if path.suffix == ".spec")


def test_srpm_holds_the_spec_the_pristine_tarballs_and_the_patches(rpm_source, miniature, tmp_path):
    listing = subprocess.run(["rpm", "-qpl", str(rpm_source.main)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert {"qmail-syncdir.spec", "qmail-1.03.tar.gz", "syncdir-1.0.tar.gz",
            "qmail-syncdir-1.03-qmail-pkg.tar.gz"} <= set(listing)
    patches = sorted(name for name in listing if name.endswith(".patch"))
    assert len(patches) == 7 and any("relink" in name for name in patches)
    unpacked = subprocess.run(f"rpm2cpio {rpm_source.main} | cpio -idm --quiet", shell=True, cwd=tmp_path)
    assert unpacked.returncode == 0
    for name in ("qmail-1.03.tar.gz", "syncdir-1.0.tar.gz"):
        assert (tmp_path / name).read_bytes() == (miniature[1] / name).read_bytes()
    assert (tmp_path / "qmail-syncdir.spec").read_bytes() == _spec(rpm_source).read_bytes()


def test_spec_falls_back_where_debians_rpm_lacks_els_macros(rpm_source):
    spec = str(_spec(rpm_source))
    query = ["rpmspec", "-q", "--srpm", "--qf", "%{release} %{arch}\n", spec]
    bare = subprocess.run(query, capture_output=True, text=True, check=True).stdout.split()
    el = subprocess.run([*query[:1], "--define", "dist .el9", *query[1:]], capture_output=True, text=True,
                        check=True).stdout.split()
    assert bare[0] == el[0] == "1.el9"
    text = _spec(rpm_source).read_text()
    assert "%attr(4711,qmailq,qmail) /var/qmail/bin/qmail-queue" in text
    assert "%config(noreplace) %attr(0644,root,root) /var/qmail/control/defaultdelivery" in text
    assert "/var/qmail/queue" not in text.split("%files", 1)[1].split("%changelog")[0]  # state, never shipped
    assert "BuildRequires:  groff-base" in text and "ExclusiveArch:  x86_64" in text


def test_rebuilt_rpm_has_builds_files_owners_and_modes(rebuilt_rpm, built_rpm):
    rpm, done = rebuilt_rpm
    log = done.log_path.read_text()
    assert "uid=1000(builder)" in log and "network: lo\n" in log
    mine, theirs = read_rpm(artifact_of(built_rpm, "rpm")), read_rpm(rpm)
    want = {e.path: (e.kind, e.mode, e.owner, e.group, e.link) for e in mine.contents}
    have = {e.path: (e.kind, e.mode, e.owner, e.group, e.link) for e in theirs.contents}
    assert have == want
    files = [e.path for e in mine.contents if e.kind == "file"]
    same = [e.path for e in mine.contents if e.kind == "file" and e.sha256 == {x.path: x.sha256 for x in
                                                                                theirs.contents}[e.path]]
    print(f"\nsha256: {len(same)} of {len(files)} files identical; times: "
          f"{', '.join(f'{k} {v:.1f} s' for k, v in TIMES.items())}")
    # the scriptlets are build's; rpm's spec reader drops their last newline
    for tag in ("PREIN", "POSTIN", "PREUN", "POSTUN"):
        ours, farm = (subprocess.run(["rpm", "-qp", "--qf", f"%{{{tag}}}", str(path)], capture_output=True,
                                     text=True).stdout for path in (artifact_of(built_rpm, "rpm"), rpm))
        assert ours.rstrip("\n") == farm.rstrip("\n") and ours.strip(), tag


def test_rebuilt_rpm_passes_verify(rebuilt_rpm, built_rpm, recipe, tmp_path):
    rpm, _ = rebuilt_rpm
    shutil.copyfile(rpm, tmp_path / rpm.name)
    shutil.copyfile(built_rpm.record_path, tmp_path / built_rpm.record_path.name)
    report = run_verify(recipe, recipe.target(TARGET), [tmp_path / rpm.name])
    failed = [f"{check.name}: {check.evidence}" for check in report.steps if not check.passed]
    assert report.passed, failed
