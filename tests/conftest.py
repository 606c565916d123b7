"""Shared fixtures: the miniature qmail + syncdir sources and packages built
from them with the real recipe, in a real Docker engine (built once per run)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "qmail-syncdir.yaml"
TARGET = "debian-12"


@pytest.fixture(scope="session", autouse=True)
def private_build_cache(tmp_path_factory):
    """Builds in tests never read or fill the user's build cache."""
    import os

    folder = tmp_path_factory.mktemp("build-cache")
    os.environ["QMAIL_PKG_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def private_piuparts_bases(tmp_path_factory):
    """piuparts base tarballs made in tests stay out of the user's cache too."""
    import os

    folder = tmp_path_factory.mktemp("piuparts-bases")
    os.environ["QMAIL_PKG_PIUPARTS_BASES"] = str(folder)
    return folder


def docker_available() -> str | None:
    try:
        from builder.sandbox.docker import client

        client()
        return None
    except Exception as exc:  # reported as the skip reason
        return str(exc)


@pytest.fixture(scope="session")
def engine():
    problem = docker_available()
    if problem:
        pytest.fail(f"these tests need a Docker engine (./run.sh setup starts one): {problem}")


@pytest.fixture(scope="session")
def miniature(tmp_path_factory):
    """The real recipe with its sources pinned to the miniature tarballs, and
    a source cache holding them: builds of it are official builds."""
    from builder.fixtures import miniature_recipe

    return miniature_recipe(RECIPE, tmp_path_factory.mktemp("miniature"))


@pytest.fixture(scope="session")
def recipe(miniature):
    from builder.recipe.loader import load_recipe

    return load_recipe(miniature[0])


@pytest.fixture(scope="session")
def fixture_sources(tmp_path_factory):
    from builder.fixtures import write_sources

    return write_sources(tmp_path_factory.mktemp("fixture-sources"))


def _build(recipe, sources: Path, out: Path, revision: int, target: str = TARGET):
    """An official build of the miniature recipe (sources from its cache)."""
    from builder.pipeline import BuildOptions, build_target

    options = BuildOptions(out_dir=out, sources_dir=sources, revision=revision, quiet=True)
    return build_target(recipe, recipe.target(target), options)


@pytest.fixture(scope="session")
def built(engine, recipe, miniature, tmp_path_factory):
    """Revision 1 of the miniature package."""
    return _build(recipe, miniature[1], tmp_path_factory.mktemp("dist-r1"), revision=1)


@pytest.fixture(scope="session")
def built_next(engine, recipe, miniature, tmp_path_factory):
    """Revision 2: the upgrade target for lifecycle verification."""
    return _build(recipe, miniature[1], tmp_path_factory.mktemp("dist-r2"), revision=2)


@pytest.fixture(scope="session")
def built_for(engine, recipe, miniature, tmp_path_factory):
    """built_for(target, revision=1): the miniature package for that target,
    built once per run (a second build of the same inputs is a cache hit)."""
    results = {}

    def build(target: str, revision: int = 1):
        if (target, revision) not in results:
            results[target, revision] = _build(recipe, miniature[1],
                                               tmp_path_factory.mktemp(f"dist-{target.replace('/', '-')}-r{revision}"),
                                               revision=revision, target=target)
        return results[target, revision]

    return build


@pytest.fixture(scope="session")
def built_rpm(built_for):
    """The el-9 amd64 .rpm (cross-compiled)."""
    return built_for("el-9")


@pytest.fixture(scope="session")
def built_rpm_next(built_for):
    return built_for("el-9", 2)


@pytest.fixture(scope="session")
def built_pkg(built_for):
    """The freebsd-14 amd64 .pkg (cross-compiled)."""
    return built_for("freebsd-14")


def our_containers() -> set[str]:
    """Ids of the containers this tool labelled: tests compare the set before
    and after, so that another run on the same engine does not count."""
    from builder.sandbox.docker import LABEL, client

    return {c.id for c in client().containers.list(all=True, filters={"label": LABEL})}


def with_patches(folder: Path) -> Path:
    """The recipe's patches/ beside a copy of the recipe written to folder
    (patch files are found relative to the recipe)."""
    import shutil

    shutil.copytree(RECIPE.parent / "patches", folder / "patches", dirs_exist_ok=True)
    return folder


def artifact_of(result, fmt: str) -> Path:
    return next(a.path for a in result.artifacts if a.format == fmt)
