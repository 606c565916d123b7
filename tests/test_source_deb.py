"""`qmail-pkg source` for debian-12, on the official miniature build: the
Debian source package unpacks with dpkg-source -x, builds with
dpkg-buildpackage -us -uc in a clean buildd container (build-essential,
fakeroot and the declared Build-Depends only) as a user that is not root with
the network off and without the qmail accounts, and its .deb passes lintian
and `qmail-pkg verify` and carries what `qmail-pkg build`'s does: the same
files, owners and modes, and here the same bytes."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from debian import copyright as dep5
from debian import deb822

from builder.formats.debfile import read_deb
from builder.package.deb import DebPackager
from builder.sandbox.images import BUILDD, image_spec
from builder.source.farm import rebuild
from builder.sourcing import SourceOptions, make_sources
from builder.verify import run_verify

from .conftest import TARGET, artifact_of

pytestmark = pytest.mark.docker

TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def debian_source(engine, recipe, miniature, tmp_path_factory):
    out = tmp_path_factory.mktemp("source-debian")
    started = time.monotonic()
    outcome = make_sources(recipe, recipe.target(TARGET), SourceOptions(out_dir=out, sources_dir=miniature[1],
                                                                         quiet=True))
    TIMES["qmail-pkg source"] = time.monotonic() - started
    (result,) = outcome.results
    assert result.kind == "debian" and result.main.suffix == ".dsc"
    return result


@pytest.fixture(scope="module")
def rebuilt(debian_source, recipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("farm-debian")
    done = rebuild(recipe.target(TARGET), debian_source, folder / "out", folder / "logs", quiet=True)
    TIMES["dpkg-buildpackage in the buildd image"] = done.seconds
    return done


@pytest.fixture(scope="module")
def unpacked(debian_source, tmp_path_factory):
    """dpkg-source -x of the .dsc, on this host."""
    folder = tmp_path_factory.mktemp("unpacked")
    proc = subprocess.run(["dpkg-source", "-x", str(debian_source.main), str(folder / "tree")],
                          capture_output=True, text=True, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder / "tree"


def test_dsc_names_the_pristine_tarballs_and_debian_tar_with_their_checksums(debian_source, miniature):
    dsc = deb822.Dsc(debian_source.main.read_text())
    assert dsc["Format"] == "3.0 (quilt)" and dsc["Version"] == "1.03-1+deb12"
    assert dsc["Architecture"].split() == ["amd64", "arm64"]
    names = [row["name"] for row in dsc["Files"]]
    assert names == ["qmail-syncdir_1.03.orig.tar.gz", "qmail-syncdir_1.03.orig-syncdir.tar.gz",
                     "qmail-syncdir_1.03-1+deb12.debian.tar.xz"]
    folder = debian_source.main.parent
    for field, algorithm in (("Files", "md5sum"), ("Checksums-Sha1", "sha1"), ("Checksums-Sha256", "sha256")):
        for row in dsc[field]:
            data = (folder / row["name"]).read_bytes()
            assert int(row["size"]) == len(data)
            assert row[algorithm] == hashlib.new({"md5sum": "md5"}.get(algorithm, algorithm), data).hexdigest()
    # the upstream tarballs, byte for byte
    assert (folder / names[0]).read_bytes() == (miniature[1] / "qmail-1.03.tar.gz").read_bytes()
    assert (folder / names[1]).read_bytes() == (miniature[1] / "syncdir-1.0.tar.gz").read_bytes()
    changes = deb822.Changes((folder / "qmail-syncdir_1.03-1+deb12_source.changes").read_text())
    assert changes["Architecture"] == "source" and changes["Distribution"] == "bookworm"
    assert sorted(row["name"] for row in changes["Files"]) == sorted([*names, debian_source.main.name])


def test_debian_folder_holds_control_copyright_rules_and_dep3_patches(unpacked):
    debian = unpacked / "debian"
    (source, binary) = deb822.Deb822.iter_paragraphs((debian / "control").read_text())
    assert source["Rules-Requires-Root"] == "binary-targets"
    assert [r[0]["name"] for r in deb822.PkgRelation.parse_relations(source["Build-Depends"])] == [
        "groff-base", "libnss-wrapper"]
    assert binary["Depends"].startswith("${shlibs:Depends}")
    assert (debian / "source" / "format").read_text() == "3.0 (quilt)\n"
    assert (debian / "rules").stat().st_mode & 0o111
    copyright = dep5.Copyright((debian / "copyright").read_text().splitlines(keepends=True), strict=True)
    assert copyright.find_files_paragraph("syncdir/syncdir.c").license.synopsis == "GPL-2+"
    assert copyright.find_files_paragraph("Makefile").license.synopsis == "public-domain"
    assert copyright.find_files_paragraph("debian/rules").license.synopsis == "GPL-2+"
    series = (debian / "patches" / "series").read_text().split()
    assert len(series) == 6  # errno, account ids, chkshsgr gate, make-load.sh line 2, alloc.h, conf-cc/conf-ld
    for name in series:
        header = (debian / "patches" / name).read_text().split("\n---\n", 1)[0]
        assert header.startswith("Description: ") and "Forwarded: not-needed" in header
    relink = next(name for name in series if "relink" in name)
    assert "-lsyncdir" in (debian / "patches" / relink).read_text()
    assert "-lsyncdir" in (unpacked / "make-load.sh").read_text().splitlines()[1]  # dpkg-source applied them
    (arm64,) = (debian / "qmail-pkg" / "arch-patches" / "arm64").iterdir()
    assert "at-syscalls.h" in arm64.read_text() and not (unpacked / "syncdir" / "at-syscalls.h").exists()


def test_maintainer_scripts_are_the_ones_build_renders(unpacked, built):
    facts = read_deb(artifact_of(built, "deb"), artifact_of(built, "deb").read_bytes())
    for name, digest in facts.scripts:
        if name in ("preinst", "postinst", "prerm", "postrm", "config", "templates"):
            text = (unpacked / "debian" / f"qmail-syncdir.{name}").read_bytes()
            assert hashlib.sha256(text).hexdigest() == digest, name


def test_buildd_image_holds_build_essential_fakeroot_and_the_declared_build_depends(debian_source, recipe):
    dsc = deb822.Dsc(debian_source.main.read_text())
    declared = [r[0]["name"] for r in deb822.PkgRelation.parse_relations(dsc["Build-Depends"])]
    spec = image_spec(recipe.target(TARGET), BUILDD)
    assert list(spec.packages) == ["build-essential", "fakeroot", *declared]


def test_rebuilt_as_a_user_that_is_not_root_with_the_network_off(rebuilt):
    log = rebuilt.log_path.read_text()
    assert "uid=1000(builder)" in log and "network: lo\n" in log
    assert "dpkg-deb: building package 'qmail-syncdir'" in log
    names = sorted(path.name for path in rebuilt.files)
    assert names == ["qmail-syncdir_1.03-1+deb12_amd64.buildinfo", "qmail-syncdir_1.03-1+deb12_amd64.changes",
                     "qmail-syncdir_1.03-1+deb12_amd64.deb"]


def _deb(rebuilt) -> Path:
    return next(path for path in rebuilt.files if path.suffix == ".deb")


def test_rebuilt_deb_has_builds_files_owners_and_modes(rebuilt, built):
    ours = artifact_of(built, "deb")
    mine, theirs = read_deb(ours, ours.read_bytes()), read_deb(_deb(rebuilt), _deb(rebuilt).read_bytes())
    want = {e.path: (e.kind, e.mode, e.owner, e.group, e.link) for e in mine.contents}
    have = {e.path: (e.kind, e.mode, e.owner, e.group, e.link) for e in theirs.contents}
    assert have == want
    files = [e.path for e in mine.contents if e.kind == "file"]
    mine_sha = {e.path: e.sha256 for e in mine.contents}
    theirs_sha = {e.path: e.sha256 for e in theirs.contents}
    differing = [path for path in files if mine_sha[path] != theirs_sha[path]]
    print(f"\nsha256: {len(files) - len(differing)} of {len(files)} files identical; differing: {differing}; "
          f"times: {', '.join(f'{k} {v:.1f} s' for k, v in TIMES.items())}")
    assert differing == []  # the same image generation builds the same bytes
    assert dict(theirs.relations)["Depends"] == dict(mine.relations)["Depends"]
    assert dict(theirs.scripts) == dict(mine.scripts)


def test_rebuilt_deb_passes_lintian(rebuilt, recipe):
    result = DebPackager().lint(_deb(rebuilt), recipe)
    assert result.passed, result.evidence


def test_rebuilt_deb_passes_verify(rebuilt, built, recipe, tmp_path):
    """The lifecycle, with the build's record (its staged manifest) beside the farm's package."""
    deb = tmp_path / _deb(rebuilt).name
    shutil.copyfile(_deb(rebuilt), deb)
    shutil.copyfile(built.record_path, tmp_path / built.record_path.name)
    report = run_verify(recipe, recipe.target(TARGET), [deb])
    failed = [f"{check.name}: {check.evidence}" for check in report.steps if not check.passed]
    assert report.passed, failed
