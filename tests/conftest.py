"""Shared fixtures: the miniature qmail + syncdir sources and packages built
from them with the real recipe, in a real Docker engine (built once per run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "qmail-syncdir.yaml"
TARGET = "debian-12"

# -- test tiers -----------------------------------------------------------------
# `pytest -m "not docker"` is the hermetic tier: Python, pytest and a Debian
# host's ordinary tools (dpkg-deb, rpm, shellcheck, cc), nothing else. Every
# test that needs more is marked here, in one place, and every such mark
# implies `docker` (the tier's one switch). The specific marks say why.
NEEDS_BY_FIXTURE = {
    "engine": ("docker",),  # built, built_next, built_for, built_rpm, built_pkg, ... all ask for it
}
# tests that reach those tools another way: subprocesses, dockerd, qemu, mount
NEEDS_BY_MODULE: dict[str, tuple[str, ...]] = {}  # "test_x.py": (...), for a whole module
NEEDS_BY_TEST = {
    "test_arm64.py::test_on_arm64_syncdir_needs_the_patch_and_works_with_it": ("qemu",),
    "test_arm64.py::test_the_arm64_package_is_named_and_recorded_as_arm64": ("qemu",),
    "test_arm64.py::test_the_arm64_package_passes_verify_under_emulation": ("qemu",),
    "test_engines.py::test_a_matrix_spread_over_two_engines_gives_the_same_bytes": ("root",),  # a second dockerd
    "test_fuzz.py::test_control_file_fields_are_exactly_ours": ("nfpm",),
    "test_fuzz.py::test_dollar_signs_reach_the_package_as_written": ("nfpm",),
    "test_hostile.py::test_a_full_disk_is_one_clear_line": ("root",),  # mounts a small tmpfs
    "test_piuparts.py::test_piuparts_passes_strictly": ("root",),  # piuparts chroots
    "test_piuparts.py::test_piuparts_fails_a_purge_that_leaves_the_queue": ("root",),
    "test_piuparts.py::test_the_base_is_made_once_per_image": ("docker", "root"),
    "test_powercut.py::test_acknowledged_mail_survives_power_cuts_only_with_syncdir": ("qemu",),
    "test_tiers.py::test_the_hermetic_tier_passes_without_docker_nfpm_or_qemu": ("docker",),  # the tier, again
    # `make setup` installs the miniature qmail as qmail does: owned by root
    "test_fixtures.py::test_gcc14_cflags_target_builds_too": ("root",),
    "test_fixtures.py::test_recipe_relinks_every_program_with_syncdir": ("root",),
    "test_fixtures.py::test_setup_installs_the_layout_and_check_verifies_it": ("root",),
    "test_fixtures.py::test_queue_commit_and_envelope": ("root",),
    "test_fixtures.py::test_qmail_queue_rejects_bad_envelopes": ("root",),
    "test_fixtures.py::test_finished_recipients_are_not_delivered_again": ("root",),
    "test_fixtures.py::test_interrupted_removal_is_finished_at_startup": ("root",),
    "test_fixtures.py::test_qmail_local_delivers_once_per_id": ("root",),
    "test_fixtures.py::test_bare_names_get_the_default_host_and_domain_and_remote_hosts_wait": ("root",),
}


def _needs(item) -> set[str]:
    """What `item` needs beyond the hermetic tier: from the tables above and
    from the fixtures it uses, directly or through other fixtures (only this
    file's fixtures of those names: a test module may define its own)."""
    module = item.path.name
    needs = set(NEEDS_BY_MODULE.get(module, ()))
    needs.update(NEEDS_BY_TEST.get(f"{module}::{item.originalname}", ()))
    for name in item.fixturenames:
        definitions = item._fixtureinfo.name2fixturedefs.get(name)
        if name in NEEDS_BY_FIXTURE and definitions and definitions[-1].func.__module__ == __name__:
            needs.update(NEEDS_BY_FIXTURE[name])
    return needs


def pytest_collection_modifyitems(config, items):
    for item in items:
        needs = _needs(item)
        for name in sorted(needs | ({"docker"} if needs else set())):
            item.add_marker(name)


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


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy of its tracked files (the
    build writes nothing into the checkout)."""
    copy = tmp_path_factory.mktemp("source") / "qmail-pkg"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(copy)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = out.glob("qmail_pkg-*.whl")
    return found


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
