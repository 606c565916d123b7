"""Hostile input on the surfaces around a build (issue 17): `qmail-pkg ci`
and the file it writes, the builders settings and --engine, integer and
folder settings from the environment, --arch, account paths in recipes, and
messages that quote hostile names.

Hermetic: no Docker engine is used (DOCKER_HOST names a socket that does not
exist, so a case that got as far as a container would fail loudly). Each case
asserts the exact one-line error (or that a legitimate value works), a
non-zero exit, no traceback or internal error, and that nothing was written
outside the folders the case names: every command runs with its own HOME,
XDG folders, TMPDIR and working folder inside tmp_path, whose whole tree is
compared before and after.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from builder import ci
from builder import cli as command_line
from builder.ci import CiError, render_pipeline, write_pipeline, yaml_string
from builder.cli import commands
from builder.engines import Engine, check_engines, load_settings, parse_flag
from builder.environ import SOURCE_DATE_EPOCH, SettingError, cache_folder, folder_path
from builder.errors import QmailPkgError, printable
from builder.recipe.loader import load_recipe

from .conftest import RECIPE, ROOT, with_patches

REAL = RECIPE.read_text()
NO_ENGINE = "unix:///nonexistent/qmail-pkg-hermetic.sock"
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci"}


# -- the harness ----------------------------------------------------------------

def _tree(root: Path) -> dict[str, str]:
    """Every path below root with its kind and, for files, its content."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = f"link {os.readlink(path)}"
        elif path.is_fifo():
            found[relative] = "fifo"
        elif path.is_dir():
            found[relative] = "dir"
        else:
            found[relative] = f"file {path.read_bytes()!r}"
    return found


class Cli:
    """qmail-pkg in a process of its own, in a world of its own below tmp_path."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.work = tmp_path / "work"
        self.home = tmp_path / "home"
        for folder in (self.work, self.home, tmp_path / "tmp"):
            folder.mkdir(exist_ok=True)

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        kept = {key: value for key, value in os.environ.items()
                if not key.startswith(("QMAIL_PKG_", "XDG_", "DOCKER_")) and key not in ("SOURCE_DATE_EPOCH", "HOME")}
        return {**kept, "HOME": str(self.home), "TMPDIR": str(self.root / "tmp"), "DOCKER_HOST": NO_ENGINE,
                "PYTHONPATH": str(ROOT), **extra}

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "builder.cli", *args], capture_output=True, text=True,
                              cwd=self.work, timeout=timeout, env=self.env(env or {}))

    def refused(self, args: list[str], message: str, env: dict[str, str] | None = None, code: int = 1,
                written: set[str] = frozenset()) -> subprocess.CompletedProcess:
        """Run, and assert the exact one-line error, the exit code, and that
        nothing but `written` (paths relative to tmp_path) changed."""
        before = _tree(self.root)
        result = self.run(*args, env=env)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
        assert result.returncode == code, result.stderr
        assert result.stderr == message + "\n", result.stderr
        after = _tree(self.root)
        changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
        assert changed == set(written), changed
        return result


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path)


def _build(*extra: str) -> list[str]:
    return ["build", str(RECIPE), "--target", "debian-12", "--out", "dist", *extra]


# == 1. qmail-pkg ci: where the pipeline is written ==============================

def _destination_cases(tmp: Path) -> dict:
    """name -> (setup(tmp) -> the --out text, the message after 'qmail-pkg: error: ')"""

    def fifo(t):
        os.mkfifo(t / "fifo.yml")
        return str(t / "fifo.yml")

    def folder(t):
        (t / "folder.yml").mkdir()
        return str(t / "folder.yml")

    def symlink(t):
        (t / "victim").write_text("precious\n")
        (t / "link.yml").symlink_to(t / "victim")
        return str(t / "link.yml")

    def dangling(t):
        (t / "dangling.yml").symlink_to(t / "created-through-the-link")
        return str(t / "dangling.yml")

    def parent_link(t):
        (t / "elsewhere").mkdir()
        (t / "linked").symlink_to(t / "elsewhere")
        return str(t / "linked" / "p.yml")

    def parent_file(t):
        (t / "plain").write_text("x\n")
        return str(t / "plain" / "p.yml")

    def deep_link(t):
        (t / "a" / "b").mkdir(parents=True)
        (t / "elsewhere2").mkdir()
        (t / "a" / "b" / "c").symlink_to(t / "elsewhere2")
        return str(t / "a" / "b" / "c" / "d" / "p.yml")

    return {
        "a-fifo": (fifo, "{out}: a FIFO; a pipeline replaces only a regular file"),
        "a-character-device": (lambda t: "/dev/null", "/dev/null: a character device; a pipeline replaces only a regular file"),
        "a-folder": (folder, "{out}: a folder; a pipeline replaces only a regular file"),
        "a-symlink-to-a-file": (symlink, "{out}: a symlink; a pipeline replaces only a regular file"),
        "a-dangling-symlink": (dangling, "{out}: a symlink; a pipeline replaces only a regular file"),
        "a-symlinked-parent": (parent_link, "{out}: its folder 'linked' is a symlink; the pipeline is written only into real folders"),
        "a-parent-that-is-a-file": (parent_file, "{out}: its folder 'plain' is a regular file; the pipeline is written only into real folders"),
        "a-symlink-deeper-on-the-way": (deep_link, "{out}: its folder 'c' is a symlink; the pipeline is written only into real folders"),
        "a-trailing-slash": (lambda t: str(t / "dir") + "/", "{out}: names a folder; give the pipeline's file name"),
        "dot": (lambda t: ".", ".: names a folder; give the pipeline's file name"),
        "dot-dot": (lambda t: "..", "..: names a folder; give the pipeline's file name"),
    }


@pytest.mark.parametrize("name", sorted(_destination_cases(Path("/"))))
def test_ci_out_that_is_not_a_regular_file_is_refused_and_nothing_is_written(cli, tmp_path, name):
    setup, message = _destination_cases(tmp_path)[name]
    places = cli.root / "places"
    places.mkdir()
    out = setup(places)
    cli.refused(["ci", "github", str(RECIPE), "--out", out], "qmail-pkg: error: " + message.format(out=out))
    # what the links point at is untouched, and nothing was made through them
    if (places / "victim").exists():
        assert (places / "victim").read_text() == "precious\n"
    assert not (places / "created-through-the-link").exists()
    for elsewhere in ("elsewhere", "elsewhere2"):
        assert not (places / elsewhere).exists() or not any((places / elsewhere).iterdir())


def test_ci_planted_link_at_the_temporary_name_is_never_followed(tmp_path, monkeypatch):
    """Someone who can predict the temporary name plants a link there: O_EXCL
    refuses to open it, the next (unpredictable) name is used, the victim and
    the planted link are left as they were."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".qmail-pkg-planted.tmp").symlink_to(victim)
    names = iter(["planted", "fresh"])
    monkeypatch.setattr(ci.secrets, "token_hex", lambda _: next(names))
    write_pipeline(str(tmp_path / "p.yml"), "a: 1\n")
    assert (tmp_path / "p.yml").read_text() == "a: 1\n" and not (tmp_path / "p.yml").is_symlink()
    assert victim.read_text() == "precious\n"
    assert os.readlink(tmp_path / ".qmail-pkg-planted.tmp") == str(victim)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".qmail-pkg-planted.tmp", "p.yml", "victim"]


def test_ci_every_temporary_name_planted_is_an_error_and_nothing_is_written(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / ".qmail-pkg-planted.tmp").symlink_to(victim)
    monkeypatch.setattr(ci.secrets, "token_hex", lambda _: "planted")
    with pytest.raises(CiError) as caught:
        write_pipeline(str(tmp_path / "p.yml"), "a: 1\n")
    assert str(caught.value) == (f"{tmp_path}/p.yml: no unused temporary name in its folder after 8 tries; "
                                 "something creates files there")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".qmail-pkg-planted.tmp", "victim"]


def test_ci_a_failed_write_leaves_the_old_pipeline_and_no_temporary_file(tmp_path, monkeypatch):
    old = tmp_path / "p.yml"
    old.write_text("old: pipeline\n")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ci.os, "fsync", full_disk)
    with pytest.raises(CiError) as caught:
        write_pipeline(str(old), "new: pipeline\n")
    assert str(caught.value) == f"{old}: cannot write: No space left on device"
    assert old.read_text() == "old: pipeline\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.yml"]


def test_ci_replaces_a_regular_file_keeping_its_mode_and_makes_missing_folders(cli, tmp_path):
    existing = cli.work / "mine.yml"
    existing.write_text("old\n")
    existing.chmod(0o640)
    result = cli.run("ci", "gitlab", str(RECIPE), "--out", "mine.yml")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert existing.read_text().startswith("# Written by `qmail-pkg ci gitlab") and existing.stat().st_mode & 0o777 == 0o640
    result = cli.run("ci", "github", str(RECIPE))  # the default place, folders made on the way
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote .github/workflows/qmail-pkg.yml\n"
    assert sorted(p.name for p in cli.work.iterdir()) == [".github", "mine.yml"]


def test_ci_github_refuses_a_recipe_path_it_would_evaluate(cli, tmp_path):
    folder = cli.work / "${{ secrets.KEY }}"
    folder.mkdir()
    shutil.copy(RECIPE, folder / "r.yaml")
    with_patches(folder)
    cli.refused(["ci", "github", "${{ secrets.KEY }}/r.yaml", "--out", "p.yml"],
                "qmail-pkg: error: ${{ secrets.KEY }}/r.yaml: a recipe path holding '${{' cannot be written into a "
                "GitHub workflow (GitHub would evaluate it as an expression); rename it")


# == 1. qmail-pkg ci: what the pipeline says =====================================

# Target names the recipe schema accepts that a YAML reader would otherwise
# take for a boolean, null, number or date (`~` the schema itself refuses).
HOSTILE_NAMES = {
    "booleans-null-numbers-dates": ["on", "null", "1.10", "0x10", "2024-01-01", "yes", "no"],
    "more-of-yaml-1.1": ["true", "off", "1e3", "010", "0o17", "y", "n"],
}
REAL_NAMES = ["debian-11", "debian-12", "debian-13", "el-8", "el-9", "el-10", "freebsd-14", "freebsd-15"]


def _renamed_recipe(folder: Path, names: list[str]) -> Path:
    text = REAL
    for old, new in zip(REAL_NAMES, names, strict=False):
        text = text.replace(f"  - name: {old}\n", f"  - name: {json.dumps(new)}\n", 1)
    patched = ", ".join(json.dumps(new) for old, new in zip(REAL_NAMES, names, strict=False) if old in
                        ("debian-11", "debian-12", "debian-13", "el-8", "el-9", "el-10"))
    text = text.replace("targets: [debian-11, debian-12, debian-13, el-8, el-9, el-10]", f"targets: [{patched}]", 1)
    path = folder / "hostile.yaml"
    path.write_text(text)
    with_patches(folder)
    return path


def _matrix_names(provider: str, document: dict) -> list[list]:
    """Each matrix's target names, as the YAML reader returned them."""
    if provider == "github":
        return [[row["target"] for row in document["jobs"][job]["strategy"]["matrix"]["include"]]
                for job in ("build", "rebuild")]
    return [[name for row in document[".matrix"]["parallel"]["matrix"] for name in row["TARGET"]]]


def _shell_blocks(provider: str, document: dict) -> list[str]:
    if provider == "github":
        blocks = [step["run"] for job in document["jobs"].values() for step in job["steps"] if "run" in step]
        return [re.sub(r"\$\{\{[^}]*\}\}", "x", block) for block in blocks]
    return ["\n".join(job.get("before_script", []) + job.get("script", [])) for job in document.values()
            if isinstance(job, dict) and ("script" in job or "before_script" in job)]


@pytest.mark.parametrize("provider", ["github", "gitlab"])
@pytest.mark.parametrize("names", sorted(HOSTILE_NAMES))
def test_ci_target_names_that_look_like_other_types_come_back_as_strings(provider, names, tmp_path):
    path = _renamed_recipe(tmp_path, HOSTILE_NAMES[names])
    recipe = load_recipe(path)
    expected = [t.name for t in recipe.targets][:len(HOSTILE_NAMES[names])]
    assert expected == HOSTILE_NAMES[names]
    text = render_pipeline(provider, recipe, str(path))
    document = yaml.safe_load(text)
    for found in _matrix_names(provider, document):
        assert found[:len(expected)] == expected and all(type(name) is str for name in found)
    pipeline = tmp_path / "p.yml"
    pipeline.write_text(text)
    checked = subprocess.run(["check-jsonschema", "--builtin-schema", SCHEMAS[provider], str(pipeline)],
                             capture_output=True, text=True,
                             env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for block in _shell_blocks(provider, document):
        script = tmp_path / "block.sh"
        script.write_text("#!/bin/sh\n" + block + "\n")
        result = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, block + "\n" + result.stdout


def test_ci_a_tilde_target_name_is_refused_by_the_recipe_schema(cli, tmp_path):
    path = cli.work / "tilde.yaml"
    text = REAL.replace("  - name: freebsd-15\n", '  - name: "~"\n', 1)
    path.write_text(text)
    with_patches(cli.work)
    line = text[: text.index('  - name: "~"')].count("\n") + 1
    cli.refused(["ci", "gitlab", str(path), "--out", "p.yml"],
                f"{path}:{line}:11: targets[7].name: must be lower-case letters, digits, '.' and '-'")


@pytest.mark.parametrize("value, written", [
    ("on", '"on"'), ("1.10", '"1.10"'), ("~", '"~"'), ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ("a\nb\x1b\x85\u2028", '"a\\nb\\u001b\\u0085\\u2028"'), ("caf\u00e9 \U0001f600", '"caf\\u00e9 \\U0001f600"'),
])
def test_ci_yaml_filter_round_trips_every_string(value, written):
    assert yaml_string(value) == written
    assert yaml.safe_load(f"k: {written}\n") == {"k": value}


def test_ci_templates_write_every_value_through_the_yaml_filter():
    """No variable reaches a pipeline unquoted: every {{ }} of a template is
    a constant of the template or ends in the yaml filter."""
    constants = {"T", "ROOT", "INSTALL", "PACKAGES"}
    for template in (ROOT / "builder" / "ci_templates").glob("*.j2"):
        text = template.read_text().replace("{{ '{{' }}", "").replace("{{ '}}' }}", "")
        text = re.sub(r"\{%.*?%\}", "", text)  # statements, and the constants they set
        for expression in re.findall(r"\{\{(.*?)\}\}", text):
            expression = expression.strip()
            assert expression in constants or re.search(r'\|\s*yaml$|map\("yaml"\)', expression), (template.name, expression)


# == 2. builders settings ==========================================================

def _settings_cases(tmp: Path) -> dict:
    """name -> (what to put at the settings path, the message after '{path}: ');
    tmp/pem holds ca.pem, cert.pem and key.pem"""
    pem = tmp / "pem"
    tcp = "builders:\n  - targets: [el-9]\n    docker: tcp://el:2376\n"
    entry = "builders:\n  - targets: [debian-12]\n    docker: {url}\n"
    return {
        "a-fifo": ("fifo", "not a regular file (a FIFO); the builders settings are a YAML file"),
        "a-folder": ("folder", "not a regular file (a folder); the builders settings are a YAML file"),
        "larger-than-64-KiB": ("builders: []\n" + "#" * 70000 + "\n", "larger than 65536 bytes; builders settings are a few lines"),
        "not-utf-8": (b"builders: []\n# \xff\xfe\n", "not valid UTF-8 (byte 15)"),
        "yaml-syntax": ("builders: [\n", "YAML syntax error at line 2, column 1: expected the node content, but found '<stream end>'"),
        "nested-too-deeply": ("[" * 5000, "nested too deeply to be builders settings"),
        "python-object-tag": ("builders: !!python/object/apply:os.system [true]\n",
                              "cannot read the value at line 1, column 11: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
        "not-a-mapping": ("- docker: unix:///x\n", "expected a mapping with a list under 'builders'"),
        "empty": ("", "expected a mapping with a list under 'builders'"),
        "unknown-top-level-key": ("builders: []\nshell: rm -rf /\n", "unknown key 'shell' (the settings hold one list, builders)"),
        "unknown-entry-key": ("builders:\n  - targets: [a]\n    docker: unix:///x\n    command: rm\n",
                              "builders[0]: unknown key 'command' (an entry takes targets, docker or jail, and tls)"),
        "docker-and-jail": ("builders:\n  - targets: [a]\n    docker: unix:///x\n    jail: ssh://h\n",
                            "builders[0]: give exactly one of docker: (a Docker engine) or jail: (a FreeBSD jail host)"),
        "url-not-a-string": ("builders:\n  - targets: [a]\n    docker: [unix:///x]\n",
                             "builders[0].docker: must be a URL, unix:///PATH, ssh://[USER@]HOST[:PORT] or tcp://HOST[:PORT] (jail+ssh:// on --engine for a jail host)"),
        "url-http": (entry.format(url="http://h"), "builders[0].docker: 'http://h': expected unix:///PATH, "
                     "ssh://[USER@]HOST[:PORT] or tcp://HOST[:PORT] (jail+ssh:// on --engine for a jail host)"),
        "ssh-host-is-an-option": (entry.format(url="ssh://-oProxyCommand=touch"),
                                  "builders[0].docker: 'ssh://-oProxyCommand=touch': expected ssh://[USER@]HOST[:PORT], with a host name or IPv4 address"),
        "ssh-port-zero": (entry.format(url="ssh://h:0"), "builders[0].docker: 'ssh://h:0': the port must be a number from 1 to 65535"),
        "ssh-port-too-big": (entry.format(url="ssh://h:65536"), "builders[0].docker: 'ssh://h:65536': the port must be a number from 1 to 65535"),
        "unix-relative": (entry.format(url="unix://run/docker.sock"), "builders[0].docker: 'unix://run/docker.sock': "
                          "unix:// takes the socket's absolute path, such as unix:///run/docker.sock (no spaces or control characters)"),
        "jail-over-unix": ("builders:\n  - targets: [freebsd-14]\n    jail: unix:///x\n",
                           "builders[0].jail: 'unix:///x': a jail host is reached over ssh://[USER@]HOST[:PORT]"),
        "tls-for-ssh": (entry.format(url="ssh://h") + f"    tls: {{cert: {pem}/cert.pem, key: {pem}/key.pem}}\n",
                        "builders[0].tls: TLS is for tcp:// Docker engines only (ssh:// and unix:// are secured otherwise)"),
        "tcp-without-tls": (tcp, "builders[0]: a tcp:// engine needs tls: with cert and key (Docker over plain TCP "
                            "gives root on the engine to anyone who reaches its port)"),
        "tls-without-key": (tcp + f"    tls: {{ca: {pem}/ca.pem, cert: {pem}/cert.pem}}\n",
                            "builders[0].tls: give both cert and key (the client's certificate and its private key); ca is optional"),
        "tls-file-missing": (tcp + f"    tls: {{cert: {pem}/cert.pem, key: {pem}/nokey.pem}}\n",
                             f"builders[0].tls.key: {pem}/nokey.pem: No such file or directory"),
        "tls-file-is-a-folder": (tcp + f"    tls: {{cert: {pem}, key: {pem}/key.pem}}\n",
                                 f"builders[0].tls.cert: {pem}: not a regular file (a folder)"),
        "tls-file-relative": (tcp + "    tls: {cert: cert.pem, key: key.pem}\n",
                              "builders[0].tls.cert: must be the absolute path of a PEM file"),
        "targets-empty": ("builders:\n  - targets: []\n    docker: unix:///x\n",
                          "builders[0].targets: must be a list of target name patterns, such as [el-*]"),
        "target-read-as-a-boolean": ("builders:\n  - targets: [on]\n    docker: unix:///x\n",
                                     "builders[0].targets[0]: True is not a string; quote it (YAML reads 1.10, on or 2024-01-01 as a number, a boolean or a date)"),
        "target-read-as-a-number": ("builders:\n  - targets: [1.10]\n    docker: unix:///x\n",
                                    "builders[0].targets[0]: 1.1 is not a string; quote it (YAML reads 1.10, on or 2024-01-01 as a number, a boolean or a date)"),
        "target-with-an-escape": ('builders:\n  - targets: ["a\\e[2Jb"]\n    docker: unix:///x\n',
                                  "builders[0].targets[0]: 'a\\x1b[2Jb' is not a pattern of target names (letters, digits, . - / and * ? [ ] !)"),
        "aliases-multiplying-patterns": ("builders: [&e {targets: [" + ", ".join(["a"] * 40) + "], docker: 'unix:///x'}, "
                                         + ", ".join(["*e"] * 40) + "]\n",
                                         "more than 1000 target patterns; builders settings are a few lines"),
    }


@pytest.mark.parametrize("name", sorted(_settings_cases(Path("/nonexistent"))))
def test_hostile_builders_settings_stop_the_build_before_any_container(cli, tmp_path, name):
    content, message = _settings_cases(tmp_path)[name]
    (tmp_path / "pem").mkdir()
    for pem in ("ca", "cert", "key"):
        (tmp_path / "pem" / f"{pem}.pem").write_text("PEM\n")
    settings = tmp_path / "builders.yaml"
    if content == "fifo":
        os.mkfifo(settings)
    elif content == "folder":
        settings.mkdir()
    elif isinstance(content, bytes):
        settings.write_bytes(content)
    else:
        settings.write_text(content)
    cli.refused(_build(), f"qmail-pkg: error: {settings}: {message}", env={"QMAIL_PKG_BUILDERS": str(settings)})


@pytest.mark.parametrize("path, message", [
    ("/dev/zero", "/dev/zero: not a regular file (a character device); the builders settings are a YAML file"),
    ("{tmp}/missing.yaml", "QMAIL_PKG_BUILDERS={tmp}/missing.yaml: no such file"),
])
def test_builders_settings_that_are_a_device_or_missing(cli, tmp_path, path, message):
    path = path.format(tmp=tmp_path)
    cli.refused(_build(), "qmail-pkg: error: " + message.format(tmp=tmp_path), env={"QMAIL_PKG_BUILDERS": path})


def test_the_default_settings_file_is_read_the_same_way(cli, tmp_path):
    config = tmp_path / "config" / "qmail-pkg"
    config.mkdir(parents=True)
    os.mkfifo(config / "builders.yaml")
    cli.refused(_build(), f"qmail-pkg: error: {config}/builders.yaml: not a regular file (a FIFO); the builders "
                "settings are a YAML file", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})


ENGINE_FLAGS = {
    "no-url": ("debian-12", "'debian-12': expected PATTERN=URL, such as 'el-*=ssh://builder@big-box'"),
    "http": ("debian-12=http://h", "'debian-12=http://h': expected unix:///PATH, ssh://[USER@]HOST[:PORT] or "
             "tcp://HOST[:PORT] (jail+ssh:// on --engine for a jail host)"),
    "tcp-without-tls": ("el-9=tcp://h:2376", "'el-9=tcp://h:2376': a tcp:// engine needs TLS, which only the builders "
                        "settings file can give (tls: cert and key)"),
    "ssh-option-injection": ("debian-12=ssh://-oProxyCommand=touch${IFS}pwned",
                             "'debian-12=ssh://-oProxyCommand=touch${IFS}pwned': expected ssh://[USER@]HOST[:PORT], with a host name or IPv4 address"),
    "jail-over-tcp": ("freebsd-14=jail+tcp://h:1", "'freebsd-14=jail+tcp://h:1': a jail host is reached over ssh://[USER@]HOST[:PORT]"),
    "newline-in-the-pattern": ("debian-12\nx=unix:///s", "'debian-12\\nx=unix:///s': 'debian-12\\nx' is not a pattern of "
                               "target names (letters, digits, . - / and * ? [ ] !)"),
}


@pytest.mark.parametrize("name", sorted(ENGINE_FLAGS))
def test_hostile_engine_flags_are_usage_errors(cli, name):
    flag, message = ENGINE_FLAGS[name]
    cli.refused(_build("--engine", flag),
                f"qmail-pkg build: error: argument --engine: {message} (see qmail-pkg build --help)", code=2)
    assert not (cli.work / "pwned").exists()


@pytest.mark.parametrize("target, flag, message", [
    ("freebsd-14 --native", "freebsd-*=ssh://b@h", "freebsd-14 builds in a jail, but the pattern 'freebsd-*' sends it to the "
     "docker engine ssh://b@h; name a FreeBSD jail host: --engine 'PATTERN=jail+ssh://HOST' or jail: in the builders settings"),
    ("debian-12", "*=jail+ssh://b@h", "debian-12 builds in Docker, but the pattern '*' sends it to the jail host "
     "ssh://b@h; name a Docker engine for it (unix://, ssh:// or tcp://), or a narrower pattern for the jail host"),
])
def test_an_engine_of_the_other_kind_is_refused_before_any_work(cli, target, flag, message):
    cli.refused(["build", str(RECIPE), "--target", *target.split(), "--out", "dist", "--engine", flag],
                f"qmail-pkg: error: {message}")


def test_legitimate_settings_a_symlinked_file_tls_and_a_jail_host(tmp_path, recipe):
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_text("PEM\n")
    real = tmp_path / "real.yaml"
    real.write_text("builders:\n"
                    "  - targets: [el-*]\n"
                    f"    docker: tcp://el-builder.example:2376\n"
                    f"    tls: {{cert: {tmp_path}/cert.pem, key: {tmp_path}/key.pem}}\n"
                    "  - targets: [freebsd-*]\n"
                    "    jail: ssh://builder@10.0.0.7:2222\n"
                    "  - targets: ['*/arm64', '2024-01-01']\n"
                    "    docker: unix:///run/other.sock\n")
    (tmp_path / "builders.yaml").symlink_to(real)
    engines = load_settings(tmp_path / "builders.yaml")
    assert [(e.pattern, e.kind) for e in engines] == [("el-*", "docker"), ("freebsd-*", "jail"), ("*/arm64", "docker"),
                                                      ("2024-01-01", "docker")]
    assert dict(engines[0].tls) == {"cert": f"{tmp_path}/cert.pem", "key": f"{tmp_path}/key.pem"}
    check_engines([recipe.target("el-9"), recipe.target("freebsd-14").with_method("native"), recipe.target("debian-12")],
                  engines)
    assert parse_flag("freebsd-*=jail+ssh://b@h") == Engine("freebsd-*", "ssh://b@h", "jail")


# == 3. environment values ===========================================================

SDE_RANGE = "must be a whole number from 0 to 4294967295 in ASCII digits"
BYTES_RANGE = "must be a whole number from 1 to 1099511627776 in ASCII digits"
MEMBERS_RANGE = "must be a whole number from 1 to 10000000 in ASCII digits"
INTEGERS = {
    "epoch-negative": ("SOURCE_DATE_EPOCH", "-1", f"SOURCE_DATE_EPOCH='-1': {SDE_RANGE}"),
    "epoch-empty": ("SOURCE_DATE_EPOCH", "", f"SOURCE_DATE_EPOCH='': {SDE_RANGE}"),
    "epoch-arabic-indic-digits": ("SOURCE_DATE_EPOCH", "١٠", f"SOURCE_DATE_EPOCH='١٠': {SDE_RANGE}"),
    "epoch-superscript-two": ("SOURCE_DATE_EPOCH", "²", f"SOURCE_DATE_EPOCH='²': {SDE_RANGE}"),
    "epoch-plus-sign": ("SOURCE_DATE_EPOCH", "+5", f"SOURCE_DATE_EPOCH='+5': {SDE_RANGE}"),
    "epoch-leading-space": ("SOURCE_DATE_EPOCH", " 5", f"SOURCE_DATE_EPOCH=' 5': {SDE_RANGE}"),
    "epoch-trailing-newline": ("SOURCE_DATE_EPOCH", "5\n", f"SOURCE_DATE_EPOCH='5\\n': {SDE_RANGE}"),
    "epoch-hexadecimal": ("SOURCE_DATE_EPOCH", "0x10", f"SOURCE_DATE_EPOCH='0x10': {SDE_RANGE}"),
    "epoch-exponent": ("SOURCE_DATE_EPOCH", "1e3", f"SOURCE_DATE_EPOCH='1e3': {SDE_RANGE}"),
    "epoch-underscore": ("SOURCE_DATE_EPOCH", "1_000", f"SOURCE_DATE_EPOCH='1_000': {SDE_RANGE}"),
    "epoch-beyond-rpm": ("SOURCE_DATE_EPOCH", "4294967296", f"SOURCE_DATE_EPOCH='4294967296': {SDE_RANGE}"),
    "epoch-5000-digits": ("SOURCE_DATE_EPOCH", "9" * 5000,
                          f"SOURCE_DATE_EPOCH='{'9' * 40}...' (5000 characters): {SDE_RANGE}"),
    "max-bytes-zero": ("QMAIL_PKG_EXTRACT_MAX_BYTES", "0", f"QMAIL_PKG_EXTRACT_MAX_BYTES='0': {BYTES_RANGE}"),
    "max-bytes-suffix": ("QMAIL_PKG_EXTRACT_MAX_BYTES", "512M", f"QMAIL_PKG_EXTRACT_MAX_BYTES='512M': {BYTES_RANGE}"),
    "max-bytes-empty": ("QMAIL_PKG_EXTRACT_MAX_BYTES", "", f"QMAIL_PKG_EXTRACT_MAX_BYTES='': {BYTES_RANGE}"),
    "max-members-fullwidth-digits": ("QMAIL_PKG_EXTRACT_MAX_MEMBERS", "１０",
                                     f"QMAIL_PKG_EXTRACT_MAX_MEMBERS='１０': {MEMBERS_RANGE}"),
    "max-members-too-many": ("QMAIL_PKG_EXTRACT_MAX_MEMBERS", "10000001",
                             f"QMAIL_PKG_EXTRACT_MAX_MEMBERS='10000001': {MEMBERS_RANGE}"),
}


@pytest.mark.parametrize("name", sorted(INTEGERS))
def test_hostile_integer_settings_stop_the_build_before_any_container(cli, name):
    variable, value, message = INTEGERS[name]
    cli.refused(_build(), f"qmail-pkg: error: {message}", env={variable: value})


@pytest.mark.parametrize("value, expected", [("0", 0), ("4294967295", 4294967295), ("1700000000", 1700000000),
                                             ("007", 7)])
def test_legitimate_source_date_epochs_are_read(value, expected):
    assert SOURCE_DATE_EPOCH.read({"SOURCE_DATE_EPOCH": value}) == expected
    assert SOURCE_DATE_EPOCH.read({}) is None


def _folder_cases(tmp: Path) -> dict:
    """name -> (variables, the message); `file` and `fifo` exist below tmp."""
    return {
        "cache-is-a-file": ({"QMAIL_PKG_CACHE": f"{tmp}/file"}, f"QMAIL_PKG_CACHE='{tmp}/file': not a folder (a regular file)"),
        "cache-is-a-fifo": ({"QMAIL_PKG_CACHE": f"{tmp}/fifo"}, f"QMAIL_PKG_CACHE='{tmp}/fifo': not a folder (a FIFO)"),
        "cache-below-a-file": ({"QMAIL_PKG_CACHE": f"{tmp}/file/builds"},
                               f"QMAIL_PKG_CACHE='{tmp}/file/builds': {tmp}/file is a regular file, so no folder can be made there"),
        "cache-with-a-newline": ({"QMAIL_PKG_CACHE": f"{tmp}/a\nb"},
                                 f"QMAIL_PKG_CACHE='{tmp}/a\\nb': a folder name cannot hold control characters or line breaks"),
        "sources-is-a-file": ({"QMAIL_PKG_SOURCES": f"{tmp}/file"}, f"QMAIL_PKG_SOURCES='{tmp}/file': not a folder (a regular file)"),
        "sources-with-an-escape": ({"QMAIL_PKG_SOURCES": f"{tmp}/\x1b[2J"},
                                   f"QMAIL_PKG_SOURCES='{tmp}/\\x1b[2J': a folder name cannot hold control characters or line breaks"),
        "xdg-cache-is-a-file": ({"XDG_CACHE_HOME": f"{tmp}/file"}, f"XDG_CACHE_HOME='{tmp}/file': not a folder (a regular file)"),
        "xdg-cache-holds-a-file-where-the-cache-goes": ({"XDG_CACHE_HOME": f"{tmp}/xdg"},
            f"the sources cache '{tmp}/xdg/qmail-pkg/sources' (from XDG_CACHE_HOME; or set QMAIL_PKG_SOURCES): "
            f"{tmp}/xdg/qmail-pkg is a regular file, so no folder can be made there"),
    }


@pytest.mark.parametrize("name", sorted(_folder_cases(Path("/"))))
def test_hostile_folder_settings_stop_the_build_before_it_starts(cli, tmp_path, name):
    (tmp_path / "file").write_text("not a folder\n")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "xdg").mkdir()
    (tmp_path / "xdg" / "qmail-pkg").write_text("not a folder\n")
    variables, message = _folder_cases(tmp_path)[name]
    cli.refused(_build(), f"qmail-pkg: error: {message}", env=variables)


@pytest.mark.parametrize("option, message", [
    (["--out", "{tmp}/file"], "--out '{tmp}/file': not a folder (a regular file)"),
    (["--sources", "{tmp}/fifo"], "--sources '{tmp}/fifo': not a folder (a FIFO)"),
])
def test_folders_on_the_command_line_are_checked_the_same_way(cli, tmp_path, option, message):
    (tmp_path / "file").write_text("not a folder\n")
    os.mkfifo(tmp_path / "fifo")
    args = ["build", str(RECIPE), "--target", "debian-12", *(part.format(tmp=tmp_path) for part in option)]
    if "--out" not in option:
        args += ["--out", "dist"]
    cli.refused(args, f"qmail-pkg: error: {message.format(tmp=tmp_path)}")


def test_piuparts_bases_and_machine_cache_are_checked_before_anything_starts(cli, tmp_path):
    (tmp_path / "file").write_text("not a folder\n")
    cli.refused(["piuparts", "x.deb", "--target", "debian-12"],
                f"qmail-pkg: error: QMAIL_PKG_PIUPARTS_BASES='{tmp_path}/file': not a folder (a regular file)",
                env={"QMAIL_PKG_PIUPARTS_BASES": f"{tmp_path}/file"})
    cli.refused(["verify", "x.deb", "--target", "debian-12", "--power-cut", "1"],
                f"qmail-pkg: error: QMAIL_PKG_VM_CACHE='{tmp_path}/file': not a folder (a regular file)",
                env={"QMAIL_PKG_VM_CACHE": f"{tmp_path}/file"})


def test_folder_values_no_environment_can_hold_are_refused_too(tmp_path):
    with pytest.raises(SettingError) as caught:
        cache_folder("builds", "QMAIL_PKG_CACHE", {"QMAIL_PKG_CACHE": f"{tmp_path}/a\0b"})
    assert str(caught.value) == (f"QMAIL_PKG_CACHE='{tmp_path}/a\\x00b': a folder name cannot hold control "
                                 "characters or line breaks")


def test_legitimate_folders_relative_and_not_yet_made(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder("builds", "QMAIL_PKG_CACHE", {"QMAIL_PKG_CACHE": ".cache/builds"}) == Path(".cache/builds")
    assert cache_folder("vm", "QMAIL_PKG_VM_CACHE", {"XDG_CACHE_HOME": str(tmp_path / "new")}) == tmp_path / "new/qmail-pkg/vm"
    # a relative XDG_CACHE_HOME is ignored, as the XDG specification says
    assert cache_folder("vm", "QMAIL_PKG_VM_CACHE", {"XDG_CACHE_HOME": "rel"}) == tmp_path / "home/.cache/qmail-pkg/vm"
    assert folder_path(str(tmp_path), "x") == tmp_path
    assert list(tmp_path.iterdir()) == []  # checking made nothing


# == 4. --arch ======================================================================

ARCH_CASES = {
    "all-then-bogus": (["--arch", "all", "--arch", "bogus"], "debian-12 is not built for bogus (its architectures: amd64, arm64)"),
    "bogus-then-all": (["--arch", "bogus", "--arch", "all"], "debian-12 is not built for bogus (its architectures: amd64, arm64)"),
    "empty": (["--arch", ""], "debian-12 is not built for  (its architectures: amd64, arm64)"),
    "newline": (["--arch", "arm64\nx"], "debian-12 is not built for arm64\\nx (its architectures: amd64, arm64)"),
    "escape-sequence": (["--arch", "\x1b[31mamd64"], "debian-12 is not built for \\x1b[31mamd64 (its architectures: amd64, arm64)"),
    "all-with-an-architecture-a-target-lacks": (["--arch", "all", "--arch", "riscv64"],
                                                "debian-12 is not built for riscv64 (its architectures: amd64, arm64)"),
}


@pytest.mark.parametrize("name", sorted(ARCH_CASES))
def test_every_arch_is_checked_even_beside_all(cli, name):
    extra, message = ARCH_CASES[name]
    cli.refused(_build(*extra), f"qmail-pkg: error: {message}")


def test_legitimate_arch_lists(recipe):
    debian = recipe.target("debian-12")
    assert sorted(b.architecture for b in commands._builds([debian], ["all", "arm64"])) == ["amd64", "arm64"]
    assert [b.architecture for b in commands._builds([debian], ["amd64", "amd64"])] == ["amd64"]  # built once, not twice


# == 5. account paths that reach useradd / pw ==========================================

ACCOUNT_CASES = {
    "home-with-a-colon": ("home: /var/qmail/alias}", 'home: "/var/qmail:/alias"}', "accounts.users[0].home",
                          "must not contain ':', which separates the fields of /etc/passwd"),
    "shell-with-a-colon": ("home: /var/qmail/alias}", 'home: /var/qmail/alias, shell: "/bin/sh:0:0"}',
                           "accounts.users[0].shell", "must not contain ':', which separates the fields of /etc/passwd"),
    "home-with-a-newline": ("home: /var/qmail/alias}", 'home: "/var/qmail/alias\\nroot::0:0::/:/bin/sh"}',
                            "accounts.users[0].home", "must be one line without control characters (found '\\n' at offset 16)"),
    "shell-with-a-next-line": ("home: /var/qmail/alias}", 'home: /var/qmail/alias, shell: "/bin/sh\\N"}',
                               "accounts.users[0].shell", "must be one line without control characters (found '\\x85' at offset 7)"),
    "home-with-a-line-separator": ("home: /var/qmail/alias}", 'home: "/var/qmail\\Lx"}', "accounts.users[0].home",
                                   "must be one line without control characters (found '\\u2028' at offset 10)"),
    "home-with-an-escape": ("home: /var/qmail/alias}", 'home: "/var/\\e[2Jqmail"}', "accounts.users[0].home",
                            "must be one line without control characters (found '\\x1b' at offset 5)"),
}


@pytest.mark.parametrize("name", sorted(ACCOUNT_CASES))
def test_account_paths_that_would_break_passwd_are_refused_by_validate(cli, name):
    old, new, field, message = ACCOUNT_CASES[name]
    text = REAL.replace(old, new, 1)
    path = cli.work / "accounts.yaml"
    path.write_text(text)
    with_patches(cli.work)
    start = text.index(new)
    value = start + len(new.split(": ", 1)[0]) + 2 if field.endswith("home") else start + new.index("shell: ") + 7
    line = text[:value].count("\n") + 1
    column = value - text.rfind("\n", 0, value)
    cli.refused(["validate", str(path)], f"{path}:{line}:{column}: {field}: {message}")


def test_legitimate_account_paths_are_accepted(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(REAL.replace("home: /var/qmail/alias}", 'home: "/var/qmail/alias dir", shell: /bin/false}', 1))
    with_patches(tmp_path)
    assert load_recipe(path).targets[0].accounts.users[0].home == "/var/qmail/alias dir"


# == 6. messages that quote hostile names ==============================================

def _tarball(path: Path, name: str, linkname: str = "") -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        if linkname:
            info.type, info.linkname = tarfile.SYMTYPE, linkname
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    path.write_bytes(raw.getvalue())
    return path


MEMBERS = {
    "escape-sequence": ("pkg/\x1b]0;owned\x07a", "", "member 'pkg/\\x1b]0;owned\\x07a': control character in the name refused"),
    "newline": ("pkg/a\nqmail-pkg: ok", "", "member 'pkg/a\\nqmail-pkg: ok': control character in the name refused"),
    "c1-control-in-a-link-target": ("pkg/l", "/\x9b2J", "member 'pkg/l': symlink to '/\\x9b2J' leaves the tree"),
    "line-separator-in-a-link-target": ("pkg/l", "../../\u2028x", "member 'pkg/l': symlink to '../../\\u2028x' leaves the tree"),
    "bidi-override-in-a-link-target": ("pkg/l", "/etc/\u202epasswd", "member 'pkg/l': symlink to '/etc/\\u202epasswd' leaves the tree"),
}


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_hostile_member_names_are_quoted_escaped(cli, tmp_path, name):
    member, linkname, message = MEMBERS[name]
    archive = _tarball(tmp_path / "q.tar", member, linkname)
    result = cli.refused(_build("--json", "--source", f"qmail={archive}", "--source", f"syncdir={archive}"),
                         f"qmail-pkg: error: {archive}: {message}", written={"work/dist", "work/dist/logs",
                                                                             "work/dist/logs/debian-12.log"})
    assert "\x1b" not in result.stderr and "\x9b" not in result.stderr


@pytest.mark.parametrize("text, shown", [
    ("plain café", "plain café"), ("a\nb", "a\\nb"), ("\x1b[2J", "\\x1b[2J"), ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),
    ("\u2028\u2029", "\\u2028\\u2029"), ("\u202e\u2066", "\\u202e\\u2066"), ("\udcff", "\\udcff"), ("tab\t", "tab\\t"),
])
def test_printable_escapes_what_could_break_a_line_or_the_terminal(text, shown):
    assert printable(text) == shown
    assert printable(printable(text)) == printable(text)  # escaping twice changes nothing more


def test_main_prints_any_error_on_one_line(monkeypatch, capsys):
    def hostile(args):
        raise QmailPkgError("bad\nqmail-pkg: all is well\x1b[2J")

    monkeypatch.setattr(commands, "schema", hostile)
    assert command_line.main(["schema"]) == 1
    assert capsys.readouterr().err == "qmail-pkg: error: bad\\nqmail-pkg: all is well\\x1b[2J\n"
