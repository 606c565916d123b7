"""RPM repositories: rpm/<target>/ for each RHEL-family target, packages
signed with `rpmsign --addsign`, metadata by createrepo_c, repomd.xml
signed (repomd.xml.asc), a .repo snippet for users.

Signing changes an rpm's bytes but not its header or payload: a published
rpm is known by its header SHA256 and payload digest, so the same build
published twice is recognised, and another build of the same version is
refused. Packages are signed in a private folder and then written into the
tree; createrepo_c writes its metadata into a private folder too, which is
copied in through the tree's folder descriptors."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from ..errors import printable
from ..safefs import Folder
from .base import (
    TARGET,
    Admitted,
    Instructions,
    Listed,
    PublishError,
    PublishReport,
    Settings,
    State,
    checked,
    newest,
    split_key,
)
from .gpg import PASSPHRASE_ENV

KEY_ARMORED = "qmail-pkg-archive-keyring.asc"
MAX_METADATA = 1 << 30


def rpm_identity(path: Path) -> str:
    result = subprocess.run(["rpm", "-qp", "--nosignature", "--qf", "%{SHA256HEADER}:%{PAYLOADDIGEST}", "--",
                             str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise PublishError(f"{path.name}: rpm cannot read it: {printable(result.stderr.strip()[-200:])}")
    return result.stdout.strip()


def repo_text(area: str, settings: Settings) -> str:
    """The .repo file for one target's area (rpm-<target>.repo), gpgcheck and repo_gpgcheck on."""
    return (f"[qmail-pkg-{area.replace('/', '-')}]\nname=qmail-syncdir {area}\n"
            f"baseurl={settings.base_url}/{area}\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\n"
            f"gpgkey={settings.base_url}/{KEY_ARMORED}\n")


class RpmRepository:
    label: ClassVar[str] = "RHEL, AlmaLinux, Rocky and Fedora-like systems (dnf)"
    area: ClassVar[str] = "Target"
    keys: ClassVar[tuple[str, ...]] = (KEY_ARMORED,)
    signature: ClassVar[str] = "openpgp"

    @staticmethod
    def listing(files: dict[str, str]) -> list[Listed]:
        found = []
        for key in files:
            parts = key.split("/")
            if parts[0] == "rpm":
                stem = parts[2].removesuffix(".rpm")
                name, *version = stem.rsplit(".", 1)[0].rsplit("-", 2)
                found.append(Listed(parts[1], stem.rsplit(".", 1)[-1], name, "-".join(version), parts[2],
                                    split_key(key)))
        return found

    @staticmethod
    def instructions(area: str, package: str, settings: Settings) -> Instructions:
        name = f"rpm-{area}"
        return Instructions(area, ((KEY_ARMORED, ""),),
                            f"{name}.repo", f"/etc/yum.repos.d/qmail-pkg-{name}.repo",
                            repo_text(f"rpm/{area}", settings), f"dnf install {package}")

    def __init__(self, tree: Folder, root: Path, state: State, signer, settings: Settings):
        for tool in ("rpm", "rpmsign", "createrepo_c"):
            if not shutil.which(tool):
                raise PublishError(f"publishing an rpm repository needs {tool} (apt-get install rpm createrepo-c)")
        self.tree = tree
        self.root = root
        self.state = state
        self.signer = signer
        self.settings = settings

    def publish(self, artifacts: list[Admitted], prune: int | None, report: PublishReport) -> None:
        areas: set[str] = set()
        with tempfile.TemporaryDirectory(prefix="qmail-pkg-rpmsign-") as private:
            for artifact in artifacts:
                target = checked(artifact.record.target, TARGET, "target")
                where = f"rpm/{target}/{artifact.name}"
                identity = rpm_identity(artifact.path)
                if self.state.check(where, identity):
                    report.unchanged.append(where)
                else:
                    signed = Path(private) / artifact.name
                    self._sign(artifact.path, signed)
                    with self.tree.sub("rpm", target, create=True) as folder:
                        folder.put(artifact.name, signed)
                    self.state.record(where, identity)
                    report.added.append(where)
                areas.add(target)
        if prune:
            for target in sorted(areas):
                members = [k for k in self.state.files if k.startswith(f"rpm/{target}/")]
                _, dropped = newest(members, prune, lambda key: key.rsplit("/", 1)[-1])
                for where in dropped:
                    *folders, name = split_key(where)
                    with self.tree.sub(*folders) as folder:
                        folder.unlink(name)
                    self.state.forget(where)
                    report.pruned.append(where)
        for target in sorted(areas):
            self._index(target, report)
        self.tree.write(KEY_ARMORED, self.signer.public_key(armor=True))

    def _sign(self, source: Path, target: Path) -> None:
        shutil.copyfile(source, target)
        home = self.signer.gnupg_home
        # Debian's rpm looks for gpg2; name the gpg that is here
        macros = [f"__gpg {shutil.which('gpg')}", f"_gpg_name {self.signer.fingerprint}", "_gpg_digest_algo sha256"]
        if home:
            macros.append(f"_gpg_path {home}")
        secret = None
        if os.environ.get(PASSPHRASE_ENV) is not None:
            # rpmsign hands gpg the passphrase from a file it reads itself
            fd, secret = tempfile.mkstemp(prefix="qmail-pkg-pass-", dir=target.parent)
            os.write(fd, os.environ[PASSPHRASE_ENV].encode())
            os.close(fd)
            macros.append(f"_gpg_sign_cmd_extra_args --pinentry-mode loopback --passphrase-file {secret}")
        argv = ["rpmsign", "--addsign"]
        for macro in macros:
            argv += ["--define", macro]
        try:
            result = subprocess.run(argv + ["--", str(target)], capture_output=True, text=True, env=self.signer.env,
                                    stdin=subprocess.DEVNULL)
        finally:
            if secret:
                os.unlink(secret)
        if result.returncode != 0:
            raise PublishError(f"rpmsign could not sign {source.name}: "
                               f"{printable((result.stderr or result.stdout).strip()[-300:])}")

    def _index(self, target: str, report: PublishReport) -> None:
        area = f"rpm/{target}"
        with self.tree.sub("rpm", target) as folder:
            folder.check_plain()
        with tempfile.TemporaryDirectory(prefix="qmail-pkg-createrepo-") as private:
            result = subprocess.run(["createrepo_c", "--quiet", "--outputdir", private, "--", str(self.root / area)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise PublishError(f"createrepo_c {area} failed: "
                                   f"{printable((result.stderr or result.stdout).strip()[-300:])}")
            made = Path(private) / "repodata"
            self.signer.detach_sign(made / "repomd.xml", made / "repomd.xml.asc", armor=True)
            with self.tree.sub("rpm", target) as folder:
                folder.remove_tree(".repodata.new")
                with folder.sub(".repodata.new", create=True) as new:
                    for path in sorted(made.iterdir()):
                        new.write(path.name, path.read_bytes())
                # the signed metadata replaces the old in two renames: never one without its signature
                folder.remove_tree(".repodata.old")
                if folder.lstat("repodata") is not None:
                    folder.rename("repodata", ".repodata.old")
                folder.rename(".repodata.new", "repodata")
                folder.remove_tree(".repodata.old")
        self.tree.write(f"{area.replace('/', '-')}.repo", repo_text(area, self.settings).encode())
        report.indexes.append(f"{area}/repodata")


__all__ = ["RpmRepository", "rpm_identity"]
