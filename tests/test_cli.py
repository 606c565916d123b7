"""The command line: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builder.cli.commands import _builds
from builder.recipe.loader import load_recipe

from .conftest import RECIPE, ROOT, with_patches


def qmail_pkg(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_validate_real_recipe_ok():
    result = qmail_pkg("validate", str(RECIPE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": ok")


def test_validate_bad_recipe_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = RECIPE.read_text().replace("  section: mail\n", "  section: mail\n  licence: typo\n")
    text = text.replace("    size: 8878\n", "    size: \"big\"\n")
    bad.write_text(text)
    with_patches(tmp_path)
    result = qmail_pkg("validate", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{bad}:") and "package.licence: unknown key 'licence'" in lines[0]
    assert "sources[1].size" in lines[1]
    assert "Traceback" not in result.stderr


def test_schema_is_json():
    result = qmail_pkg("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "targets" in schema["properties"]


def test_build_unknown_target_is_one_line(tmp_path):
    result = qmail_pkg("build", str(RECIPE), "--target", "debian-99", "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no target 'debian-99'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_build_missing_sources_is_one_error_before_any_target_starts(tmp_path):
    """Offline, every target of --all --arch all needs the same two tarballs:
    one error names both, the URLs tried, the folder and the targets, before
    an engine is asked for anything. Port 9 on loopback refuses at once."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        RECIPE.read_text()
        .replace("http://cr.yp.to/software/qmail-1.03.tar.gz", "http://127.0.0.1:9/qmail-1.03.tar.gz")
        .replace("http://untroubled.org/syncdir/syncdir-1.0.tar.gz", "http://127.0.0.1:9/syncdir-1.0.tar.gz")
    )
    with_patches(tmp_path)
    cache = tmp_path / "cache"
    result = qmail_pkg("build", str(recipe), "--all", "--arch", "all", "--out", str(tmp_path / "dist"),
                       "--sources", str(cache), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("qmail-pkg: error: 2 sources not in the cache and not downloadable: ")
    assert "qmail-1.03.tar.gz (tried: http://127.0.0.1:9/qmail-1.03.tar.gz (" in line
    assert "syncdir-1.0.tar.gz (tried: http://127.0.0.1:9/syncdir-1.0.tar.gz (" in line
    assert f"copy them into {cache}/ " in line
    every = [build.label for build in _builds(load_recipe(recipe).targets, ["all"])]
    assert len(every) > 10 and "debian-12/arm64" in every and "debian-12" in every
    assert line.endswith(f"nothing was built for {', '.join(every)}")
    assert not list((tmp_path / "dist").glob("*/*"))


def test_build_with_one_source_overridden_names_only_the_other(tmp_path, fixture_sources):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.read_text().replace("http://untroubled.org/syncdir/syncdir-1.0.tar.gz",
                                                 "http://127.0.0.1:9/syncdir-1.0.tar.gz"))
    with_patches(tmp_path)
    result = qmail_pkg("build", str(recipe), "--target", "debian-12", "--out", str(tmp_path / "dist"),
                       "--sources", str(tmp_path / "cache"), "--source", f"qmail={fixture_sources['qmail']}")
    (line,) = result.stderr.splitlines()
    assert result.returncode == 1 and line.startswith("qmail-pkg: error: 1 source not in the cache")
    assert "syncdir-1.0.tar.gz" in line and "qmail-1.03" not in line and "copy it into" in line
    assert line.endswith("nothing was built for debian-12")


def test_source_override_with_unknown_name(tmp_path):
    result = qmail_pkg("build", str(RECIPE), "--target", "debian-12", "--source", f"nosuch={tmp_path}",
                       "--out", str(tmp_path / "d"))
    assert result.returncode == 1 and "no source named 'nosuch'" in result.stderr


def test_validate_missing_file():
    result = qmail_pkg("validate", "/nonexistent/recipe.yaml")
    assert result.returncode == 1
    assert result.stderr.startswith("/nonexistent/recipe.yaml:1:1:")


def test_build_json_summary(engine, fixture_sources, tmp_path):
    args = ["build", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path), "--json"]
    for name, path in fixture_sources.items():
        args += ["--source", f"{name}={path}"]
    result = qmail_pkg(*args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (entry,) = summary
    (artifact,) = entry["artifacts"]
    path = Path(artifact["path"])
    assert entry["target"] == "debian-12" and path.exists() and artifact["format"] == "deb"
    assert artifact["size"] == path.stat().st_size
    assert artifact["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert entry["durations"] and Path(entry["record"]).exists() and Path(entry["log"]).exists()


def test_miniature_writes_a_recipe_that_validates_and_its_sources(tmp_path):
    result = qmail_pkg("miniature", str(tmp_path / "try"))
    assert result.returncode == 0, result.stderr
    recipe = tmp_path / "try" / "recipes" / "qmail-syncdir.yaml"
    assert sorted(p.name for p in (tmp_path / "try" / "sources").iterdir()) == ["qmail-1.03.tar.gz",
                                                                                "syncdir-1.0.tar.gz"]
    assert (tmp_path / "try" / "recipes" / "patches" / "syncdir-at-syscalls.patch").is_file()
    assert f"--sources {tmp_path / 'try' / 'sources'}" in result.stdout
    assert qmail_pkg("validate", str(recipe)).returncode == 0
    (tmp_path / "file").write_text("")
    refused = qmail_pkg("miniature", str(tmp_path / "file"))
    assert (refused.returncode == 1 and refused.stderr.count("\n") == 1
            and "not a folder (a regular file)" in refused.stderr)
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.read_text().replace("  - name: syncdir\n", "  - name: fsync\n")
                     .replace("SRC_SYNCDIR", "SRC_FSYNC"))
    with_patches(tmp_path)
    refused = qmail_pkg("miniature", str(tmp_path / "m"), "--recipe", str(other))
    assert refused.returncode == 1 and refused.stderr.count("\n") >= 1 and "Traceback" not in refused.stderr
    missing = qmail_pkg("miniature", str(tmp_path / "m"), "--recipe", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and missing.stderr.startswith(f"{tmp_path / 'nope.yaml'}:1:1:")
