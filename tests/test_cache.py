"""The build cache: an unchanged build comes back without a container, a
change that matters misses, a damaged entry is rebuilt, never handed out."""

from __future__ import annotations

import json
import time

import pytest

from builder.pipeline import BuildOptions, build_target
from builder.recipe import load_recipe
from builder.sandbox.docker import client

from .conftest import RECIPE, TARGET

pytestmark = pytest.mark.docker


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
    assert json.loads(again.record_path.read_text())["cache_key"] == json.loads(first.record_path.read_text())["cache_key"]
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
