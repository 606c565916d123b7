"""Sources: cache lookup, download, checksum and size refusals, safe extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from builder.archive import copy_folder, extract_tarball, single_top
from builder.errors import SourceError
from builder.recipe.model import Source
from builder.sources import fetch, prepare


def safe_extract(archive: Path, dest: Path) -> Path:
    extract_tarball(archive, dest)
    return single_top(dest)


def make_tarball(path: Path, members: dict[str, bytes], top: str = "pkg-1.0") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def pinned(path: Path, **changes) -> Source:
    data = path.read_bytes()
    values = dict(
        name="pkg",
        filename=path.name,
        urls=(path.as_uri(),),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        sha512=hashlib.sha512(data).hexdigest(),
    )
    values.update(changes)
    return Source(**values)


def test_cached_file_is_verified_and_used(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = make_tarball(cache / "pkg-1.0.tar.gz", {"a.c": b"int a;\n"})
    source = pinned(tarball, urls=("http://127.0.0.1:9/never-contacted",))
    path, origin = fetch(source, cache)
    assert path == tarball and origin == str(tarball)


def test_download_from_url_into_cache(tmp_path):
    upstream = make_tarball(tmp_path / "pkg-1.0.tar.gz", {"a.c": b"int a;\n"})
    cache = tmp_path / "cache"
    path, origin = fetch(pinned(upstream), cache)
    assert path == cache / "pkg-1.0.tar.gz" and path.read_bytes() == upstream.read_bytes()
    assert origin == upstream.as_uri()


def test_checksum_mismatch_prints_both_digests(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = make_tarball(cache / "pkg-1.0.tar.gz", {"a.c": b"int a;\n"})
    wrong = "0" * 64
    with pytest.raises(SourceError) as caught:
        fetch(pinned(tarball, sha256=wrong), cache)
    message = str(caught.value)
    assert "sha256 mismatch" in message and wrong in message
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() in message


def test_every_checksum_is_checked_not_just_the_first(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = make_tarball(cache / "pkg-1.0.tar.gz", {"a.c": b"x"})
    with pytest.raises(SourceError, match="sha512 mismatch"):
        fetch(pinned(tarball, sha512="f" * 128), cache)


def test_size_mismatch(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = make_tarball(cache / "pkg-1.0.tar.gz", {"a.c": b"x"})
    with pytest.raises(SourceError, match="size mismatch.*expected 5 bytes"):
        fetch(pinned(tarball, size=5), cache)


def test_bad_download_does_not_poison_the_cache(tmp_path):
    upstream = make_tarball(tmp_path / "pkg-1.0.tar.gz", {"a.c": b"x"})
    cache = tmp_path / "cache"
    with pytest.raises(SourceError):
        fetch(pinned(upstream, sha256="1" * 64), cache)
    assert not (cache / "pkg-1.0.tar.gz").exists()
    assert list(cache.iterdir()) == []


def test_unreachable_names_file_urls_and_where_to_put_it(tmp_path):
    source = Source("qmail", "qmail-1.03.tar.gz", ("http://127.0.0.1:9/qmail-1.03.tar.gz",), 1, "a" * 64)
    with pytest.raises(SourceError) as caught:
        fetch(source, tmp_path / "cache")
    message = str(caught.value)
    assert "qmail-1.03.tar.gz" in message
    assert "http://127.0.0.1:9/qmail-1.03.tar.gz" in message
    assert str(tmp_path / "cache" / "qmail-1.03.tar.gz") in message


def _evil_tar(path: Path, build) -> Path:
    with tarfile.open(path, "w") as tar:
        build(tar)
    return path


def _add(tar, name, data=b"x", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


@pytest.mark.parametrize(
    "build, reason",
    [
        (lambda t: _add(t, "/etc/passwd"), "absolute path"),
        (lambda t: _add(t, "pkg/../../escape"), "'..'"),
        (lambda t: _add(t, "pkg/link", b"", type=tarfile.SYMTYPE, linkname="../../etc"), "leaves the tree"),
        (lambda t: _add(t, "pkg/abs", b"", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "leaves the tree"),
        (lambda t: _add(t, "pkg/hard", b"", type=tarfile.LNKTYPE, linkname="../outside"), "'..' in path"),
        (lambda t: _add(t, "pkg/dev", b"", type=tarfile.CHRTYPE), "special file"),
        (lambda t: _add(t, "pkg/fifo", b"", type=tarfile.FIFOTYPE), "special file"),
    ],
)
def test_extraction_refuses_members_leaving_the_tree(tmp_path, build, reason):
    archive = _evil_tar(tmp_path / "evil.tar", build)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(SourceError, match=reason):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "escape").exists()


def test_extraction_allows_links_inside_and_returns_top_dir(tmp_path):
    def build(tar):
        _add(tar, "pkg-1.0/a.c", b"int a;\n", mode=0o4755)
        _add(tar, "pkg-1.0/sub/link", b"", type=tarfile.SYMTYPE, linkname="../a.c")

    archive = _evil_tar(tmp_path / "ok.tar", build)
    dest = tmp_path / "out"
    dest.mkdir()
    top = safe_extract(archive, dest)
    assert top == dest / "pkg-1.0"
    assert (top / "sub" / "link").read_bytes() == b"int a;\n"
    assert (top / "a.c").stat().st_mode & 0o7777 == 0o755  # setuid from an archive is dropped


def test_override_directory_is_marked_and_hashed(tmp_path):
    tree = tmp_path / "mine"
    tree.mkdir()
    (tree / "a.c").write_text("int a;\n")
    source = Source("pkg", "pkg-1.0.tar.gz", ("http://127.0.0.1:9/x",), 1, "a" * 64)
    prepared = prepare(source, tmp_path / "cache", tmp_path / "work", override=tree)
    assert prepared.overridden and prepared.origin == str(tree)
    assert prepared.sha256 == copy_folder(tree, tmp_path / "again")
    assert (prepared.tree / "a.c").read_text() == "int a;\n"


def test_override_missing_path(tmp_path):
    source = Source("pkg", "pkg-1.0.tar.gz", ("http://127.0.0.1:9/x",), 1, "a" * 64)
    with pytest.raises(SourceError, match="No such file"):
        prepare(source, tmp_path / "cache", tmp_path / "work", override=tmp_path / "nope")
