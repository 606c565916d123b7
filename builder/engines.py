"""Which engine builds which target, when one machine is not enough.

No scheduler is written here: each target is sent to a Docker engine the
user already runs (unix://, ssh://, tcp:// with TLS) or to a FreeBSD host
for jails over ssh, and the --jobs pool is the only scheduler. Settings come
from --engine PATTERN=URL (repeatable) and from a file, $QMAIL_PKG_BUILDERS
or ~/.config/qmail-pkg/builders.yaml:

    builders:
      - targets: [debian-*, test-*]      # fnmatch patterns of target names
        docker: ssh://builder@big-box
      - targets: [el-*]
        docker: tcp://el-builder:2376
        tls: {ca: /etc/qmail-pkg/ca.pem, cert: /etc/qmail-pkg/cert.pem, key: /etc/qmail-pkg/key.pem}
      - targets: [freebsd-*]
        jail: ssh://builder@freebsd-host
      - targets: ["*/arm64"]                # every arm64 build, natively
        docker: ssh://builder@arm64-box

The first matching entry wins; a target no entry names uses the local
engine. Signing keys never go to an engine: artifacts come back and are
signed where `repo publish` runs.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import QmailPkgError

SETTINGS_ENV = "QMAIL_PKG_BUILDERS"
_URL = re.compile(r"^(unix://|ssh://|tcp://)[^\s\x00-\x1f]+$")


class EngineError(QmailPkgError):
    """The builders settings cannot be used."""


@dataclass(frozen=True)
class Engine:
    pattern: str
    url: str
    kind: str = "docker"  # docker | jail
    tls: tuple[tuple[str, str], ...] = ()  # ca, cert, key files for tcp://

    def matches(self, target: str) -> bool:
        return fnmatch.fnmatchcase(target, self.pattern)


def parse_flag(text: str) -> Engine:
    pattern, sep, url = text.partition("=")
    if not sep or not pattern or not _URL.match(url):
        raise EngineError(f"--engine {text!r}: expected PATTERN=URL with a unix://, ssh:// or tcp:// URL")
    return Engine(pattern, url, "jail" if pattern.startswith("freebsd") and url.startswith("ssh://") else "docker")


def default_settings_file() -> Path:
    if os.environ.get(SETTINGS_ENV):
        return Path(os.environ[SETTINGS_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qmail-pkg" / "builders.yaml"


def load_settings(path: Path | None = None) -> tuple[Engine, ...]:
    path = path or default_settings_file()
    if not path.exists():
        if os.environ.get(SETTINGS_ENV):
            raise EngineError(f"{SETTINGS_ENV}={path}: no such file")
        return ()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EngineError(f"{path}: cannot read the builders settings: {exc}") from None
    entries = data.get("builders") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise EngineError(f"{path}: expected a mapping with a list under 'builders'")
    engines = []
    for number, entry in enumerate(entries):
        where = f"{path}: builders[{number}]"
        if not isinstance(entry, dict) or set(entry) - {"targets", "docker", "jail", "tls"}:
            raise EngineError(f"{where}: expected targets, and docker or jail (and tls for tcp://)")
        kinds = [kind for kind in ("docker", "jail") if kind in entry]
        if len(kinds) != 1 or not isinstance(entry[kinds[0]], str) or not _URL.match(entry[kinds[0]]):
            raise EngineError(f"{where}: give exactly one of docker: or jail:, a unix://, ssh:// or tcp:// URL")
        patterns = entry.get("targets")
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise EngineError(f"{where}: targets must be a list of target name patterns")
        tls = entry.get("tls") or {}
        if not isinstance(tls, dict) or set(tls) - {"ca", "cert", "key"}:
            raise EngineError(f"{where}: tls takes ca, cert and key files")
        for pattern in patterns:
            engines.append(Engine(pattern, entry[kinds[0]], kinds[0], tuple(sorted(tls.items()))))
    return tuple(engines)


def engine_for(target: str, engines: tuple[Engine, ...], architecture: str = "") -> Engine | None:
    """The first engine whose pattern matches the target's name, or its name
    with the architecture (`*/arm64` sends every arm64 build to a native
    arm64 engine instead of emulating it here)."""
    names = [target] + ([f"{target}/{architecture}"] if architecture else [])
    return next((engine for engine in engines if any(engine.matches(name) for name in names)), None)
