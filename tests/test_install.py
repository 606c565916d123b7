"""qmail-pkg as an installed tool: the wheel carries everything the command
line needs (the image definitions, the example recipe, the host setup), and
a folder holding only a user's recipes is enough to validate and build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile

from .conftest import ROOT


def test_the_package_list_names_every_package_and_the_shipped_folders():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "builder").rglob("__init__.py")}
    assert set(settings["packages"]) == on_disk | {"builder.containers", "builder.recipes"}
    assert settings["package-dir"] == {"builder.containers": "containers", "builder.recipes": "recipes"}


def test_pipx_installs_a_tool_that_validates_and_builds_from_a_folder_of_recipes(engine, wheel, tmp_path, capsys):
    """The wheel carries what the command line reads; pipx installs it into
    a private home; then, in a folder holding only a copy of
    recipes/ and the miniature sources (written by the installed tool), the
    installed qmail-pkg validates the recipe and builds the debian-12 package
    with its own image definitions, never this checkout's."""
    started = time.monotonic()
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("builder/setup-host.sh", "builder/ci_templates/gitlab.yml.j2", "builder/recipe/schema.json",
                    "builder/recipes/qmail-syncdir.yaml", "builder/recipes/patches/syncdir-at-syscalls.patch",
                    "builder/sandbox/run-steps.sh", "builder/fixtures/miniqmail/Makefile"):
        assert shipped in names, shipped
    for folder in (ROOT / "containers").iterdir():
        for definition in folder.iterdir():
            assert f"builder/containers/{folder.name}/{definition.name}" in names
    pipx = {"PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin")}
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(pipx, QMAIL_PKG_CACHE=str(tmp_path / "build-cache"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    installed = subprocess.run([sys.executable, "-m", "pipx", "install", str(wheel)], capture_output=True, text=True,
                               env=env, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    tool = tmp_path / "bin" / "qmail-pkg"
    home = tmp_path / "work"
    home.mkdir()
    shutil.copytree(ROOT / "recipes", home / "recipes")

    def qmail_pkg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(tool), *args], cwd=home, capture_output=True, text=True, env=env, timeout=1800)

    where = subprocess.run([str(tool.resolve().parent / "python"), "-c",
                            "import builder.shipped as s; print(s.shipped('containers'))"],
                           cwd=home, capture_output=True, text=True, env=env)
    assert where.stdout.strip().startswith(str(tmp_path / "pipx")), where.stdout + where.stderr
    result = qmail_pkg("validate", "recipes/qmail-syncdir.yaml")
    assert result.returncode == 0 and result.stdout == "recipes/qmail-syncdir.yaml: ok\n", result.stderr
    result = qmail_pkg("miniature", "mini")
    assert result.returncode == 0, result.stderr
    result = qmail_pkg("build", "mini/recipes/qmail-syncdir.yaml", "--target", "debian-12", "--sources", "mini/sources")
    assert result.returncode == 0, result.stderr[-3000:]
    (package,) = (home / "dist" / "debian-12").glob("qmail-syncdir_*.deb")
    assert package.name == "qmail-syncdir_1.03-1+deb12_amd64.deb" and f"{package}  sha256=" in result.stdout
    assert sorted(p.name for p in home.iterdir()) == ["dist", "mini", "recipes"]
    with capsys.disabled():
        print(f"\npipx install and build from an installed qmail-pkg: {time.monotonic() - started:.0f} s")
