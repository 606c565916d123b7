"""Recipe stage: YAML loading, validation with line-accurate errors, conversion."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import jsonschema
import pytest

from builder.errors import RecipeError
from builder.recipe.loader import load_recipe, schema_text, validate_paths
from builder.recipe.model import Layout, Recipe, Services
from builder.recipe.yamlpos import format_path

from .conftest import with_patches

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "recipes" / "qmail-syncdir.yaml"

SHA256 = "a" * 64

# Line numbers matter: the tests below point into this text.
MINIMAL = f"""\
schema: 2
package:
  name: demo
  version: "1.0"
  revision: 1
  maintainer: A B <a@b.example>
  license: MIT
  homepage: https://example.org
  summary: a demo
  description: demo package
sources:
  - name: main
    filename: demo-1.0.tar.gz
    urls: [https://example.org/demo-1.0.tar.gz]
    sha256: {SHA256}
accounts:
  groups:
    - {{name: qmail, gid: 971}}
  users:
    - {{name: qmaild, uid: 971, group: qmail, home: /var/qmail}}
build:
  steps:
    - make
targets:
  - name: debian-12
    family: debian
    release: "12"
    image: img
    formats: [deb]
"""

PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>.+?): (?P<message>.+)$", re.S)


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with_patches(tmp_path)  # the real recipe's patch files, for the tests that edit it
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    """The problems of `text`, with the file name replaced by F."""
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert validate_paths([path]) == caught.value.problems
    return [problem.replace(str(path), "F", 1) for problem in caught.value.problems]


def load_text(tmp_path: Path, text: str) -> Recipe:
    return load_recipe(write(tmp_path, text))


# --------------------------------------------------------------------------
# valid recipes


def test_real_recipe_loads() -> None:
    recipe = load_recipe(REAL)
    assert validate_paths([REAL]) == []
    assert recipe.path == REAL
    assert recipe.package.name == "qmail-syncdir"
    assert recipe.package.version == "1.03"
    assert recipe.options["debian"].replaces == ("mail-transport-agent", "qmail", "netqmail", "notqmail")
    assert [source.name for source in recipe.sources] == ["qmail", "syncdir"]
    assert recipe.source("syncdir").checksums().keys() == {"sha512", "md5"}
    assert [target.name for target in recipe.targets] == [
        "debian-11", "debian-12", "debian-13", "el-8", "el-9", "el-10", "freebsd-14", "freebsd-15"]
    # how each builds here by default: EL and FreeBSD cross-compiled on Debian's userland with zig, on every
    # architecture; Debian natively on amd64 and with Debian's cross gcc on arm64
    methods = {(t.name, arch): (t.for_architecture(arch).method, t.for_architecture(arch).userland,
                                t.for_architecture(arch).builder) for t in recipe.targets for arch in t.architectures}
    assert methods[("debian-12", "amd64")] == ("native", "debian", "docker")
    assert methods[("debian-12", "arm64")] == ("cross", "debian", "docker")
    assert {methods[(name, arch)] for name in ("el-8", "el-9", "el-10", "freebsd-14", "freebsd-15")
            for arch in ("amd64", "arm64")} == {("cross", "debian", "docker")}
    assert recipe.target("freebsd-14").with_method("native").builder == "jail"
    assert recipe.target("el-9").with_method("native").userland == "rhel"
    assert {t.name: t.cross.toolchain for t in recipe.targets} == {
        "debian-11": "gnu", "debian-12": "gnu", "debian-13": "gnu", "el-8": "zig", "el-9": "zig", "el-10": "zig",
        "freebsd-14": "zig", "freebsd-15": "zig"}
    assert recipe.target("freebsd-14").accounts.group("qnofiles").gid == 81
    assert recipe.layout == Layout()
    assert recipe.services == Services()


def test_real_recipe_targets_resolve_anchors_and_overrides() -> None:
    recipe = load_recipe(str(REAL))
    d11, d12, d13 = recipe.targets[:3]
    # the errno fix is build.steps[0]: every target, FreeBSD too, gets it
    assert d11.steps == d12.steps == d13.steps
    assert "extern int errno" in d13.steps[0]
    assert d13.steps[1].startswith("# compile the accounts' ids from the recipe")
    assert d13.steps[2].startswith("# build as any user: qmail's chkshsgr")
    assert d13.steps[3].startswith("# relink every program against syncdir")
    assert [phase for phase, _ in d13.phased_steps({"syncdir": True})] == ["prepare"] * 6 + ["build"] * 2 + ["install"]
    assert d13.steps[-1].rstrip().endswith('setup check')
    assert any('#include "alloc.h"' in step for step in d13.steps)  # survives YAML comments
    assert d13.cflags == ("-Wno-error=implicit-function-declaration", "-Wno-error=implicit-int")
    assert d12.cflags == ()
    assert (d13.suite, d13.release, d13.formats, d13.architecture) == ("trixie", "13", ("deb",), "amd64")
    assert (d13.make, d13.jobs, d13.env, d13.active_patches) == ("make", 0, (), ())
    assert [p.file.name for p in d13.patches] == ["syncdir-at-syscalls.patch"]  # for arm64 only
    assert d13.accounts.group("qmail").gid == 971
    assert [user.name for user in d13.accounts.users][-1] == "qmails"


def test_minimal_recipe_defaults(tmp_path: Path) -> None:
    recipe = load_text(tmp_path, MINIMAL)
    assert recipe.path == tmp_path / "recipe.yaml"
    assert recipe.package.section == "mail"
    assert recipe.options["debian"].depends == ()
    assert recipe.layout == Layout()
    assert recipe.services == Services()
    target = recipe.target("debian-12")
    assert (target.make, target.jobs, target.env, target.cflags) == ("make", 0, (), ())
    assert (target.suite, target.architecture, target.steps) == ("", "amd64", ("make",))
    assert target.accounts.users[0].shell == "/usr/sbin/nologin"


def test_sha256_is_lower_cased(tmp_path: Path) -> None:
    recipe = load_text(tmp_path, edit(MINIMAL, SHA256, "A" * 64))
    assert recipe.sources[0].sha256 == SHA256


def test_layout_and_services_are_converted(tmp_path: Path) -> None:
    text = MINIMAL + (
        "layout:\n  prefix: /opt/qmail\n  harvest: [/usr/share/man/man8/qmail.8]\n"
        "services:\n  smtpd: false\n  directories: [/service]\n  postmaster_alias_to: admin\n"
    )
    recipe = load_text(tmp_path, text)
    assert recipe.layout == Layout(prefix="/opt/qmail", harvest=("/usr/share/man/man8/qmail.8",))
    assert recipe.services == Services(smtpd=False, directories=("/service",), postmaster_alias_to="admin")


def test_target_overrides(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  steps:\n", "  make: gmake\n  jobs: 4\n  env: {A: '1', B: '2'}\n  steps:\n")
    text += """\
    env: {B: three, C: four}
    jobs: 2
    steps_before: [before]
    steps_after: [after]
  - name: freebsd-14
    family: freebsd
    release: "14.1"
    image: jail
    formats: [pkg]
    make: bmake
    steps: [own]
    architecture: arm64
    accounts:
      groups: [{name: wheel2, gid: 5}]
      users: [{name: d, uid: 5, group: wheel2, home: /nonexistent, shell: /bin/sh}]
"""
    recipe = load_text(tmp_path, text)
    debian, bsd = recipe.targets
    assert debian.steps == ("before", "make", "after")
    assert debian.env == (("A", "1"), ("B", "three"), ("C", "four"))
    assert (debian.make, debian.jobs) == ("gmake", 2)
    assert debian.accounts.group("qmail").gid == 971
    assert bsd.steps == ("own",)
    assert bsd.env == (("A", "1"), ("B", "2"))
    assert (bsd.make, bsd.jobs, bsd.architecture) == ("bmake", 4, "arm64")
    assert bsd.accounts.users[0].shell == "/bin/sh"
    assert [group.name for group in bsd.accounts.groups] == ["wheel2"]


def test_patches_resolve_and_filter_by_target(tmp_path: Path) -> None:
    (tmp_path / "patches" / "sub").mkdir(parents=True)
    (tmp_path / "patches" / "all.patch").write_text("")
    (tmp_path / "patches" / "sub" / "one.patch").write_text("")
    text = MINIMAL.replace("debian-12", "debian-11") + (
        "  - {name: debian-12, family: debian, release: '12', image: img, formats: [deb]}\n"
        "patches:\n"
        "  - {file: all.patch, source: main}\n"
        "  - {file: sub/one.patch, source: main, strip: 0, targets: [debian-12]}\n"
    )
    recipe = load_text(tmp_path, text)
    everywhere, only = (tmp_path / "patches" / "all.patch", tmp_path / "patches" / "sub" / "one.patch")
    assert [patch.file for patch in recipe.target("debian-11").patches] == [everywhere]
    patches = recipe.target("debian-12").patches
    assert [patch.file for patch in patches] == [everywhere, only]
    assert patches[0].file.is_absolute()
    assert (patches[0].strip, patches[1].strip, patches[1].targets) == (1, 0, ("debian-12",))


def test_top_level_accounts_optional_when_every_target_has_its_own(tmp_path: Path) -> None:
    accounts = MINIMAL[MINIMAL.index("accounts:") : MINIMAL.index("build:")]
    own = "\n".join("    " + line for line in accounts.splitlines()) + "\n"
    recipe = load_text(tmp_path, MINIMAL.replace(accounts, "") + own)
    assert recipe.targets[0].accounts.users[0].name == "qmaild"


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    text = MINIMAL.replace("  - name: debian-12\n", "  - &deb\n    name: debian-12\n") + (
        "  - <<: *deb\n    name: debian-13\n    release: '13'\n"
    )
    recipe = load_text(tmp_path, text)
    assert [(t.name, t.release, t.image) for t in recipe.targets] == [
        ("debian-12", "12", "img"),
        ("debian-13", "13", "img"),
    ]


def test_format_path() -> None:
    assert format_path(()) == "(document)"
    assert format_path(("targets", 1, "formats", 0)) == "targets[1].formats[0]"
    assert format_path(("sources", 0, "sha256")) == "sources[0].sha256"
    assert format_path(("build", "env", "a b")) == 'build.env["a b"]'
    assert format_path(("x.y", 1)) == '["x.y"][1]'


# --------------------------------------------------------------------------
# whole-document problems


def test_yaml_syntax_error_reports_mark(tmp_path: Path) -> None:
    text = "schema: 1\npackage: {name: x\nsources: []\n"
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("F:3:8: (document): YAML syntax error: while parsing a flow mapping (line 2): ")


def test_yaml_syntax_error_bad_indentation(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  revision: 1\n", "  revision: 1\n bad: 2\n")
    [problem] = problems_of(tmp_path, text)
    assert re.match(r"F:6:2: \(document\): YAML syntax error: .*expected <block end>", problem)


def test_tab_indentation(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  license: MIT\n", "\tlicense: MIT\n")
    assert problems_of(tmp_path, text) == ["F:7:1: (document): tab character used for indentation"]


def test_tab_after_spaces_in_indentation(tmp_path: Path) -> None:
    text = edit(MINIMAL, "    filename:", "  \t  filename:")
    assert problems_of(tmp_path, text) == ["F:13:3: (document): tab character used for indentation"]


def test_tabs_inside_values_are_fine(tmp_path: Path) -> None:
    text = edit(MINIMAL, "    - make\n", "    - |\n      printf 'a\tb'\n")
    assert load_text(tmp_path, text).targets[0].steps == ("printf 'a\tb'\n",)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n...\n", "~\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert problems_of(tmp_path, text) == ["F:1:1: (document): empty recipe"]


@pytest.mark.parametrize(
    ("text", "what"),
    [("- a\n- b\n", "a list"), ("hello\n", "a string"), ("42\n", "an integer")],
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str, what: str) -> None:
    assert problems_of(tmp_path, text) == [f"F:1:1: (document): a recipe must be a mapping of keys, not {what}"]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert validate_paths([missing, tmp_path]) == [
        f"{missing}:1:1: (document): cannot read: No such file or directory",
        f"{tmp_path}:1:1: (document): not a regular file (a folder); a recipe is a YAML file",
    ]
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(missing))
    assert caught.value.problems == [f"{missing}:1:1: (document): cannot read: No such file or directory"]


def test_file_name_is_reported_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "- a\n", name="r.yaml")
    monkeypatch.chdir(tmp_path)
    assert validate_paths(["r.yaml"]) == ["r.yaml:1:1: (document): a recipe must be a mapping of keys, not a list"]
    assert validate_paths([Path("./r.yaml")])[0].startswith("r.yaml:1:1: ")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"schema: 1\npackage: \xff\n")
    assert validate_paths([path]) == [f"{path}:2:10: (document): not valid UTF-8"]


def test_control_character(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, "schema: 1\nx: a\x07b\n")
    assert problem.startswith("F:2:5: (document): invalid character: ")


def test_multiple_documents(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, MINIMAL + "---\nschema: 1\n")
    assert problem.startswith("F:30:1: (document): YAML syntax error: ")


def test_validate_paths_collects_every_file(tmp_path: Path) -> None:
    good = write(tmp_path, MINIMAL, "good.yaml")
    bad = write(tmp_path, "", "bad.yaml")
    assert validate_paths([good, REAL]) == []
    assert validate_paths([bad, good, bad]) == [f"{bad}:1:1: (document): empty recipe"] * 2


# --------------------------------------------------------------------------
# keys


def test_duplicate_key(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  license: MIT\n", "  license: MIT\n  name: again\n")
    assert problems_of(tmp_path, text) == ["F:8:3: package.name: duplicate key 'name' (first at line 3)"]


def test_duplicate_key_in_flow_mapping(tmp_path: Path) -> None:
    text = edit(MINIMAL, "{name: qmail, gid: 971}", "{name: qmail, gid: 971, gid: 972}")
    assert problems_of(tmp_path, text) == [
        "F:18:31: accounts.groups[0].gid: duplicate key 'gid' (first at line 18)"
    ]


def test_merged_keys_may_be_overridden_but_own_keys_not(tmp_path: Path) -> None:
    text = MINIMAL.replace("  - name: debian-12\n", "  - &deb\n    name: debian-12\n") + (
        "  - <<: *deb\n    name: debian-13\n    name: debian-14\n"
    )
    problems = problems_of(tmp_path, text)
    assert problems == ["F:33:5: targets[1].name: duplicate key 'name' (first at line 32)"]


def test_unknown_keys(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  license: MIT\n", "  license: MIT\n  licence: MIT\n")
    text = edit(text, "    formats: [deb]\n", "    formats: [deb]\n    format: deb\n")
    text += "extra: 1\n"
    assert problems_of(tmp_path, text) == [
        "F:8:3: package.licence: unknown key 'licence'",
        "F:31:5: targets[0].format: unknown key 'format'",
        "F:32:1: extra: unknown key 'extra'",
    ]


def test_non_string_keys(tmp_path: Path) -> None:
    text = edit(MINIMAL, "build:\n", "build:\n  1: x\n  yes: y\n  [a]: z\n")
    assert problems_of(tmp_path, text) == [
        "F:22:3: build: key 1 must be a string (quote it)",
        "F:23:3: build: key True must be a string (quote it)",
        "F:24:3: build: a key must be a string, not a list or mapping",
    ]


def test_missing_required_points_at_parent(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  license: MIT\n", "")
    text = edit(text, "    image: img\n", "")
    assert problems_of(tmp_path, text) == [
        "F:2:1: package: missing required key 'license'",
        "F:24:5: targets[0]: missing required key 'image'",
    ]


def test_missing_top_level_keys(tmp_path: Path) -> None:
    text = MINIMAL[: MINIMAL.index("build:")]
    assert problems_of(tmp_path, text) == [
        "F:1:1: (document): missing required key 'build'",
        "F:1:1: (document): missing required key 'targets'",
    ]


# --------------------------------------------------------------------------
# types and values


def test_unquoted_version_float(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'version: "1.0"', "version: 1.03")
    assert problems_of(tmp_path, text) == ["F:4:12: package.version: must be a string (quote it)"]


@pytest.mark.parametrize("value", ["12", "yes", "2024-01-01", "1.5"])
def test_unquoted_scalars_for_strings(tmp_path: Path, value: str) -> None:
    text = edit(MINIMAL, 'release: "12"', f"release: {value}")
    assert problems_of(tmp_path, text) == ["F:27:14: targets[0].release: must be a string (quote it)"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"1"', "must be an integer, not a string"),
        ("1.0", "must be an integer, not a number"),
        ("true", "must be an integer, not a boolean"),
        ("0", "must be at least 1"),
        ("[1]", "must be an integer, not a list"),
        ("", "must be an integer, not empty"),
    ],
)
def test_integer_fields(tmp_path: Path, value: str, message: str) -> None:
    text = edit(MINIMAL, "  revision: 1\n", f"  revision: {value}\n")
    assert problems_of(tmp_path, text) == [f"F:5:{13 if value else 12}: package.revision: {message}"]


def test_wrong_container_types(tmp_path: Path) -> None:
    text = edit(MINIMAL, "    formats: [deb]\n", "    formats: deb\n")
    text = edit(text, "    urls: [https://example.org/demo-1.0.tar.gz]\n", "    urls: {a: b}\n")
    assert problems_of(tmp_path, text) == [
        "F:14:11: sources[0].urls: must be a list, not a mapping",
        "F:29:14: targets[0].formats: must be a list, not a string",
    ]


def test_schema_version(tmp_path: Path) -> None:
    assert problems_of(tmp_path, edit(MINIMAL, "schema: 2", "schema: 1")) == [
        "F:1:9: schema: must be 2 (schema 1 recipes: rename package.release to package.revision and move "
        "package.depends, recommends, suggests, provides, conflicts and replaces into the debian: section)"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("name: demo", "name: Demo", "F:3:9: package.name: must be a Debian package name"),
        ('version: "1.0"', 'version: "v1"', "F:4:12: package.version: must be an upstream version"),
        ("A B <a@b.example>", "A B", "F:6:15: package.maintainer: must be 'Name <email>'"),
        ("summary: a demo", "summary: |\n    two\n    lines",
         "F:9:12: package.summary: must be one line without control characters"),
        ("https://example.org\n", "example.org\n", "F:8:13: package.homepage: must be an http(s) URL"),
        ("demo-1.0.tar.gz\n", "dl/demo-1.0.tar.gz\n", "F:13:15: sources[0].filename: must be a plain"),
        ("name: main", "name: Main", "F:12:11: sources[0].name: must be lower-case"),
        (SHA256, "b" * 63, "F:15:13: sources[0].sha256: must be 64 hex digits"),
        ("/var/qmail}", "var/qmail}", "F:20:52: accounts.users[0].home: must be an absolute path"),
        ("gid: 971", "gid: 0", "F:18:26: accounts.groups[0].gid: must be at least 1"),
        ("uid: 971", "uid: 65534", "F:20:27: accounts.users[0].uid: must be at most 65533"),
        ("family: debian", "family: suse", "F:26:13: targets[0].family: 'suse' is not one of: debian, freebsd, rhel"),
        ("[deb]", "[deb, deb]", "F:29:14: targets[0].formats: items must be unique"),
        ("[deb]", "[dmg]", "F:29:15: targets[0].formats[0]: 'dmg' is not one of: deb, pkg, rpm"),
        ("[deb]", "[]", "F:29:14: targets[0].formats: must not be empty"),
        ("  steps:\n    - make\n", "  steps: []\n", "F:22:10: build.steps: must not be empty"),
        ("image: img", "image: ''", "F:28:12: targets[0].image: must be an image reference"),
    ],
)
def test_invalid_values(tmp_path: Path, old: str, new: str, expected: str) -> None:
    [problem] = problems_of(tmp_path, edit(MINIMAL, old, new))
    assert problem.startswith(expected)


def test_layout_paths_must_be_absolute(tmp_path: Path) -> None:
    text = MINIMAL + "layout:\n  prefix: var/qmail\n  state: [/ok, queue]\nservices:\n  smtpd: 1\n"
    assert problems_of(tmp_path, text) == [
        "F:31:11: layout.prefix: must be an absolute path without '.', '..', '//' or a trailing '/'",
        "F:32:16: layout.state[1]: must be an absolute path without '.', '..', '//' or a trailing '/'",
        "F:34:10: services.smtpd: must be true or false, not an integer",
    ]


def test_env(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  steps:\n", "  env: {OK: x, NUM: 1, bad-name: y}\n  steps:\n")
    assert problems_of(tmp_path, text) == [
        "F:22:21: build.env.NUM: must be a string (quote it)",
        "F:22:24: build.env.bad-name: 'bad-name' must be a shell variable name",
    ]


def test_steps_must_be_strings(tmp_path: Path) -> None:
    text = edit(MINIMAL, "    - make\n", "    - make\n    - cd: src\n    - 42\n    -\n")
    text += "    steps_after: [ok, [nested]]\n"
    step = ("a step must be a string of shell, or a mapping with run: and phase: (prepare, build or install), "
            "if: or unless: (an option)")
    assert problems_of(tmp_path, text) == [
        f"F:24:7: build.steps[1]: {step}",
        f"F:25:7: build.steps[2]: {step}",
        f"F:26:6: build.steps[3]: {step}",
        f"F:33:23: targets[0].steps_after[1]: {step}",
    ]


def test_options_and_the_steps_that_depend_on_them(tmp_path: Path) -> None:
    options = "options:\n  fast:\n    default: true\n    description: the fast path\n"
    text = options + edit(MINIMAL, "    - make\n", "    - make\n    - {run: make fast, if: fast}\n"
                                                   "    - run: |\n        # slow path\n        make slow\n"
                                                   "      unless: fast\n")
    recipe = load_text(tmp_path, text)
    assert [(o.name, o.default) for o in recipe.build_options] == [("fast", True)]
    target = recipe.targets[0]
    assert target.steps_for({"fast": True}) == ("make", "make fast")
    assert target.steps_for({"fast": False}) == ("make", "# slow path\nmake slow\n")
    step = ("a step must be a string of shell, or a mapping with run: and phase: (prepare, build or install), "
            "if: or unless: (an option)")
    bad = options + edit(MINIMAL, "    - make\n", "    - {run: make, if: slow}\n"
                                                  "    - {run: make, if: fast, unless: fast}\n"
                                                  "    - {run: make}\n    - {run: 'make # x', if: fast, then: y}\n")
    assert problems_of(tmp_path, bad) == [
        "F:27:23: build.steps[0].if: unknown option 'slow' (options: fast)",
        f"F:28:7: build.steps[1]: {step}",
        f"F:29:7: build.steps[2]: {step}",
        f"F:30:7: build.steps[3]: {step}",
    ]
    assert problems_of(tmp_path, "options:\n  Fast: {default: yes, description: ''}\n" + MINIMAL)[0].startswith(
        "F:2:3: options.Fast: 'Fast' an option name is")


# --------------------------------------------------------------------------
# cross references


def test_source_needs_strong_checksum(tmp_path: Path) -> None:
    text = edit(MINIMAL, f"    sha256: {SHA256}\n", f"    md5: {'c' * 32}\n")
    assert problems_of(tmp_path, text) == [
        "F:12:5: sources[0]: no sha256 or sha512 checksum: a source must be pinned"
    ]


def test_sha512_alone_is_enough(tmp_path: Path) -> None:
    recipe = load_text(tmp_path, edit(MINIMAL, f"sha256: {SHA256}", f"sha512: {'d' * 128}"))
    assert recipe.sources[0].checksums() == {"sha512": "d" * 128}


def test_duplicate_names(tmp_path: Path) -> None:
    source = f"  - {{name: main, filename: b, urls: [ftp://x/b], sha256: {SHA256}}}\n"
    text = edit(MINIMAL, "accounts:\n", source + "accounts:\n")
    text += "  - {name: debian-12, family: debian, release: '12', image: i, formats: [deb]}\n"
    assert problems_of(tmp_path, text) == [
        "F:16:12: sources[1].name: duplicate source name 'main' (first at line 12)",
        "F:31:12: targets[1].name: duplicate target name 'debian-12' (first at line 26)",
    ]


def test_account_references(tmp_path: Path) -> None:
    text = edit(
        MINIMAL,
        "    - {name: qmaild, uid: 971, group: qmail, home: /var/qmail}\n",
        "    - {name: qmaild, uid: 971, group: qmail, home: /var/qmail}\n"
        "    - {name: qmaild, uid: 971, group: nogroup, home: /var/qmail}\n",
    )
    group = "    - {name: qmail, gid: 971}\n"
    text = edit(text, group, group * 2)
    assert problems_of(tmp_path, text) == [
        "F:19:14: accounts.groups[1].name: duplicate group name 'qmail' (first at line 18)",
        "F:19:26: accounts.groups[1].gid: duplicate gid 971 (first at line 18)",
        "F:22:14: accounts.users[1].name: duplicate user name 'qmaild' (first at line 21)",
        "F:22:27: accounts.users[1].uid: duplicate uid 971 (first at line 21)",
        "F:22:39: accounts.users[1].group: unknown group 'nogroup' (declared: qmail)",
    ]


def test_target_accounts_are_checked(tmp_path: Path) -> None:
    text = MINIMAL + "    accounts:\n      groups: []\n      users: [{name: u, uid: 5, group: g, home: /h}]\n"
    assert problems_of(tmp_path, text) == [
        "F:32:40: targets[0].accounts.users[0].group: unknown group 'g' (declared: none)"
    ]


def test_no_accounts_anywhere(tmp_path: Path) -> None:
    accounts = MINIMAL[MINIMAL.index("accounts:") : MINIMAL.index("build:")]
    assert problems_of(tmp_path, MINIMAL.replace(accounts, "")) == [
        "F:20:5: targets[0]: no accounts: declare them in this target or at the top level"
    ]


def test_format_must_match_family(tmp_path: Path) -> None:
    text = edit(MINIMAL, "formats: [deb]", "formats: [deb, rpm, pkg]")
    assert problems_of(tmp_path, text) == [
        "F:29:20: targets[0].formats[1]: format 'rpm' needs family 'rhel', not 'debian'",
        "F:29:25: targets[0].formats[2]: format 'pkg' needs family 'freebsd', not 'debian'",
    ]


def test_patch_references(tmp_path: Path) -> None:
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "ok.patch").write_text("")
    text = MINIMAL + (
        "patches:\n"
        "  - file: ok.patch\n"
        "    source: qmail\n"
        "    targets: [debian-12, debian-99]\n"
        "  - {file: missing.patch, source: main}\n"
        "  - {file: ../escape.patch, source: main}\n"
        "  - {file: /abs.patch, source: main}\n"
        "  - {source: main, strip: -1}\n"
    )
    missing = tmp_path / "patches" / "missing.patch"
    assert problems_of(tmp_path, text) == [
        "F:32:13: patches[0].source: unknown source 'qmail' (sources: main)",
        "F:33:26: patches[0].targets[1]: unknown target 'debian-99'",
        f"F:34:12: patches[1].file: patch file not found: {missing}",
        "F:35:12: patches[2].file: must be a path inside the recipe's patches/ folder",
        "F:36:12: patches[3].file: must be a path inside the recipe's patches/ folder",
        "F:37:5: patches[4]: missing required key 'file'",
        "F:37:27: patches[4].strip: must be at least 0",
    ]


def test_every_problem_is_reported_sorted_by_line(tmp_path: Path) -> None:
    text = edit(MINIMAL, 'version: "1.0"', "version: 1.0")
    text = edit(text, f"    sha256: {SHA256}\n", "")
    text = edit(text, "    - make\n", "    - {a: b}\n")
    text = edit(text, "[deb]", "[rpm]")
    text = "oops: 1\n" + text
    assert problems_of(tmp_path, text) == [
        "F:1:1: oops: unknown key 'oops'",
        "F:5:12: package.version: must be a string (quote it)",
        "F:13:5: sources[0]: no sha256 or sha512 checksum: a source must be pinned",
        "F:23:7: build.steps[0]: a step must be a string of shell, or a mapping with run: and phase: "
        "(prepare, build or install), if: or unless: (an option)",
        "F:29:15: targets[0].formats[0]: format 'rpm' needs family 'rhel', not 'debian'",
    ]


# --------------------------------------------------------------------------
# hostile YAML


def test_bad_explicit_tag(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  revision: 1\n", "  revision: !!int one\n")
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("F:5:13: package.revision: cannot read value tagged tag:yaml.org,2002:int: ")


def test_python_tags_are_refused(tmp_path: Path) -> None:
    text = edit(MINIMAL, "  license: MIT\n", "  license: !!python/name:os.system ''\n")
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("F:7:12: package.license: cannot read value: could not determine a constructor")


def test_recursive_alias(tmp_path: Path) -> None:
    text = edit(MINIMAL, "    - make\n", "    - &loop [*loop]\n")
    assert problems_of(tmp_path, text) == [
        # the alias is the list itself, so both point at its anchor
        "F:23:7: build.steps[0][0]: an alias refers to a value that contains it",
        "F:23:7: build.steps[0]: a step must be a string of shell, or a mapping with run: and phase: "
        "(prepare, build or install), if: or unless: (an option)",
    ]


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    problems = problems_of(tmp_path, "\n".join(lines) + "\n")
    assert problems == ["F:1:1: (document): the document expands to more than 100000 values "
                        "or 4194304 characters (aliases counted each time they are used)"]


def test_deep_nesting(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path, "schema: " + "[" * 1500 + "]" * 1500 + "\n")
    assert problem.startswith("F:1:1: (document): ")


def _check_outcome(path: Path) -> None:
    """Loading either succeeds or raises RecipeError of well-formed problems."""
    try:
        load_recipe(path)
    except RecipeError as error:
        assert error.problems
        for problem in error.problems:
            match = PROBLEM.match(problem)
            assert match, problem
            assert match["file"] == str(path)
            assert int(match["line"]) >= 1 and int(match["col"]) >= 1


def test_fuzz_truncated_prefixes(tmp_path: Path) -> None:
    data = REAL.read_bytes()
    path = tmp_path / "recipe.yaml"
    cuts = sorted(set(range(0, len(data), 37)) | {i for i, byte in enumerate(data) if byte == ord("\n")})
    for cut in cuts:
        path.write_bytes(data[:cut])
        _check_outcome(path)


def test_fuzz_random_mutations(tmp_path: Path) -> None:
    data = REAL.read_bytes()
    path = tmp_path / "recipe.yaml"
    rng = random.Random(1234)
    alphabet = b" \t\n:-[]{}&*!|>'\"#%@`,?0123456789abcxyz\x00\xff\xc3"
    for _ in range(400):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(mutated))
            action = rng.randrange(3)
            if action == 0:
                mutated[at] = rng.choice(alphabet)
            elif action == 1:
                mutated.insert(at, rng.choice(alphabet))
            else:
                del mutated[at]
        path.write_bytes(bytes(mutated))
        _check_outcome(path)


# --------------------------------------------------------------------------
# schema and docs


def test_schema_text_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(schema_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _objects(schema: object, where: str = "#") -> list[tuple[str, dict]]:
    found: list[tuple[str, dict]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append((where, schema))
        for key, value in schema.items():
            found += _objects(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += _objects(value, f"{where}/{index}")
    return found


def test_every_schema_object_is_closed() -> None:
    for where, obj in _objects(json.loads(schema_text())):
        if where == "#/$defs/env":  # a mapping of arbitrary variable names
            assert obj["additionalProperties"] == {"type": "string"}
        elif where == "#/properties/options":  # a mapping of option names, each closed
            assert obj["additionalProperties"]["additionalProperties"] is False
        else:
            assert obj.get("additionalProperties") is False, where


def test_docs_describe_every_field() -> None:
    docs = (ROOT / "docs" / "recipe-format.md").read_text(encoding="utf-8")
    for _, obj in _objects(json.loads(schema_text())):
        for name in obj.get("properties", {}):
            assert re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", docs), name


def test_deeply_nested_values_are_refused_early(tmp_path: Path) -> None:
    # deep enough to exhaust jsonschema's recursion, shallow enough for PyYAML
    deep = "[" * 300 + "deb" + "]" * 300
    text = edit(MINIMAL, "formats: [deb]", f"formats: [deb, {deep}, {deep}]")
    problems = problems_of(tmp_path, text)
    assert "F:29:49: targets[0].formats[1]" + "[0]" * 29 + ": nested more than 32 levels deep" in problems
    assert all(len(problem) < 300 for problem in problems)


def test_unquoted_step_cut_by_a_yaml_comment_is_an_error(tmp_path: Path) -> None:
    """`- sed -i '1i #include "x.h"' f` silently loses everything after ' #'."""
    text = edit(
        REAL.read_text(),
        '    - phase: install\n',
        '    - cd "$SRC_QMAIL" && sed -i \'1i #include "alloc.h"\' spawn.c\n    - phase: install\n',
    )
    (problem,) = problems_of(tmp_path, text)
    assert re.match(r"F:\d+:7: build\.steps\[8\]: this unquoted step ends where ' #' starts a YAML comment", problem)


def test_comments_after_quoted_steps_and_other_fields_are_fine(tmp_path: Path) -> None:
    text = edit(REAL.read_text(), "    size: 8878\n", "    size: 8878  # bytes\n")
    text = edit(text, "  steps:\n",
                "  steps:\n    - {phase: prepare, run: \"true\"}  # a quoted step may carry a comment\n")
    assert load_text(tmp_path, text).target("debian-12").steps[0] == "true"


def test_a_step_out_of_phase_order_is_named(tmp_path: Path) -> None:
    """A change to the sources after the build compiled would be lost from a
    source package's patches: the phases must come in order."""
    text = edit(REAL.read_text(), '        "$MAKE" $(cat .qmail-pkg-host-made) setup check\n',
                '        "$MAKE" $(cat .qmail-pkg-host-made) setup check\n    - {phase: prepare, run: "touch late"}\n')
    problems = problems_of(tmp_path, text)
    assert problems and all(
        re.match(r"F:\d+:7: build\.steps\[9\]: prepare step after the install step at build\.steps\[8\] in target "
                 r"'[a-z0-9-]+': steps run prepare, then build, then install$", problem) for problem in problems)
