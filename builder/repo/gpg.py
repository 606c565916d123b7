"""Signing with GnuPG for the apt and rpm repositories.

The key is named by id or fingerprint (it is in the user's keyring, or an
agent holds it) or given as a file of an exported secret key, which is
imported into a private, temporary keyring. A passphrase comes from
$QMAIL_PKG_SIGNING_PASSPHRASE through a pipe, never on a command line or in
a log; without it, gpg asks its agent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import QmailPkgError, printable
from ..safefs import FsError, read_file

PASSPHRASE_ENV = "QMAIL_PKG_SIGNING_PASSPHRASE"
MAX_KEY_FILE = 1 << 20
# what --key may name in a keyring: a fingerprint, key id, e-mail or user id,
# never something gpg would read as an option
_KEY_NAME = re.compile(r"^[A-Za-z0-9@<>._+ -]{1,200}$")


class SigningError(QmailPkgError):
    """The signing key is missing, expired, unusable, or gpg failed."""


class Signer:
    def __init__(self, key: str):
        if not shutil.which("gpg"):
            raise SigningError("signing needs GnuPG (apt-get install gnupg)")
        if not key or key.startswith("-"):
            raise SigningError(f"--key {printable(key)!r}: a key id or a key file, not an option")
        self._home: tempfile.TemporaryDirectory | None = None
        self.env = dict(os.environ)
        if os.path.lexists(key) and ("/" in key or os.path.isfile(key)):
            try:
                secret = read_file(Path(key), MAX_KEY_FILE, f"--key {key}")
            except FsError as exc:
                raise SigningError(str(exc)) from None
            self._home = tempfile.TemporaryDirectory(prefix="qmail-pkg-gnupg-")
            os.chmod(self._home.name, 0o700)
            self.env["GNUPGHOME"] = self._home.name
            result = self._gpg(["--import"], stdin=secret)  # from stdin: the file is read once, bounded
            if result.returncode != 0:
                raise SigningError(f"{key}: cannot import the signing key: {_tail(result.stderr)}")
            key = self._first_secret_fingerprint(key)
        elif not _KEY_NAME.match(key):
            raise SigningError(f"--key {printable(key)[:80]!r}: not a key id, fingerprint or user id, and no such file")
        self.fingerprint = self._check(key)

    def close(self) -> None:
        if self._home is not None:
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, capture_output=True)
            self._home.cleanup()
            self._home = None

    def __enter__(self) -> "Signer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _gpg(self, args: list[str], stdin: bytes | None = None,
             passphrase: bool = False) -> subprocess.CompletedProcess:
        argv = ["gpg", "--batch", "--no-tty", "--quiet"]
        data = stdin
        secret = os.environ.get(PASSPHRASE_ENV)
        if passphrase and secret is not None:
            # the passphrase goes through a pipe: fd 0 carries it, never argv
            argv += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
            data = (secret + "\n").encode() + (stdin or b"")
        return subprocess.run(argv + args, input=data, capture_output=True, env=self.env)

    def _first_secret_fingerprint(self, origin: str) -> str:
        result = self._gpg(["--list-secret-keys", "--with-colons"])
        for line in result.stdout.decode().splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise SigningError(f"{origin}: holds no secret key to sign with")

    def _check(self, key: str) -> str:
        """The key's fingerprint, after checking it can sign and has not expired."""
        result = self._gpg(["--list-secret-keys", "--with-colons", "--", key])
        if result.returncode != 0:
            raise SigningError(f"signing key {key!r}: no secret key in the keyring "
                               f"({self.env.get('GNUPGHOME') or '~/.gnupg'}); give --key a key file or import it")
        fields = [line.split(":") for line in result.stdout.decode().splitlines()]
        primary = next((f for f in fields if f[0] == "sec"), None)
        fingerprint = next((f[9] for f in fields if f[0] == "fpr"), key)
        if primary is None:
            raise SigningError(f"signing key {key!r}: not found")
        if primary[1] in ("e", "r"):
            raise SigningError(f"signing key {key!r} has {'expired' if primary[1] == 'e' else 'been revoked'}")
        if primary[6] and primary[6].isdigit() and int(primary[6]) < time.time():
            raise SigningError(f"signing key {key!r} expired on "
                               f"{time.strftime('%Y-%m-%d', time.gmtime(int(primary[6])))}")
        return fingerprint

    def _sign(self, args: list[str], source: Path, target: Path) -> bytes:
        """Sign a private file into another private file (both ours, in a
        folder this process made); return the signature's bytes."""
        result = self._gpg(["--local-user", self.fingerprint, "--yes", "--output", str(target), *args, "--",
                            str(source)], passphrase=True)
        if result.returncode != 0:
            target.unlink(missing_ok=True)
            hint = ("" if os.environ.get(PASSPHRASE_ENV) is not None
                    else f" (if the key has a passphrase, set {PASSPHRASE_ENV} or use gpg-agent)")
            raise SigningError(f"gpg could not sign {source.name}: {_tail(result.stderr)}{hint}")
        return target.read_bytes()

    def clearsign(self, source: Path, target: Path) -> bytes:
        return self._sign(["--digest-algo", "SHA512", "--clearsign"], source, target)

    def detach_sign(self, source: Path, target: Path, armor: bool = False) -> bytes:
        return self._sign(["--digest-algo", "SHA512", "--detach-sign", *(["--armor"] if armor else [])], source, target)

    def public_key(self, armor: bool = False) -> bytes:
        """The public key, exported (binary for signed-by, or armored)."""
        result = self._gpg(["--export", *(["--armor"] if armor else []), "--", self.fingerprint])
        if result.returncode != 0 or not result.stdout:
            raise SigningError(f"cannot export the public key {self.fingerprint}: {_tail(result.stderr)}")
        return result.stdout

    @property
    def gnupg_home(self) -> str | None:
        return self.env.get("GNUPGHOME")


def fingerprint_of(public_key: bytes) -> str:
    """The fingerprint of the first key in an exported public key, read by
    gpg without importing it anywhere ("" when gpg cannot tell)."""
    if not shutil.which("gpg"):
        return ""
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-gnupg-") as home:
        result = subprocess.run(["gpg", "--batch", "--homedir", home, "--with-colons", "--import-options",
                                 "show-only", "--import"], input=public_key, capture_output=True)
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True)
    fingerprints = [line.split(":")[9] for line in result.stdout.decode(errors="replace").splitlines()
                    if line.startswith("fpr:")]
    return fingerprints[0] if result.returncode == 0 and fingerprints else ""


def _tail(data: bytes) -> str:
    lines = [line for line in data.decode("utf-8", "replace").strip().splitlines() if line.strip()]
    return " | ".join(lines[-2:]) or "no output"
