"""`qmail-pkg source --obs`: one Open Build Service package holding the
Debian source package whole (no debian.* file, so OBS unpacks the .dsc with
dpkg-source instead of debtransform, which takes one upstream tarball) with
OBS-DCH-RELEASE for the rebuild counter, and the .spec with every file it names."""

from __future__ import annotations

import subprocess

import pytest
from debian import deb822

from builder.cli import main

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def obs(engine, miniature, tmp_path_factory):
    folder = tmp_path_factory.mktemp("obs")
    code = main(["source", str(miniature[0]), "--target", "debian-12", "--target", "el-9", "--sources",
                 str(miniature[1]), "--out", str(folder / "out"), "--obs", str(folder / "obs"), "--json"])
    assert code == 0
    return folder / "obs" / "qmail-syncdir"


def test_obs_package_holds_the_debian_source_whole_and_no_debian_dot_file(obs):
    names = sorted(path.name for path in obs.iterdir())
    assert not [name for name in names if name.startswith("debian.")]
    dsc = deb822.Dsc((obs / "qmail-syncdir.dsc").read_text())
    assert dsc["OBS-DCH-RELEASE"] == "1"
    assert {row["name"] for row in dsc["Files"]} <= set(names)
    assert {"qmail-syncdir_1.03.orig.tar.gz", "qmail-syncdir_1.03.orig-syncdir.tar.gz"} <= set(names)


def test_dpkg_source_and_rpmbuild_take_the_obs_package(obs, tmp_path):
    unpack = subprocess.run(["dpkg-source", "-x", str(obs / "qmail-syncdir.dsc"), str(tmp_path / "tree")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert unpack.returncode == 0, unpack.stderr
    assert (tmp_path / "tree" / "syncdir" / "syncdir.c").is_file()
    srpm = subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {tmp_path / 'rpm'}", "--define",
                           f"_sourcedir {obs}", "--define", f"_srcrpmdir {tmp_path}", str(obs / "qmail-syncdir.spec")],
                          capture_output=True, text=True)
    assert srpm.returncode == 0 and "error:" not in srpm.stderr, srpm.stderr
    assert (tmp_path / "qmail-syncdir-1.03-1.el9.src.rpm").is_file()
