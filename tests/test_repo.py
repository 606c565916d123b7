"""Signed repositories, used as their users use them: apt in a fresh container
with networking off and only the exported key (file: and http:), tampering
refused, v1 then v2 upgraded with the svc-aware scripts; dnf with gpgcheck
and repo_gpgcheck; the FreeBSD catalogue read back and its signature checked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from builder.environment import prepare_environment
from builder.formats.pkgfile import file_sum
from builder.recipe.loader import load_recipe
from builder.repo.base import PublishError
from builder.repo.freebsd import newest_of_each
from builder.repo.gpg import Signer, SigningError
from builder.repo.publish import publish as publish_into
from builder.sandbox.docker import DockerSandbox

from .conftest import TARGET, artifact_of

SERVE = """#!/bin/sh
# A static HTTP/1.0 server for tcpserver: enough for apt to fetch a repository.
IFS=' ' read -r method path version
while IFS= read -r header; do [ "$(printf '%s' "$header" | tr -d '\\r')" = "" ] && break; done
file="/srv/repo$(printf '%s' "$path" | sed 's/[?#].*//; s/%3[Aa]/:/g; s/%2[Bb]/+/g; s/%7[Ee]/~/g; s/%25/%/g')"
case $file in *..*) file=/nonexistent ;; esac
if [ -f "$file" ]; then
    printf 'HTTP/1.0 200 OK\\r\\nContent-Length: %s\\r\\nConnection: close\\r\\n\\r\\n' "$(wc -c <"$file")"
    [ "$method" = HEAD ] || cat "$file"
else
    printf 'HTTP/1.0 404 Not Found\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n'
fi
"""


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
                    "qmail-pkg test <test@qmail-pkg.invalid>", "rsa3072", "sign", "1d"], env=env, check=True,
                   capture_output=True)
    listing = subprocess.run(["gpg", "--list-secret-keys", "--with-colons"], env=env, capture_output=True,
                             text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    secret = home / "secret.asc"
    subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys", fingerprint], env=env, check=True,
                   stdout=secret.open("wb"))
    pkg_key = home / "pkg.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(pkg_key), "2048"], check=True, capture_output=True)
    return {"home": home, "fingerprint": fingerprint, "secret_file": secret, "pkg_key": pkg_key}


def publish(artifacts: Path, repo: Path, **options):
    """A publish of miniature builds (their records name the miniature recipe)."""
    recipe = next(artifacts.glob("*/*.build.json")).read_text()
    recipe_path = json.loads(recipe)["recipe"]["path"]
    return publish_into(artifacts, repo, recipe=load_recipe(Path(recipe_path)), **options)


def artifacts_dir(tmp_path: Path, *results) -> Path:
    folder = tmp_path / "artifacts"
    for result in results:
        target = folder / result.record_path.parent.name
        target.mkdir(parents=True, exist_ok=True)
        for path in [result.record_path, *(a.path for a in result.artifacts)]:
            shutil.copy(path, target / path.name)
    return folder


def apt_box(recipe) -> DockerSandbox:
    environment = prepare_environment(recipe.target(TARGET), "verify")  # bootstrapped when missing
    return DockerSandbox(environment.reference, role="verify",
                         command=["sh", "-c", "mkdir -p /service && exec svscan /service"])


def put_repo(box, repo: Path) -> None:
    box.put_tree(repo, "/srv/repo")


def apt(box, command: str) -> tuple[int, str]:
    return box.output(["sh", "-c", f"DEBIAN_FRONTEND=noninteractive {command} 2>&1"])


def _setup_client(box, uri: str) -> None:
    code, out = box.output(["sh", "-c", f"""
cp /srv/repo/qmail-pkg-archive-keyring.gpg /usr/share/keyrings/
sed 's#^URIs: .*#URIs: {uri}#' /srv/repo/apt-sources/bookworm.sources > /etc/apt/sources.list.d/qmail-pkg.sources
rm -f /etc/apt/sources.list; cat /etc/apt/sources.list.d/qmail-pkg.sources"""])
    assert code == 0 and "Signed-By: /usr/share/keyrings/qmail-pkg-archive-keyring.gpg" in out, out
    assert "trusted" not in out


def test_apt_installs_from_the_signed_repository_and_refuses_tampering(built, recipe, gnupg, tmp_path):
    repo = tmp_path / "repo"
    report = publish(artifacts_dir(tmp_path, built), repo, key=str(gnupg["secret_file"]))
    assert report.added == ["pool/main/q/qmail-syncdir/qmail-syncdir_1.03-1+deb12_amd64.deb"]
    release = (repo / "dists/bookworm/Release").read_text()
    assert "Acquire-By-Hash: yes" in release and "Codename: bookworm" in release and "SHA256:" in release
    assert (repo / "dists/bookworm/InRelease").read_text().startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    with apt_box(recipe) as box:
        put_repo(box, repo)
        _setup_client(box, "file:/srv/repo")
        code, out = apt(box, "apt-get update")
        assert code == 0 and "NO_PUBKEY" not in out and "not signed" not in out, out
        code, out = apt(box, "apt-get install -y qmail-syncdir")
        assert code == 0 and "WARNING: The following packages cannot be authenticated" not in out, out
        code, version = box.output(["dpkg-query", "-W", "-f", "${Version}", "qmail-syncdir"])
        assert version == "1.03-1+deb12"
        # one byte of the index changed: the signature no longer covers it
        # (every copy apt might fetch: the plain, gz and xz index, and their by-hash names)
        box.output(["sh", "-c", "cp -r /srv/repo /srv/bad && cd /srv/bad/dists/bookworm/main/binary-amd64 "
                                "&& sed -i 's/^Priority: optional/Priority: optionaL/' Packages "
                                "&& for f in Packages.gz Packages.xz by-hash/SHA256/*; do "
                                "printf X | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null; done && "
                                "rm -rf /var/lib/apt/lists/* && "
                                "sed -i 's#file:/srv/repo#file:/srv/bad#' /etc/apt/sources.list.d/qmail-pkg.sources"])
        code, out = apt(box, "apt-get update")
        assert "Hash Sum mismatch" in out or "unexpected size" in out, out
        # one byte of the package changed: apt refuses to install it
        box.output(["sh", "-c", "rm -rf /srv/bad && cp -r /srv/repo /srv/bad && "
                                "deb=$(find /srv/bad/pool -name '*.deb') && "
                                "printf 'X' | dd of=$deb bs=1 seek=2000 conv=notrunc 2>/dev/null && "
                                "rm -rf /var/lib/apt/lists/* && apt-get update >/dev/null 2>&1; apt-get clean"])
        code, out = apt(box, "apt-get install -y --reinstall qmail-syncdir")
        assert code != 0 and ("Hash Sum mismatch" in out or "size mismatch" in out.lower()), out


def test_apt_over_http_and_an_upgrade_from_v1_to_v2(built, built_next, recipe, gnupg, tmp_path):
    repo = tmp_path / "repo"
    publish(artifacts_dir(tmp_path / "one", built), repo, key=str(gnupg["secret_file"]))
    with apt_box(recipe) as box:
        put_repo(box, repo)
        box.put_file(SERVE.encode(), "/srv/http.sh", 0o755)
        code, out = box.output(["sh", "-c",
                                "mkdir -p /service/http/ && "
                                "printf '#!/bin/sh\\nexec tcpserver -RHl0 127.0.0.1 8080 sh /srv/http.sh\\n' "
                                "> /service/http/run && chmod 755 /service/http/run"])
        time.sleep(6)
        _setup_client(box, "http://127.0.0.1:8080/")
        code, out = apt(box, "apt-get update")
        assert code == 0 and ("Get" in out or "Hit" in out), out
        code, out = apt(box, "apt-get install -y qmail-syncdir")
        assert code == 0, out
        deadline = time.monotonic() + 30
        while ": up" not in box.output(["svstat", "/service/qmail-send"])[1]:
            assert time.monotonic() < deadline
            time.sleep(1)
        # v2 published into the same tree: the update over HTTP offers it, the scripts stop and start qmail-send
        publish(artifacts_dir(tmp_path / "two", built_next), repo, key=str(gnupg["secret_file"]))
        box.output(["rm", "-rf", "/srv/repo"])
        put_repo(box, repo)
        code, out = apt(box, "apt-get update && apt-get upgrade -y")
        assert code == 0 and "qmail-syncdir" in out, out
        assert "stopped qmail-send" in out and "started qmail-send again" in out, out
        code, version = box.output(["dpkg-query", "-W", "-f", "${Version}", "qmail-syncdir"])
        assert version == "1.03-2+deb12"
        code, listing = box.output(["sh", "-c", "ls /srv/repo/pool/main/q/qmail-syncdir"])
        assert listing.split() == ["qmail-syncdir_1.03-1+deb12_amd64.deb", "qmail-syncdir_1.03-2+deb12_amd64.deb"]


def test_same_version_with_other_content_is_refused_same_bytes_change_nothing(built, built_rpm, gnupg, tmp_path,
                                                                              miniature, recipe, monkeypatch):
    from builder.pipeline import BuildOptions, build_target

    repo = tmp_path / "repo"
    first = artifacts_dir(tmp_path / "a", built)
    publish(first, repo, key=str(gnupg["secret_file"]))
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and "by-hash" not in p.parts}
    again = publish(first, repo, key=str(gnupg["secret_file"]))
    assert again.added == [] and again.unchanged == ["pool/main/q/qmail-syncdir/qmail-syncdir_1.03-1+deb12_amd64.deb"]
    # another build of the same version: other file times, so other bytes
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    rebuilt = build_target(recipe, recipe.target(TARGET), BuildOptions(out_dir=tmp_path / "b-out", revision=1,
                                                                       sources_dir=miniature[1], quiet=True))
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    other = artifacts_dir(tmp_path / "b", rebuilt)
    assert next(other.glob("*/*.deb")).read_bytes() != next(first.glob("*/*.deb")).read_bytes()
    record = next(other.glob("*/*.build.json"))
    with pytest.raises(PublishError, match="published already with other content.*new --revision"):
        publish(other, repo, key=str(gnupg["secret_file"]))
    pool = repo / "pool/main/q/qmail-syncdir/qmail-syncdir_1.03-1+deb12_amd64.deb"
    assert pool.read_bytes() == before[pool]
    assert record.exists()


def test_keys_missing_expired_or_absent_are_clear_errors(gnupg, tmp_path, built, monkeypatch):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    with pytest.raises(SigningError, match="signing key 'NOSUCHKEY': no secret key in the keyring"):
        Signer("NOSUCHKEY")
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--faked-system-time", "20200101T000000",
                    "--quick-gen-key", "old <old@qmail-pkg.invalid>", "rsa2048", "sign", "1d"], env=env, check=True,
                   capture_output=True)
    with pytest.raises(SigningError, match="expired"):
        Signer("old@qmail-pkg.invalid")
    with pytest.raises(PublishError, match="--key is required"):
        publish(artifacts_dir(tmp_path, built), tmp_path / "repo", key=None)


def test_dnf_reads_the_signed_rpm_repository(built_rpm, gnupg, tmp_path):
    repo = tmp_path / "repo"
    publish(artifacts_dir(tmp_path, built_rpm), repo, key=str(gnupg["secret_file"]))
    assert (repo / "rpm/el-9/repodata/repomd.xml.asc").exists()
    snippet = (repo / "rpm-el-9.repo").read_text()
    assert "gpgcheck=1" in snippet and "repo_gpgcheck=1" in snippet and "baseurl=file://" in snippet
    config = tmp_path / "dnf"
    (config / "repos").mkdir(parents=True)
    (config / "repos" / "q.repo").write_text(snippet)
    (config / "dnf.conf").write_text("[main]\ngpgcheck=1\nrepo_gpgcheck=1\ninstallonly_limit=3\n")
    root = tmp_path / "root"
    base = ["dnf", "-y", "-q", "--config", str(config / "dnf.conf"), "--setopt", f"reposdir={config / 'repos'}",
            "--installroot", str(root), "--releasever", "9", "--disablerepo", "*", "--enablerepo", "qmail-pkg-*"]
    listing = subprocess.run(base + ["repoquery", "--qf", "%{name} %{version}-%{release}"], capture_output=True,
                             text=True, timeout=300)
    assert listing.returncode == 0 and "qmail-syncdir 1.03-1.el9" in listing.stdout, listing.stdout + listing.stderr
    download = subprocess.run(base + ["download", "--destdir", str(tmp_path / "got"), "qmail-syncdir"],
                              capture_output=True, text=True, timeout=300)
    assert download.returncode == 0, download.stdout + download.stderr
    (got,) = (tmp_path / "got").glob("*.rpm")
    db = tmp_path / "rpmdb"
    subprocess.run(["rpm", "--dbpath", str(db), "--import", str(repo / "qmail-pkg-archive-keyring.asc")], check=True)
    check = subprocess.run(["rpm", "--dbpath", str(db), "-K", str(got)], capture_output=True, text=True)
    assert check.returncode == 0 and "signatures OK" in check.stdout, check.stdout + check.stderr
    unsigned = subprocess.run(["rpm", "--dbpath", str(db), "-K", str(artifact_of(built_rpm, "rpm"))],
                              capture_output=True, text=True)
    assert "signatures OK" not in unsigned.stdout  # the check can fail: the build's own rpm is not signed
    # a tampered repomd.xml no longer matches its signature: dnf refuses the repository
    repomd = repo / "rpm/el-9/repodata/repomd.xml"
    repomd.write_text(repomd.read_text().replace("<revision>", "<revision>1"))
    shutil.rmtree(root)
    refused = subprocess.run(base + ["repoquery"], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0, refused.stdout + refused.stderr


def test_the_freebsd_catalogue_holds_the_newest_version_of_each_name():
    entries = [{"name": "qmail-syncdir", "version": v} for v in ("1.03_9", "1.03_10", "1.03_2")]
    entries.append({"name": "other", "version": "1.0"})
    assert newest_of_each(entries) == [{"name": "other", "version": "1.0"},
                                       {"name": "qmail-syncdir", "version": "1.03_10"}]


def _catalogue_versions(area: Path) -> list[str]:
    with tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader((area / "packagesite.pkg").open("rb")),
                      mode="r|") as tar:
        contents = {m.name: tar.extractfile(m).read() for m in tar}
    return [json.loads(line)["version"] for line in contents["packagesite.yaml"].decode().splitlines()]


def test_a_second_publish_lists_only_the_newer_freebsd_package(built_pkg, built_for, gnupg, tmp_path):
    """pkg(8) (2.8, built on Linux) upgraded to 1.03_2 from a catalogue that
    held both, but `pkg version -vR` then called 1.03_1 up to date."""
    repo = tmp_path / "repo"
    publish(artifacts_dir(tmp_path / "r1", built_pkg), repo, key=None, pkg_key=gnupg["pkg_key"])
    publish(artifacts_dir(tmp_path / "r2", built_for("freebsd-14", 2)), repo, key=None, pkg_key=gnupg["pkg_key"])
    area = repo / "freebsd/FreeBSD:14:amd64"
    assert sorted(p.name for p in (area / "All").iterdir()) == ["qmail-syncdir-1.03_1.freebsd14.amd64.pkg",
                                                                 "qmail-syncdir-1.03_2.freebsd14.amd64.pkg"]
    assert _catalogue_versions(area) == ["1.03_2"]


def test_freebsd_catalogue_lists_the_package_signed(built_pkg, gnupg, tmp_path):
    repo = tmp_path / "repo"
    publish(artifacts_dir(tmp_path, built_pkg), repo, key=None, pkg_key=gnupg["pkg_key"])
    area = repo / "freebsd/FreeBSD:14:amd64"
    package = area / "All/qmail-syncdir-1.03_1.freebsd14.amd64.pkg"
    assert (area / "meta.conf").read_text().startswith("version = 2;\npacking_format = \"tzst\";")
    public = repo / "qmail-pkg-freebsd.pub"
    for archive, member in (("packagesite.pkg", "packagesite.yaml"), ("data.pkg", "data")):
        with tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader((area / archive).open("rb")),
                          mode="r|") as tar:
            contents = {m.name: tar.extractfile(m).read() for m in tar}
        assert list(contents) == ["signature", member]
        signature = tmp_path / "signature"
        signature.write_bytes(contents["signature"][:-1])  # pkg appends a NUL
        digest = hashlib.sha256(contents[member]).hexdigest().encode()
        verified = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(signature)],
                                  input=digest, capture_output=True)
        assert verified.returncode == 0, verified.stderr
        if member == "packagesite.yaml":
            (entry,) = [json.loads(line) for line in contents[member].decode().splitlines()]
        else:
            (entry,) = json.loads(contents[member])["packages"]
        assert (entry["name"], entry["version"], entry["path"]) == ("qmail-syncdir", "1.03_1",
                                                                    "All/qmail-syncdir-1.03_1.freebsd14.amd64.pkg")
        assert entry["sum"] == file_sum(package.read_bytes()) and entry["pkgsize"] == package.stat().st_size
        # tampered: the signature does not cover it (the last digit changed, whatever it was)
        other = digest[:-1] + (b"1" if digest.endswith(b"0") else b"0")
        tampered = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(public), "-signature", str(signature)],
                                  input=other, capture_output=True)
        assert tampered.returncode != 0


def test_prune_keeps_the_newest_versions(built, built_next, gnupg, tmp_path):
    repo = tmp_path / "repo"
    publish(artifacts_dir(tmp_path / "one", built), repo, key=str(gnupg["secret_file"]))
    publish(artifacts_dir(tmp_path / "two", built_next), repo, key=str(gnupg["secret_file"]))
    packages = (repo / "dists/bookworm/main/binary-amd64/Packages").read_text()
    assert "Version: 1.03-1+deb12" in packages and "Version: 1.03-2+deb12" in packages  # old versions stay
    report = publish(artifacts_dir(tmp_path / "three", built_next), repo, key=str(gnupg["secret_file"]), prune=1)
    assert report.pruned == ["pool/main/q/qmail-syncdir/qmail-syncdir_1.03-1+deb12_amd64.deb"]
    packages = (repo / "dists/bookworm/main/binary-amd64/Packages").read_text()
    assert "Version: 1.03-1+deb12" not in packages and "Version: 1.03-2+deb12" in packages
    assert sorted(p.name for p in (repo / "pool/main/q/qmail-syncdir").iterdir()) == [
        "qmail-syncdir_1.03-2+deb12_amd64.deb"]
