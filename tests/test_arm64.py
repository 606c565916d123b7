"""arm64: the architecture as one more axis of a target, the project's
at-syscalls patch for syncdir, and a verified arm64 package built under
qemu-user emulation (binfmt_misc, set up by ./run.sh setup)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from builder.cli import main
from builder.cli.commands import _builds
from builder.emulation import require_emulation
from builder.engines import Engine, engine_for
from builder.errors import QmailPkgError, SandboxError
from builder.sandbox.images import image_spec

from .conftest import artifact_of
from .test_recipe import MINIMAL, edit, load_text, problems_of

ROOT = Path(__file__).resolve().parents[1]
PATCH = ROOT / "recipes" / "patches" / "syncdir-at-syscalls.patch"
MINISYNCDIR = ROOT / "builder" / "fixtures" / "minisyncdir"


# -- the recipe -------------------------------------------------------------
def test_targets_list_their_architectures_and_patches_can_be_limited_to_some(recipe):
    debian = recipe.target("debian-12")
    assert debian.architectures == ("amd64", "arm64") and debian.architecture == "amd64"
    arm = debian.for_architecture("arm64")
    assert [p.file.name for p in arm.active_patches] == ["syncdir-at-syscalls.patch"]
    assert debian.active_patches == ()  # amd64 builds stay what they were
    assert arm.label == "debian-12/arm64" and debian.label == "debian-12"


def test_architecture_fields_are_checked(tmp_path):
    text = edit(MINIMAL, "    formats: [deb]\n", "    formats: [deb]\n    architectures: [amd64, arm64]\n")
    assert load_text(tmp_path, text).targets[0].architectures == ("amd64", "arm64")
    both = edit(MINIMAL, "    formats: [deb]\n",
                "    formats: [deb]\n    architecture: amd64\n    architectures: [arm64]\n")
    assert any("give architecture or architectures, not both" in p for p in problems_of(tmp_path, both))
    bad = edit(MINIMAL, "    formats: [deb]\n", "    formats: [deb]\n    architectures: [arm64, arm64, ARM]\n")
    found = problems_of(tmp_path, bad)
    assert any("items must be unique" in p for p in found)
    assert any("architectures[2]: must be an architecture name" in p for p in found)


def test_builds_expand_per_architecture_emulated_first(recipe, monkeypatch):
    monkeypatch.setattr("builder.emulation.host_architecture", lambda: "amd64")
    assert [(b.name, b.architecture) for b in _builds([recipe.target("debian-12")], None)] == [("debian-12", "amd64")]
    amd64_only = replace(recipe.target("el-9"), name="el-x", architectures=("amd64",))
    builds = _builds([recipe.target("debian-12"), amd64_only], ["all"])
    assert [(b.name, b.architecture) for b in builds] == [("debian-12", "arm64"), ("debian-12", "amd64"),
                                                          ("el-x", "amd64")]
    assert [b.architecture for b in _builds([recipe.target("debian-12")], ["arm64"])] == ["arm64"]
    with pytest.raises(QmailPkgError, match=r"el-x is not built for arm64 \(its architectures: amd64\)"):
        _builds([amd64_only], ["arm64"])


def test_images_per_architecture(recipe):
    debian = recipe.target("debian-12")
    assert image_spec(debian, "build").reference == "qmail-pkg/debian-12:latest"
    arm = image_spec(debian.for_architecture("arm64"), "verify")
    assert arm.reference == "qmail-pkg/debian-12-verify-arm64:latest" and arm.architecture == "arm64"
    assert arm.definition_hash != image_spec(debian, "verify").definition_hash


def test_arm64_builds_can_go_to_a_native_engine():
    engines = (Engine("*/arm64", "ssh://builder@arm64-box"), Engine("debian-*", "unix:///other.sock"))
    assert engine_for("debian-12", engines, "arm64").url == "ssh://builder@arm64-box"
    assert engine_for("debian-12", engines, "amd64").url == "unix:///other.sock"
    assert engine_for("el-9", engines, "amd64") is None


def test_missing_emulation_is_named(tmp_path):
    with pytest.raises(SandboxError, match="needs binfmt_misc"):
        require_emulation("arm64", binfmt=tmp_path)
    (tmp_path / "status").write_text("enabled\n")
    with pytest.raises(SandboxError, match="update-binfmts --enable qemu-aarch64"):
        require_emulation("arm64", binfmt=tmp_path)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: PF\n")
    require_emulation("arm64", binfmt=tmp_path)  # enough to build
    with pytest.raises(SandboxError, match="without the C flag"):
        require_emulation("arm64", setuid=True, binfmt=tmp_path)  # not enough to verify setuid qmail-queue
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: POCF\n")
    require_emulation("arm64", setuid=True, binfmt=tmp_path)


# -- the patch ------------------------------------------------------------------
@pytest.fixture
def patched_minisyncdir(tmp_path):
    folder = tmp_path / "syncdir"
    shutil.copytree(MINISYNCDIR, folder)
    subprocess.run(["patch", "-s", "-p1", "--forward", "-i", str(PATCH)], cwd=folder, check=True)
    return folder


def test_the_patch_changes_nothing_where_the_classic_calls_exist(patched_minisyncdir):
    folder = patched_minisyncdir
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-c", "syncdir.c", "-o", "plain.o"], cwd=folder, check=True)
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-include", "at-syscalls.h", "-c", "syncdir.c", "-o", "with.o"],
                   cwd=folder, check=True)
    assert (folder / "plain.o").read_bytes() == (folder / "with.o").read_bytes()


PROGRAM = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
int main(void) {
  struct stat st;
  int fd = open("d/a", O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) != 0) return 1;
  if (link("d/a", "d/b") != 0 || rename("d/b", "d/c") != 0 || unlink("d/a") != 0) return 2;
  if (stat("d/c", &st) != 0 || st.st_size != 1 || stat("d/a", &st) == 0) return 3;
  puts("syncdir calls work");
  return 0;
}
"""


def test_on_arm64_syncdir_needs_the_patch_and_works_with_it(engine, recipe, patched_minisyncdir):
    """In the arm64 build image (qemu-user): the classic numbers are missing,
    the miniature does not compile, as the real syncdir does not; with the
    patch's header it compiles, and a program linked with it works."""
    from builder.environment import open_sandbox, prepare_environment

    # the emulated arm64 userland (native method): its own headers and cc
    target = recipe.target("debian-12").for_architecture("arm64").with_method("native")
    environment = prepare_environment(target, "build")
    (patched_minisyncdir / "program.c").write_text(PROGRAM)
    with open_sandbox(target, environment.reference, role="build") as box:
        box.put_tree(patched_minisyncdir, "/work")
        code, out = box.output(["sh", "-c", "cd /work && uname -m && cc -O2 -c syncdir.c -o plain.o"])
        assert code != 0 and "aarch64" in out and "SYS_open" in out and "undeclared" in out
        code, out = box.output(["sh", "-c", "cd /work && make CC='cc -include at-syscalls.h' && mkdir d && "
                                            "cc -O2 program.c -L. -lsyncdir -o program && ./program && "
                                            "nm libsyncdir.a | grep -E ' T (open|link|rename|unlink)$' | wc -l"])
        assert code == 0, out
        assert "syncdir calls work" in out and out.strip().endswith("4")


# -- a verified arm64 package -------------------------------------------------------
@pytest.fixture(scope="module")
def built_arm64(engine, recipe, fixture_sources, tmp_path_factory):
    from builder.pipeline import BuildOptions, build_target

    out = tmp_path_factory.mktemp("arm64")
    options = BuildOptions(out_dir=out, sources_dir=out / "no-cache", overrides=tuple(fixture_sources.items()),
                           revision=1, quiet=True)
    return build_target(recipe, recipe.target("debian-12").for_architecture("arm64"), options)


def test_the_arm64_package_is_named_and_recorded_as_arm64(built_arm64, built):
    deb = artifact_of(built_arm64, "deb")
    assert deb.name == "qmail-syncdir_1.03-1+deb12_arm64.deb"
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture", "Depends"], capture_output=True, text=True,
                            check=True).stdout
    assert "Architecture: arm64" in fields and "libc6" in fields
    record = json.loads(built_arm64.record_path.read_text())
    assert built_arm64.record_path.name == "qmail-syncdir_1.03-1_debian-12_arm64.build.json"
    assert record["architecture"] == "arm64" and record["image"]["reference"].endswith("debian-12-cross-arm64:latest")
    assert [p["file"] for p in record["patches"]] == ["syncdir-at-syscalls.patch"]
    amd64 = json.loads(built.record_path.read_text())
    assert amd64["patches"] == [] and amd64["architecture"] == "amd64"


def test_the_arm64_package_passes_verify_under_emulation(built_arm64, capsys):
    deb = artifact_of(built_arm64, "deb")
    code = main(["verify", str(deb), "--target", "debian-12", "--json"])
    printed = capsys.readouterr()
    assert printed.out.strip(), printed.err[-2000:]
    report = json.loads(printed.out)
    failed = [s for s in report["steps"] if not s["passed"]]
    assert code == 0 and report["passed"], failed
    names = {s["name"]: s for s in report["steps"]}
    assert names["install: syncdir symbols"]["passed"]
    strace = names["syncdir: strace shows a directory fsync after every queue link/unlink"]
    assert strace.get("skipped") and "qemu-user emulation" in strace["evidence"]
    assert any(n.startswith("install: SMTP on port 25") and s["passed"] for n, s in names.items())
    assert names["upgrade: every in-flight message delivered exactly once"]["passed"]
