"""`qmail-pkg source` for the FreeBSD-family test target: the port
(mail/qmail-syncdir/). Its distinfo holds the recipe's pins, its pkg-plist
the staged tree with owners and modes, its patches apply to the pristine
sources, its Makefile parses (bmake, with empty ports framework files), and
what its do-build and do-install run builds and stages the plist's tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.environment import build_image_spec
from builder.formats.pkgfile import read_pkg_facts
from builder.sandbox.docker import DockerSandbox
from builder.sourcing import SourceOptions, make_sources
from builder.staged import IdNames, read_tree

from .conftest import artifact_of

pytestmark = pytest.mark.docker

TARGET = "freebsd-14"


@pytest.fixture(scope="module")
def port(engine, recipe, miniature, tmp_path_factory):
    outcome = make_sources(recipe, recipe.target(TARGET), SourceOptions(
        out_dir=tmp_path_factory.mktemp("source-port"), sources_dir=miniature[1], quiet=True))
    (result,) = outcome.results
    assert result.kind == "port" and result.main.as_posix().endswith("/freebsd-14/mail/qmail-syncdir")
    return result.main


def _plist(port: Path) -> dict[str, tuple[str, str, str, int]]:
    """path -> (kind, owner, group, mode) from pkg-plist's @(owner,group,mode) keywords."""
    entries = {}
    for line in (port / "pkg-plist").read_text().splitlines():
        keyword, _, path = line.partition(" ")
        name, _, attributes = keyword.lstrip("@").partition("(")
        owner, group, mode = attributes.rstrip(")").split(",")
        entries[path] = ("dir" if name == "dir" else "file", owner, group, int(mode, 8))
    return entries


def test_distinfo_holds_the_recipes_pins(port, recipe):
    lines = (port / "distinfo").read_text().splitlines()
    assert lines[0].startswith("TIMESTAMP = ")
    for source in recipe.sources:
        assert f"SHA256 ({source.filename}) = {source.sha256}" in lines
        assert f"SIZE ({source.filename}) = {source.size}" in lines


def test_plist_is_the_staged_tree_with_owners_and_modes(port, built_pkg):
    facts = read_pkg_facts(artifact_of(built_pkg, "pkg"), artifact_of(built_pkg, "pkg").read_bytes())
    packaged = {e.path: (e.kind, e.owner, e.group, e.mode) for e in facts.contents}
    assert _plist(port) == packaged
    assert _plist(port)["/var/qmail/bin/qmail-queue"] == ("file", "qmailq", "qmail", 0o4711)
    assert not [path for path in _plist(port) if path.startswith("/var/qmail/queue")]  # state: the scripts make it
    assert "@config(root,wheel,0644) /var/qmail/control/defaultdelivery" in (port / "pkg-plist").read_text()


def test_scripts_are_the_pkg_set_build_renders(port, built_pkg):
    facts = read_pkg_facts(artifact_of(built_pkg, "pkg"), artifact_of(built_pkg, "pkg").read_bytes())
    for name, digest in facts.scripts:
        assert hashlib.sha256((port / f"pkg-{name}").read_bytes()).hexdigest() == digest, name


def _extract(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")


def _patched(port: Path, miniature, folder: Path) -> Path:
    """The tarballs extracted as the port's post-extract lays them out, its patches applied in order."""
    for name in ("qmail-1.03.tar.gz", "syncdir-1.0.tar.gz"):
        _extract(miniature[1] / name, folder)
    (folder / "syncdir-1.0").rename(folder / "qmail-1.03" / "syncdir")
    tree = folder / "qmail-1.03"
    for patch in sorted((port / "files").glob("patch-*")):
        proc = subprocess.run(["patch", "-p1", "--batch", "--forward", "-i", str(patch)], cwd=tree,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{patch.name}: {proc.stdout}{proc.stderr}"
    return tree


def test_patches_apply_to_the_pristine_sources(port, miniature, tmp_path):
    tree = _patched(port, miniature, tmp_path)
    assert "-lsyncdir" in (tree / "make-load.sh").read_text().splitlines()[1]
    assert "#include <sys/syscall.h>" in (tree / "syncdir" / "syncdir.c").read_text()
    assert (tree / "conf-groups").read_text().splitlines()[1] == "qnofiles"
    assert "int auto_uidq = 85;" in (tree / "auto_uids.c").read_text()  # FreeBSD's reserved ids, from the recipe


def test_makefile_parses_and_names_both_distfiles(port, tmp_path):
    if not shutil.which("bmake"):
        pytest.fail("bmake is not installed (./run.sh setup installs it)")
    for stub in ("sys.mk", "bsd.port.options.mk", "bsd.port.mk"):
        (tmp_path / stub).write_text("")
    query = subprocess.run(["bmake", "-m", str(tmp_path), "-f", "Makefile", "-V", "PORTNAME", "-V", "DISTFILES",
                            "-V", "MASTER_SITES", "-V", "PATCH_STRIP", "-V", "SUB_FILES"], cwd=port,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert query[0] == "qmail-syncdir" and query[1].split() == ["qmail-1.03.tar.gz:qmail", "syncdir-1.0.tar.gz:syncdir"]
    assert query[2].split() == ["http://cr.yp.to/software/:qmail", "http://untroubled.org/syncdir/:syncdir"]
    assert query[3:] == ["-p1", "pkg-message"]


def test_do_build_and_do_install_stage_the_plists_tree(port, miniature, recipe, tmp_path):
    """What the Makefile's do-build and do-install run, on Linux in the
    target's cross build image with the build machine's cc (no FreeBSD host)."""
    tree = _patched(port, miniature, tmp_path / "work")
    spec = build_image_spec(recipe.target(TARGET))
    with DockerSandbox(spec.reference, role="build") as box:
        box.put_trees([(tree, "/w/qmail-1.03"), (port / "files", "/port/files")])
        for argv in (["sh", "/port/files/qmail-pkg/build.sh", "/w/qmail-1.03", str(os.cpu_count() or 1)],
                     ["sh", "/port/files/qmail-pkg/install-tree.sh", "/w/qmail-1.03", "/stage"]):
            code, out = box.output(argv)
            assert code == 0, out[-2000:]
        with box.open_tar("/stage") as stream:
            staged = {entry.path[len("/stage"):]: entry for entry in read_tree(stream, "/stage", IdNames({}, {}), None,
                                                                               strict=False)}
    for path, (kind, _, _, mode) in _plist(port).items():
        assert path in staged, path
        assert (staged[path].kind, staged[path].mode) == (kind, mode), path
