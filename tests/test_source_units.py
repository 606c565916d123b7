"""The source-package layer without a sandbox: diffs turned into patches,
DEP-3 and DEP-5, the .buildinfo and .changes text, escaping into specs and
Makefiles, paths a source package refuses, deterministic archives, records
naming companions, and the command line's one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from debian import copyright as dep5
from debian import deb822

from builder.errors import BuildError
from builder.package.base import BuildContext
from builder.package.deb import CopyrightParagraph, DebianOptions
from builder.package.debupload import Listed, buildinfo_text
from builder.plan import make_plan
from builder.recipe.loader import load_recipe
from builder.record import ArtifactRecord, BuildRecord, ImageRecord, RecordError
from builder.source.base import SourcePatch
from builder.source.debian import copyright_file
from builder.source.run import SourceRun, rewrite_diff, step_comment
from builder.source.shell import make_text, spec_text
from builder.source.spec import install_items
from builder.source.tarball import tar_bytes
from builder.staged import ContentStore, Entry, StagedTree

from .conftest import RECIPE, ROOT

DIFF = """diff -Naur --no-dereference before/make-load.sh pkg/make-load.sh
--- before/make-load.sh\t2024-01-01 00:00:00.000000000 +0000
+++ pkg/make-load.sh\t2024-01-01 00:00:01.000000000 +0000
@@ -1,3 +1,3 @@
 echo 'main="$1"; shift'
--- before/looks-like-a-header
+echo exec "$LD" -L. -lsyncdir
 echo x
diff -Naur --no-dereference before/new.h pkg/new.h
--- before/new.h\t1970-01-01 00:00:00.000000000 +0000
+++ pkg/new.h\t2024-01-01 00:00:01.000000000 +0000
@@ -0,0 +1 @@
+#define NEW 1
\\ No newline at end of file
"""


def test_a_diff_becomes_a_patch_of_the_tree():
    patch = rewrite_diff(DIFF, created={"new.h"}, removed=set(), where="test")
    lines = patch.splitlines()
    assert lines[:2] == ["--- a/make-load.sh", "+++ b/make-load.sh"]
    assert "--- before/looks-like-a-header" in lines  # a changed line that reads like a header stays a line
    assert lines[lines.index("--- /dev/null") + 1] == "+++ b/new.h"
    assert "\t" not in patch and "1970" not in patch and lines[-1] == "\\ No newline at end of file"
    record = SourcePatch(1, "0001-x", "x", (), "step 1", patch)
    assert record.files == ("make-load.sh", "new.h")


def test_a_binary_change_is_refused():
    with pytest.raises(BuildError, match="carries text only"):
        rewrite_diff("Binary files before/x and pkg/x differ\n", set(), set(), "step 3")


def test_the_patch_subject_is_the_steps_title():
    assert step_comment("# relink every program\n# (line 2)\ncd x\n# not this") == ("relink every program", "(line 2)")


def test_spec_and_makefile_escaping():
    assert spec_text("100% %{evil}") == "100%% %%{evil}"
    assert make_text("$(shell rm -rf /) # x") == "$$(shell rm -rf /) \\# x"


def test_archives_are_the_same_bytes_every_time():
    files = [("debian/rules", b"#!/usr/bin/make -f\n", 0o755), ("debian/control", b"Source: x\n", 0o644)]
    assert tar_bytes(files, 315532800) == tar_bytes(list(reversed(files)), 315532800)


def test_buildinfo_text_parses_as_debians_tools_read_it(tmp_path):
    deb = tmp_path / "p_1-1_amd64.deb"
    deb.write_bytes(b"!<arch>\n")
    context = BuildContext(installed=("libc6=2.36-9", "gcc=4:12.2.0-3", "binutils-common=2.40-2", "binutils=2.40-2"),
                           build_path="/build/src/qmail", build_date=1700000000, architecture="amd64",
                           environment=(("LC_ALL", "C"),))
    info = deb822.BuildInfo(buildinfo_text("p", "p", "1-1", "amd64", [Listed.of(deb)], context))
    assert [r[0]["name"] for r in info.relations["installed-build-depends"]] == [
        "binutils", "binutils-common", "gcc", "libc6"]  # sorted by name, as dpkg-genbuildinfo does
    assert info["Checksums-Sha256"][0]["name"] == deb.name and info.get_environment() == {"LC_ALL": "C"}


def test_a_record_names_companions_with_debian_versions_and_refuses_paths(built_record_text):
    text = built_record_text.replace('"companions": {}', '"companions": {"p_1.03-1+deb12_amd64.changes": "'
                                     + "0" * 64 + '"}')
    record = BuildRecord.loads(text, "record")
    assert record.companions == (("p_1.03-1+deb12_amd64.changes", "0" * 64),)
    with pytest.raises(RecordError, match="companions key"):
        BuildRecord.loads(text.replace("p_1.03-1+deb12_amd64.changes", "../x"), "record")


@pytest.fixture
def built_record_text() -> str:
    record = BuildRecord(package="p", version="1.03-1", revision=1, target="debian-12", family="debian",
                         release="12", suite="bookworm", architecture="amd64", userland="debian", method="native",
                         engine="local", image=ImageRecord("i", "sha256:" + "1" * 64), recipe_path="r.yaml",
                         recipe_sha256="2" * 64, official=True, test_only=False, options=(), variant=(),
                         overridden_sources=(), sources=(), patches=(), groups=(), users=(), library_depends=(),
                         steps=(), source_date_epoch=0, cache_key="3" * 64,
                         artifacts=(ArtifactRecord("p_1.03-1+deb12_amd64.deb", "deb", "1.03-1+deb12", "4" * 64, 1),),
                         staged_manifest=())
    return record.dumps()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ))


def test_source_of_an_unknown_target_is_one_line_and_writes_nothing(tmp_path):
    result = _cli("source", str(RECIPE), "--target", "debian-99", "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no target 'debian-99'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_obs_needs_a_debian_and_an_rpm_target_before_anything_is_written(tmp_path):
    result = _cli("source", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path / "out"),
                  "--obs", str(tmp_path / "obs"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "--obs" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "obs").exists()


def test_dep5_copyright_from_the_recipes_paragraphs():
    recipe = load_recipe(RECIPE)
    options = recipe.options["debian"]
    spec = SimpleNamespace(recipe=recipe, name="qmail-syncdir",
                           upstreams=[SimpleNamespace(urls=source.urls) for source in recipe.sources])
    text = copyright_file(spec, options)
    parsed = dep5.Copyright(text.splitlines(keepends=True), strict=True)
    assert parsed.find_files_paragraph("syncdir/syncdir.c").copyright == "1998 Bruce Guenter"
    assert "GPL-2+" in [paragraph.license.synopsis for paragraph in parsed.all_license_paragraphs()]
    unknown = DebianOptions(copyright=(CopyrightParagraph(("*",), "someone", "Made-Up-1.0"),))
    with pytest.raises(BuildError, match="needs a notice"):
        copyright_file(spec, unknown)
    assert "/usr/share/common-licenses/GPL-3" in copyright_file(
        spec, DebianOptions(copyright=(CopyrightParagraph(("*",), "someone", "GPL-3"),)))


@pytest.mark.parametrize("path", ["/var/qmail/bin/a b", "/var/qmail/bin/$(reboot)", "/var/qmail/bin/100%",
                                  "/var/qmail/bin/q'uote", "/var/qmail/bin/star*"])
def test_a_staged_path_a_spec_plist_or_makefile_cannot_carry_is_refused(path, tmp_path):
    recipe = load_recipe(RECIPE)
    plan = make_plan(recipe, recipe.target("debian-12"), ())
    store = ContentStore(tmp_path / "store")
    digest, size = store.put_bytes(b"x")
    tree = StagedTree(store, (Entry("/var/qmail", "dir", 0o755, "root", "qmail"),
                              Entry("/var/qmail/bin", "dir", 0o755, "root", "qmail"),
                              Entry(path, "file", 0o755, "root", "qmail", sha256=digest, size=size)))
    run = SourceRun((), tree, (("x", digest),), ())
    with pytest.raises(BuildError, match="cannot carry"):
        install_items(plan, run, tree)
