"""The build cache: an unchanged build comes back without a container, a
change that matters misses, a damaged entry is rebuilt, never handed out."""

from __future__ import annotations

import json
import time
from pathlib import Path

from builder.evidence import Evidence
from builder.pipeline import BuildOptions, build_target
from builder.recipe.loader import load_recipe
from builder.sandbox.docker import client

from .conftest import RECIPE, TARGET, with_patches


def _options(tmp_path, sources, cache, **extra):
    return BuildOptions(out_dir=tmp_path / "dist", sources_dir=tmp_path / "no-cache", overrides=tuple(sources.items()),
                        quiet=True, cache_dir=cache, **extra)


def _containers_created(since: int) -> list:
    events = client().events(since=since, until=int(time.time()) + 1, decode=True,
                             filters={"type": "container", "event": ["create", "start"]})
    return list(events)


def test_unchanged_build_is_served_from_the_cache_without_a_container(engine, recipe, fixture_sources, tmp_path):
    cache = tmp_path / "cache"
    before = int(time.time())
    first = build_target(recipe, recipe.target(TARGET), _options(tmp_path / "a", fixture_sources, cache))
    assert not first.cached
    assert _containers_created(before), "the probe sees the first build's container"
    time.sleep(1.1)  # event times have one-second resolution: start after the first build's last second
    started = int(time.time())
    again = build_target(recipe, recipe.target(TARGET), _options(tmp_path / "b", fixture_sources, cache, jobs=1))
    assert again.cached  # make -j changes nothing in the output: same key
    assert [a.path.read_bytes() for a in again.artifacts] == [a.path.read_bytes() for a in first.artifacts]
    assert (json.loads(again.record_path.read_text())["cache_key"]
            == json.loads(first.record_path.read_text())["cache_key"])
    assert not _containers_created(started), "a cached build started a container"
    assert "ok (cached)" in again.log_path.read_text()


def test_a_change_that_matters_misses_and_a_damaged_entry_is_rebuilt(engine, fixture_sources, tmp_path):
    cache = tmp_path / "cache"
    recipe = load_recipe(RECIPE)
    first = build_target(recipe, recipe.target(TARGET), _options(tmp_path / "a", fixture_sources, cache))
    changed_text = RECIPE.read_text().replace("summary: qmail 1.03 MTA relinked with syncdir",
                                              "summary: qmail 1.03 MTA relinked with syncdir, changed")
    changed_path = tmp_path / "changed.yaml"
    changed_path.write_text(changed_text)
    with_patches(tmp_path)
    changed = load_recipe(changed_path)
    other = build_target(changed, changed.target(TARGET), _options(tmp_path / "b", fixture_sources, cache))
    assert not other.cached
    key = json.loads(first.record_path.read_text())["cache_key"]
    entry = next((cache / key).glob("*.deb"))
    entry.write_bytes(entry.read_bytes()[:-1] + b"X")  # damaged on disk
    again = build_target(recipe, recipe.target(TARGET), _options(tmp_path / "c", fixture_sources, cache))
    assert not again.cached  # rebuilt, not handed out
    assert [a.path.read_bytes() for a in again.artifacts] == [a.path.read_bytes() for a in first.artifacts]
    assert build_target(recipe, recipe.target(TARGET), _options(tmp_path / "d", fixture_sources, cache)).cached


def test_check_reproducible_passes_for_every_format_and_explains_a_difference(engine, fixture_sources, tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    def check(recipe_path, out):
        args = [sys.executable, "-m", "builder.cli", "build", str(recipe_path), "--target", "debian-12", "--target",
                "el-9", "--target", "freebsd-14", "--check-reproducible", "--out", str(out), "--json"]
        for name, path in fixture_sources.items():
            args += ["--source", f"{name}={path}"]
        return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=1200)

    result = check(RECIPE, tmp_path / "good")
    outcomes = {o["target"]: o for o in json.loads(result.stdout)}
    assert result.returncode == 0, result.stderr
    assert {name: o["reproducible"] for name, o in outcomes.items()} == {"debian-12": True, "el-9": True,
                                                                        "freebsd-14": True}
    for outcome in outcomes.values():  # the outcome, as evidence beside each artifact for the publishing job
        for artifact in outcome["artifacts"]:
            path = Path(artifact["path"])
            evidence = Evidence.loads(path.with_name(f"{path.name}.reproducible.evidence.json").read_text(), "e")
            assert evidence.passed and evidence.sha256 == artifact["sha256"]
    # a step that writes the build's host name into a packaged file: caught, and diffoscope says where
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(RECIPE.read_text().replace(
        "    image: qmail-pkg/debian-12\n",
        "    image: qmail-pkg/debian-12\n"
        "    steps_after: [{run: 'hostname > /var/qmail/boot/built-on', phase: install}]\n", 1))
    with_patches(tmp_path)
    result = check(leaky, tmp_path / "bad")
    assert result.stdout, result.stderr[-3000:]
    outcomes = {o["target"]: o for o in json.loads(result.stdout)}
    assert result.returncode == 1 and outcomes["debian-12"]["reproducible"] is False
    (report,) = outcomes["debian-12"]["differences"]
    assert "built-on" in Path(report).read_text() and "other-builder.invalid" in Path(report).read_text()
    assert outcomes["el-9"]["reproducible"] is True  # the other targets are not affected
    deb = Path(next(a["path"] for a in outcomes["debian-12"]["artifacts"] if a["format"] == "deb"))
    evidence = Evidence.loads(deb.with_name(f"{deb.name}.reproducible.evidence.json").read_text(), "e")
    assert not evidence.passed and "diffoscope's report" in evidence.steps[0].evidence
