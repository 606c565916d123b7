"""Small pure pieces: the host mirror lookup, the plan."""

from __future__ import annotations

import pytest

from builder.errors import SandboxError
from builder.plan import make_plan
from builder.platforms import debian as images
from builder.sources import PreparedSource


def test_mirror_from_deb822_and_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(images.MIRROR_ENV, raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm\n"
    )
    monkeypatch.setattr(images, "APT_DIR", apt)
    assert images.host_debian_mirror() == "http://mirror.test/debian"
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text("deb [arch=amd64] http://other.test/debian bookworm main\n")
    assert images.host_debian_mirror() == "http://other.test/debian"
    (apt / "sources.list").write_text("")
    with pytest.raises(SandboxError, match=images.MIRROR_ENV):
        images.host_debian_mirror()
    monkeypatch.setenv(images.MIRROR_ENV, "http://set.test/debian")
    assert images.host_debian_mirror() == "http://set.test/debian"


def test_plan_orders_accounts_then_recipe_steps(recipe, tmp_path):
    sources = tuple(PreparedSource(s.name, tmp_path, "x", "0" * 64, overridden=True) for s in recipe.sources)
    plan = make_plan(recipe, recipe.target("debian-13"), sources, jobs=3, epoch=1234)
    env = dict(plan.env)
    assert env["SRC_QMAIL"] == "/build/src/qmail" and env["SRC_SYNCDIR"] == "/build/src/syncdir"
    assert env["JOBS"] == "3" and env["SOURCE_DATE_EPOCH"] == "1234"
    assert env["EXTRA_CFLAGS"] == "-Wno-error=implicit-function-declaration -Wno-error=implicit-int"
    argvs = [step.argv for step in plan.steps]
    assert argvs[0] == ("groupadd", "-g", "970", "nofiles")
    assert argvs[2][:1] == ("useradd",) and "970" in argvs[2] and argvs[2][-1] == "alias"
    recipe_steps = [a for a in argvs if a[:3] == ("sh", "-eu", "-c") and a[3] in recipe.target("debian-13").steps]
    assert len(recipe_steps) == len(recipe.target("debian-13").steps)
    assert argvs.index(recipe_steps[0]) > max(i for i, a in enumerate(argvs) if a[0] == "useradd")
    assert plan.steps[-2].title == "install into the sandbox's /var/qmail and check the result"
    assert plan.steps[-1].title.startswith("strip binaries")  # the userland platform's finishing step
    assert (plan.version, plan.revision) == ("1.03", 1) and plan.overridden == ("qmail", "syncdir")
    other = make_plan(recipe, recipe.target("debian-13"), sources, jobs=3, epoch=1235)
    assert other.cache_key != plan.cache_key


