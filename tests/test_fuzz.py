"""Property-based fuzzing of the recipe loader and of what its values become.

- The loader never raises anything but RecipeError, whose problems are one
  line each, and a recipe it accepts passes every later check (preflight).
- No recipe value the loader accepts changes the meaning of a generated
  script (it round-trips literally through sh) or of a control file (the
  fields dpkg reads are exactly the ones we meant).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import RecipeError
from builder.package import PackageSpec, packager_for
from builder.preflight import load_checked, target_problems
from builder.recipe.loader import load_recipe
from builder.scripts import render_library, script_model
from builder.staged import ContentStore, StagedTree

from .conftest import RECIPE, with_patches

REAL = RECIPE.read_text()
PROBLEM = re.compile(r"^[^\n]+:\d+:\d+: [^\n]+: [^\n]+$")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Every scalar a recipe author writes that ends up in a script or a control file.
FIELDS = {
    "name": "  name: qmail-syncdir\n",
    "version": '  version: "1.03"\n',
    "maintainer": "  maintainer: qmail-syncdir packagers <packagers@qmail-syncdir.invalid>\n",
    "homepage": "  homepage: https://cr.yp.to/qmail.html\n",
    "section": "  section: mail\n",
    "summary": "  summary: qmail 1.03 MTA relinked with syncdir\n",
    "license": "  license: public-domain and GPL-2\n",
    "depends": "  depends: []\n",
    "provides": "  provides: [mail-transport-agent]\n",
    "prefix": "  prefix: /var/qmail\n",
    "log_dir": "  log_dir: /var/log/qmail\n",
    "default_delivery": "  default_delivery: ./Maildir/\n",
    "directories": "  directories: [/service, /etc/service, /var/service]\n",
    "home": "    - {name: qmaild, uid: 971, group: nofiles, home: /var/qmail}\n",
}

# Text with everything that has a meaning somewhere: quotes, $, `, ;, newlines, NUL, field separators.
nasty = st.text(
    alphabet=st.sampled_from(list("ab/.-_ :;$`'\"\\|&<>(){}[]*?#!~=\n\t\r\x00\x1b") + ["é", "\u2028"]),
    min_size=0, max_size=24,
)


def _with(field: str, value: str) -> str:
    line = FIELDS[field]
    key, _, _ = line.partition(":")
    quoted = json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    if field in ("depends", "provides", "directories"):
        new = f"{key}: [{quoted}]\n"
    elif field == "home":
        new = line.replace("home: /var/qmail}", f"home: {quoted}}}")
    else:
        new = f"{key}: {quoted}\n"
    return REAL.replace(line, new, 1)


def _outcome(path: Path):
    with_patches(path.parent)
    try:
        return load_checked(path)
    except RecipeError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), problem
        return None


@SETTINGS
@given(field=st.sampled_from(sorted(FIELDS)), value=nasty)
def test_loader_never_crashes_and_accepts_only_what_later_stages_take(tmp_path, field, value):
    path = tmp_path / "r.yaml"
    path.write_text(_with(field, value))
    recipe = _outcome(path)
    if recipe is not None:
        assert target_problems(recipe) == []


@SETTINGS
@given(data=st.binary(min_size=0, max_size=300))
def test_loader_never_crashes_on_bytes(tmp_path, data):
    path = tmp_path / "r.yaml"
    path.write_bytes(data)
    _outcome(path)


path_part = st.text(alphabet=st.sampled_from(list("ab-_.:;$`'\" &|()*?#!~=é")), min_size=1, max_size=8)


def test_accepted_values_round_trip_literally_through_the_scripts(tmp_path):
    accepted: list[int] = []

    @settings(SETTINGS, derandomize=True)
    @given(prefix=st.lists(path_part, min_size=2, max_size=3), log=st.lists(path_part, min_size=2, max_size=3),
           delivery=st.sampled_from(["./Maildir/", "./Mailbox", "|preline procmail", "&postmaster"]))
    def check(prefix, log, delivery):
        if _round_trip(tmp_path / "case", prefix, log, delivery):
            accepted.append(1)

    check()
    assert len(accepted) >= 20, len(accepted)  # the property was exercised, not skipped


def _round_trip(tmp_path: Path, prefix: list[str], log: list[str], delivery: str) -> bool:
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    text = REAL.replace(FIELDS["prefix"], f"  prefix: {json.dumps('/' + '/'.join(prefix))}\n", 1)
    text = text.replace("state: [/var/qmail/queue]", f"state: [{json.dumps('/' + '/'.join(prefix) + '/queue')}]")
    text = text.replace("config: [/var/qmail/control]", f"config: [{json.dumps('/' + '/'.join(prefix) + '/control')}]")
    text = text.replace(FIELDS["log_dir"], f"  log_dir: {json.dumps('/' + '/'.join(log))}\n", 1)
    text = text.replace(FIELDS["default_delivery"], f"  default_delivery: {json.dumps(delivery)}\n", 1)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    recipe = _outcome(path)
    if recipe is None:
        return False
    model = script_model(recipe, recipe.target("debian-12"), version="1.03-1", state=(), smtpd=True, sendmail=True)
    library = tmp_path / "lib.sh"
    library.write_text(render_library(model, "deb"))
    work = tmp_path / "cwd"
    work.mkdir(exist_ok=True)
    probe = f'. {shlex.quote(str(library))}; printf "%s\\0" "$QS_PREFIX" "$QS_LOG_DIR" "$QS_CONTROL"; qs_q "$QS_PREFIX"'
    result = subprocess.run(["sh", "-c", probe], cwd=work, capture_output=True, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    *values, quoted = result.stdout.split(b"\0")
    assert [v.decode() for v in values] == [recipe.layout.prefix, recipe.services.log_dir,
                                            recipe.layout.prefix + "/control"]
    # the advice the scripts print can be pasted back into a shell
    echoed = subprocess.run(["sh", "-c", f"printf %s {quoted.decode()}"], cwd=work, capture_output=True)
    assert echoed.stdout.decode() == recipe.layout.prefix
    assert list(work.iterdir()) == [], "a value was executed"
    return True


description_text = st.lists(
    st.sampled_from(["a", "b", " ", ":", ".", "-", "#", "\n", "\t", "Essential: yes", "Depends: evil", "\n.\n",
                     "\n \n"]),
    min_size=1, max_size=20).map("".join)


@pytest.fixture(scope="module")
def empty_tree(tmp_path_factory):
    return StagedTree(ContentStore(tmp_path_factory.mktemp("store")), ())


relation = st.from_regex(r"\A[a-z0-9][a-z0-9+.-]{1,8}( \((<<|<=|=|>=|>>) [0-9][a-z0-9.+~:-]{0,5}\))?"
                         r"( \| [a-z0-9][a-z0-9+.-]{1,8})?\Z")
summary_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


def test_control_file_fields_are_exactly_ours(tmp_path, empty_tree):
    accepted: list[int] = []

    # Derandomized: the floor below must hold on every run, not on most runs
    # (a random draw of 80 once produced only 6 acceptable pairs in CI).
    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(summary=st.one_of(summary_text, summary_text, nasty), description=description_text,
           depends=st.one_of(relation, relation, nasty))
    def check(summary, description, depends):
        if _control_fields(tmp_path / "case", empty_tree, summary, description, depends):
            accepted.append(1)

    check()
    assert len(accepted) >= 10, len(accepted)  # the property was exercised, not skipped


def _control_fields(tmp_path: Path, empty_tree: StagedTree, summary: str, description: str, depends: str) -> bool:
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    text = REAL.replace(FIELDS["summary"], f"  summary: {json.dumps(summary)}\n", 1)
    text = text.replace(FIELDS["depends"], f"  depends: [{json.dumps(depends)}]\n", 1)
    text = re.sub(r"  description: \|\n(    .*\n)+", lambda _: f"  description: {json.dumps(description)}\n", text,
                  count=1)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    recipe = _outcome(path)
    if recipe is None:
        return False
    meta = recipe.package
    spec = PackageSpec(meta=meta, revision=1, version_suffix="+deb12", architecture="amd64", release="12",
                       description=f"{meta.summary}\n{meta.description}", tree=empty_tree, shipped=(), conffiles=(),
                       scripts=(), source_date_epoch=315532800, options=recipe.options["debian"])
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    artifact = packager_for("deb").build(spec, out, work)

    def field(name: str = "") -> str:
        args = ["dpkg-deb", "-f", str(artifact.path)] + ([name] if name else [])
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    fields = [line.split(":", 1)[0] for line in field().splitlines() if line and not line[0].isspace()]
    assert sorted(fields) == sorted(["Package", "Version", "Section", "Priority", "Architecture", "Maintainer",
                                     "Installed-Size", "Depends", "Recommends", "Provides", "Conflicts", "Replaces",
                                     "Homepage", "Description"])
    assert field("Depends").strip() == depends
    assert field("Package").strip() == meta.name
    assert field("Description").splitlines()[0] == meta.summary.strip()
    return True


@pytest.mark.parametrize("fmt", ["deb", "rpm"])
def test_dollar_signs_reach_the_package_as_written(tmp_path, empty_tree, fmt):
    """nfpm expands $NAME in descriptions and relations with its environment;
    found by the fuzzer: a summary "$0" came out empty and broke the control
    file. What the recipe says is what the package says."""
    recipe = load_recipe(RECIPE)
    meta = recipe.package
    text = "costs $5, see $HOME and ${PATH}, $$ and a lone $"
    spec = PackageSpec(meta=meta, revision=1, version_suffix="", architecture="amd64", release="12",
                       description=f"{text}\n{text}", tree=empty_tree, shipped=(), conffiles=(), scripts=(),
                       source_date_epoch=315532800, options=recipe.options["debian" if fmt == "deb" else "rpm"])
    artifact = packager_for(fmt).build(spec, tmp_path, tmp_path)
    if fmt == "deb":
        shown = subprocess.run(["dpkg-deb", "-f", str(artifact.path), "Description"], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        assert shown[0] == text and shown[1].strip() == text
    else:
        shown = subprocess.run(["rpm", "-qp", "--qf", "%{SUMMARY}\n%{DESCRIPTION}", str(artifact.path)],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        assert shown[0] == text and text in shown[1:]
