"""The .buildinfo and .changes `qmail-pkg build` writes beside each .deb:
they parse as Debian's tools read them, their checksums match the files,
Installed-Build-Depends is the build image's package list, the provenance
and the record name them, lintian reads the upload whole, reprepro includes
it, and they carry what dpkg-genbuildinfo writes for a farm's build."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from debian import deb822

from builder.record import BuildRecord
from builder.source.farm import rebuild
from builder.sourcing import SourceOptions, make_sources

from .conftest import artifact_of

pytestmark = pytest.mark.docker


def _companion(built, suffix: str) -> Path:
    return next(path for path in built.companions if path.name.endswith(suffix))


def test_buildinfo_names_the_deb_with_its_checksums_and_the_build_image(built):
    deb = artifact_of(built, "deb")
    info = deb822.BuildInfo(_companion(built, ".buildinfo").read_text())
    assert (info["Format"], info["Source"], info["Binary"]) == ("1.0", "qmail-syncdir", "qmail-syncdir")
    assert (info["Version"], info["Architecture"], info["Build-Architecture"]) == ("1.03-1+deb12", "amd64", "amd64")
    assert info["Build-Origin"] == "Debian" and info["Build-Path"].startswith("/build/")
    for field, algorithm in (("Checksums-Md5", "md5"), ("Checksums-Sha1", "sha1"), ("Checksums-Sha256", "sha256")):
        (row,) = info[field]
        assert row["name"] == deb.name and int(row["size"]) == deb.stat().st_size
        assert row[algorithm] == hashlib.new(algorithm, deb.read_bytes()).hexdigest()
    record = BuildRecord.read(built.record_path)
    image = dict(record.image.details)["packages"].split()
    installed = {rel[0]["name"]: rel[0]["version"][1] for rel in info.relations["installed-build-depends"]}
    assert installed == dict(item.split("=", 1) for item in image)
    assert {"build-essential", "gcc", "make", "groff-base"} <= set(installed)
    assert info.get_environment() == {"LC_ALL": "C", "SOURCE_DATE_EPOCH": str(record.source_date_epoch)}


def test_changes_names_deb_and_buildinfo_for_the_targets_suite(built):
    changes = deb822.Changes(_companion(built, ".changes").read_text())
    assert (changes["Distribution"], changes["Architecture"], changes["Binary"]) == ("bookworm", "amd64",
                                                                                      "qmail-syncdir")
    folder = built.record_path.parent
    rows = {row["name"]: row for row in changes["Files"]}
    assert sorted(rows) == sorted([artifact_of(built, "deb").name, _companion(built, ".buildinfo").name])
    for name, row in rows.items():
        data = (folder / name).read_bytes()
        assert (row["md5sum"], int(row["size"]), row["section"], row["priority"]) == (
            hashlib.md5(data).hexdigest(), len(data), "mail", "optional")
    for row in changes["Checksums-Sha256"]:
        assert row["sha256"] == hashlib.sha256((folder / row["name"]).read_bytes()).hexdigest()
    assert "bookworm; urgency=medium" in changes["Changes"]


def test_record_and_provenance_name_them(built):
    record = BuildRecord.read(built.record_path)
    folder = built.record_path.parent
    assert {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name, _ in record.companions} == dict(
        record.companions)
    statement = json.loads(built.record_path.with_name(record.provenance_name).read_text())
    byproducts = {item["name"]: item["digest"]["sha256"] for item in statement["predicate"]["runDetails"]["byproducts"]}
    assert byproducts == dict(record.companions)


def test_lintian_reads_the_upload_whole(built):
    proc = subprocess.run(["lintian", "--fail-on", "error,warning", str(_companion(built, ".changes"))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_reprepro_includes_the_upload(built, tmp_path):
    if not shutil.which("reprepro"):
        pytest.fail("reprepro is not installed (./run.sh setup installs it)")
    (tmp_path / "repo" / "conf").mkdir(parents=True)
    (tmp_path / "repo" / "conf" / "distributions").write_text(
        "Codename: bookworm\nArchitectures: amd64 source\nComponents: main\n")
    proc = subprocess.run(["reprepro", "-b", str(tmp_path / "repo"), "include", "bookworm",
                           str(_companion(built, ".changes"))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run(["reprepro", "-b", str(tmp_path / "repo"), "list", "bookworm"], capture_output=True,
                            text=True, check=True).stdout
    assert listed.strip() == "bookworm|main|amd64: qmail-syncdir 1.03-1+deb12"


def test_buildinfo_has_the_fields_dpkg_genbuildinfo_writes(built, recipe, miniature, tmp_path):
    """A farm's dpkg-buildpackage writes its own .buildinfo (dpkg-genbuildinfo):
    ours carries the same fields, less what only a source build has."""
    outcome = make_sources(recipe, recipe.target("debian-12"), SourceOptions(out_dir=tmp_path / "src",
                                                                              sources_dir=miniature[1], quiet=True))
    done = rebuild(recipe.target("debian-12"), outcome.results[0], tmp_path / "farm", tmp_path / "logs", quiet=True)
    theirs = deb822.BuildInfo(next(p for p in done.files if p.suffix == ".buildinfo").read_text())
    ours = deb822.BuildInfo(_companion(built, ".buildinfo").read_text())
    assert set(ours) <= set(theirs), set(ours) - set(theirs)
    assert (ours["Source"], ours["Version"], ours["Build-Origin"]) == (theirs["Source"], theirs["Version"],
                                                                       theirs["Build-Origin"])
    # the farm's build environment is the buildd image: what it installed is a part of ours plus fakeroot
    farm = {rel[0]["name"] for rel in theirs.relations["installed-build-depends"]}
    build = {rel[0]["name"] for rel in ours.relations["installed-build-depends"]}
    assert farm - build <= {"fakeroot", "libfakeroot", "libnss-wrapper"}
