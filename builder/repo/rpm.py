"""RPM repositories: rpm/<target>/ for each RHEL-family target, packages
signed with `rpmsign --addsign`, metadata by createrepo_c, repomd.xml
signed (repomd.xml.asc), a .repo snippet for users.

Signing changes an rpm's bytes but not its header or payload: a published
rpm is known by its header SHA256 and payload digest, so the same build
published twice is recognised, and another build of the same version is
refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import Published, PublishError, PublishReport, State, newest
from .gpg import PASSPHRASE_ENV


def rpm_identity(path: Path) -> str:
    result = subprocess.run(["rpm", "-qp", "--nosignature", "--qf", "%{SHA256HEADER}:%{PAYLOADDIGEST}", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise PublishError(f"{path}: rpm cannot read it: {result.stderr.strip()[-200:]}")
    return result.stdout.strip()


class RpmRepository:
    def __init__(self, repo: Path, state: State, signer, *, test: bool = False, base_url: str = "", **_):
        for tool in ("rpm", "rpmsign", "createrepo_c"):
            if not shutil.which(tool):
                raise PublishError(f"publishing an rpm repository needs {tool} (apt-get install rpm createrepo-c)")
        self.repo = repo
        self.state = state
        self.signer = signer
        self.test = test
        self.base_url = base_url or repo.resolve().as_uri()

    def publish(self, artifacts: list[Published], prune: int | None, report: PublishReport) -> None:
        areas: set[str] = set()
        for artifact in artifacts:
            area = f"rpm/{artifact.target}"
            where = f"{area}/{artifact.path.name}"
            identity = rpm_identity(artifact.path)
            if self.state.check(where, identity):
                report.unchanged.append(where)
            else:
                self._sign_into(artifact.path, self.repo / where)
                self.state.record(where, identity)
                report.added.append(where)
            areas.add(area)
        if prune:
            for area in sorted(areas):
                members = [k for k in self.state.files if k.startswith(f"{area}/") and k.endswith(".rpm")]
                _, dropped = newest(members, prune, lambda key: key.rsplit("/", 1)[-1])
                for where in dropped:
                    (self.repo / where).unlink(missing_ok=True)
                    self.state.forget(where)
                    report.pruned.append(where)
        for area in sorted(areas):
            self._index(area, report)
        self.signer.export_public(self.repo / "qmail-pkg-archive-keyring.asc", armor=True)

    def _sign_into(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp.rpm")
        shutil.copyfile(source, temporary)
        home = self.signer.gnupg_home
        # Debian's rpm looks for gpg2; name the gpg that is here
        macros = [f"__gpg {shutil.which('gpg')}", f"_gpg_name {self.signer.fingerprint}", "_gpg_digest_algo sha256"]
        if home:
            macros.append(f"_gpg_path {home}")
        if os.environ.get(PASSPHRASE_ENV) is not None:
            # rpmsign hands gpg the passphrase from a file descriptor it reads itself
            fd, secret = tempfile.mkstemp(prefix="qmail-pkg-pass-")
            os.write(fd, os.environ[PASSPHRASE_ENV].encode())
            os.close(fd)
            macros.append(f"_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file {secret}")
        else:
            secret = None
        argv = ["rpmsign", "--addsign"]
        for macro in macros:
            argv += ["--define", macro]
        try:
            result = subprocess.run(argv + [str(temporary)], capture_output=True, text=True, env=self.signer.env,
                                    stdin=subprocess.DEVNULL)
        finally:
            if secret:
                os.unlink(secret)
        if result.returncode != 0:
            temporary.unlink(missing_ok=True)
            raise PublishError(f"rpmsign could not sign {source.name}: {(result.stderr or result.stdout).strip()[-300:]}")
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)

    def _index(self, area: str, report: PublishReport) -> None:
        folder = self.repo / area
        staging = self.repo / ".qmail-pkg" / f"{area.replace('/', '-')}.new"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        result = subprocess.run(["createrepo_c", "--quiet", "--outputdir", str(staging), str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise PublishError(f"createrepo_c {area} failed: {(result.stderr or result.stdout).strip()[-300:]}")
        new = staging / "repodata"
        self.signer.detach_sign(new / "repomd.xml", new / "repomd.xml.asc", armor=True)
        # the signed metadata replaces the old in two renames: never one without its signature
        live, old = folder / "repodata", staging / "repodata.old"
        if live.exists():
            os.rename(live, old)
        os.rename(new, live)
        shutil.rmtree(staging, ignore_errors=True)
        name = area.replace("/", "-")
        label = " (TEST packages, not for real systems)" if self.test else ""
        snippet = (f"[qmail-pkg-{name}]\nname=qmail-syncdir {area}{label}\nbaseurl={self.base_url}/{area}\n"
                   "enabled=1\ngpgcheck=1\nrepo_gpgcheck=1\n"
                   f"gpgkey={self.base_url}/qmail-pkg-archive-keyring.asc\n")
        (self.repo / f"{name}.repo").write_text(snippet)
        report.indexes.append(f"{area}/repodata")
