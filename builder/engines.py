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

What an engine is (a Docker engine or a jail host) is said, never guessed
from a target's name: the settings file's key (docker: or jail:), and on the
command line the URL's scheme (jail+ssh:// is a jail host, every other URL a
Docker engine). A target matched by an engine of the other kind is refused
before any work starts (check_engines).

The settings file is read as recipes are: a regular file (a FIFO or a device
is refused before anything could block on it), at most 64 KiB of UTF-8,
safe YAML. A tcp:// engine needs TLS with the client's cert and key (Docker
over plain TCP gives root on the engine to anyone who reaches the port); ca
is optional: without it the engine's certificate is checked against the
system's trusted authorities.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import QmailPkgError, kind_name, printable, quoted
from .recipe.model import Target

SETTINGS_ENV = "QMAIL_PKG_BUILDERS"
MAX_SETTINGS_BYTES = 64 * 1024  # a settings file is a few lines
MAX_PATTERNS = 1000  # aliases could otherwise multiply entries by patterns into millions
JAIL_PREFIX = "jail+"  # --engine 'freebsd-*=jail+ssh://host': a jail host, not a Docker engine
ENTRY_KEYS = ("targets", "docker", "jail", "tls")
TLS_KEYS = ("ca", "cert", "key")
PORTS = range(1, 65536)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"  # a host name or IPv4 address: never starting with '-' (an ssh option)
_PORT = r"(?::(?P<port>[0-9]{1,5}))?"
_SSH = re.compile(rf"ssh://(?:[A-Za-z0-9._][A-Za-z0-9._-]{{0,31}}@)?{_HOST}{_PORT}")
_TCP = re.compile(rf"tcp://(?:{_HOST}|\[[0-9A-Fa-f:.]+\]){_PORT}")
_UNIX = re.compile(r"unix:///[^\x00-\x20\x7f-\x9f]+")
_PATTERN = re.compile(r"[A-Za-z0-9._*?!\[\]/-]+")  # target names ([a-z0-9.-]), / and fnmatch's wildcards
_URL_FORMS = "unix:///PATH, ssh://[USER@]HOST[:PORT] or tcp://HOST[:PORT] (jail+ssh:// on --engine for a jail host)"


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


def url_problem(url: str, kind: str) -> str | None:
    """Why `url` cannot reach an engine of `kind`, or None."""
    if kind == "jail" and not url.startswith("ssh://"):
        return "a jail host is reached over ssh://[USER@]HOST[:PORT]"
    if url.startswith("unix://"):
        return None if _UNIX.fullmatch(url) else (
            "unix:// takes the socket's absolute path, such as unix:///run/docker.sock "
            "(no spaces or control characters)")
    forms = {"ssh://": (_SSH, "ssh://[USER@]HOST[:PORT], with a host name or IPv4 address"),
             "tcp://": (_TCP, "tcp://HOST[:PORT]")}
    for scheme, (grammar, form) in forms.items():
        if url.startswith(scheme):
            found = grammar.fullmatch(url)
            if found is None:
                return f"expected {form}"
            if found["port"] is not None and int(found["port"]) not in PORTS:
                return "the port must be a number from 1 to 65535"
            return None
    return f"expected {_URL_FORMS}"


def pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return (f"{printable(repr(pattern))} is not a string; quote it "
                "(YAML reads 1.10, on or 2024-01-01 as a number, a boolean or a date)")
    if not _PATTERN.fullmatch(pattern):
        return f"{quoted(pattern)} is not a pattern of target names (letters, digits, . - / and * ? [ ] !)"
    return None


def parse_flag(text: str) -> Engine:
    """--engine PATTERN=URL: a Docker engine, or with jail+ssh:// a jail host."""
    pattern, sep, url = text.partition("=")
    if not sep or not pattern or not url:
        raise EngineError(f"{quoted(text)}: expected PATTERN=URL, such as 'el-*=ssh://builder@big-box'")
    problem = pattern_problem(pattern)
    if problem:
        raise EngineError(f"{quoted(text)}: {problem}")
    kind = "docker"
    if url.startswith(JAIL_PREFIX):
        kind, url = "jail", url[len(JAIL_PREFIX):]
    problem = url_problem(url, kind)
    if problem is None and url.startswith("tcp://"):
        problem = "a tcp:// engine needs TLS, which only the builders settings file can give (tls: cert and key)"
    if problem:
        raise EngineError(f"{quoted(text)}: {problem}")
    return Engine(pattern, url, kind)


def default_settings_file() -> Path:
    if os.environ.get(SETTINGS_ENV):
        return Path(os.environ[SETTINGS_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qmail-pkg" / "builders.yaml"


def _read(path: Path, where: str, required: bool) -> str | None:
    """The settings file's text; None when it is absent and not required."""
    try:
        # Non-blocking, so that a FIFO cannot hang us before we see what it is.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if required:
            raise EngineError(f"{SETTINGS_ENV}={where}: no such file") from None
        return None
    except OSError as exc:
        raise EngineError(f"{where}: cannot read the builders settings: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise EngineError(f"{where}: not a regular file ({kind_name(mode)}); the builders settings are a YAML file")
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise EngineError(f"{where}: cannot read the builders settings: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SETTINGS_BYTES:
        raise EngineError(f"{where}: larger than {MAX_SETTINGS_BYTES} bytes; builders settings are a few lines")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EngineError(f"{where}: not valid UTF-8 (byte {exc.start})") from None


def _parse(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # a tag safe YAML does not construct (!!python/...) is no syntax error
        what = "cannot read the value" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise EngineError(f"{where}: {what}{at}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise EngineError(f"{where}: cannot read the builders settings: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise EngineError(f"{where}: nested too deeply to be builders settings") from None


def _key_names(mapping: dict) -> Iterable[str]:
    return (printable(repr(key)) for key in mapping)


def _tls(entry: dict, url: str, kind: str, where: str) -> tuple[tuple[str, str], ...]:
    if "tls" not in entry:
        if url.startswith("tcp://"):
            raise EngineError(f"{where}: a tcp:// engine needs tls: with cert and key (Docker over plain TCP "
                              "gives root on the engine to anyone who reaches its port)")
        return ()
    tls = entry["tls"]
    if kind != "docker" or not url.startswith("tcp://"):
        raise EngineError(f"{where}.tls: TLS is for tcp:// Docker engines only "
                          "(ssh:// and unix:// are secured otherwise)")
    if not isinstance(tls, dict):
        raise EngineError(f"{where}.tls: must be a mapping of cert, key and (optionally) ca files")
    unknown = [key for key in tls if key not in TLS_KEYS]
    if unknown:
        raise EngineError(f"{where}.tls: unknown key {printable(repr(unknown[0]))} (tls takes ca, cert and key files)")
    if "cert" not in tls or "key" not in tls:
        raise EngineError(f"{where}.tls: give both cert and key (the client's certificate and its private key); "
                          "ca is optional")
    files = []
    for name in TLS_KEYS:
        if name not in tls:
            continue
        value = tls[name]
        if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
            raise EngineError(f"{where}.tls.{name}: must be the absolute path of a PEM file")
        try:
            mode = os.stat(value).st_mode
        except OSError as exc:
            raise EngineError(f"{where}.tls.{name}: {printable(value)}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):
            raise EngineError(f"{where}.tls.{name}: {printable(value)}: not a regular file ({kind_name(mode)})")
        files.append((name, value))
    return tuple(files)


def _entry(entry: Any, where: str) -> list[Engine]:
    if not isinstance(entry, dict):
        raise EngineError(f"{where}: expected a mapping with targets and docker: or jail:")
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        raise EngineError(f"{where}: unknown key {printable(repr(unknown[0]))} "
                          "(an entry takes targets, docker or jail, and tls)")
    kinds = [kind for kind in ("docker", "jail") if kind in entry]
    if len(kinds) != 1:
        raise EngineError(f"{where}: give exactly one of docker: (a Docker engine) or jail: (a FreeBSD jail host)")
    kind = kinds[0]
    url = entry[kind]
    if not isinstance(url, str):
        raise EngineError(f"{where}.{kind}: must be a URL, {_URL_FORMS}")
    problem = url_problem(url, kind)
    if problem:
        raise EngineError(f"{where}.{kind}: {quoted(url, 200)}: {problem}")
    patterns = entry.get("targets")
    if not isinstance(patterns, list) or not patterns:
        raise EngineError(f"{where}.targets: must be a list of target name patterns, such as [el-*]")
    for number, pattern in enumerate(patterns):
        problem = pattern_problem(pattern)
        if problem:
            raise EngineError(f"{where}.targets[{number}]: {problem}")
    tls = _tls(entry, url, kind, where)
    return [Engine(pattern, url, kind, tls) for pattern in patterns]


def load_settings(path: Path | None = None) -> tuple[Engine, ...]:
    """The engines of the settings file (none when the default file does
    not exist); an EngineError names the first problem."""
    required = path is not None or bool(os.environ.get(SETTINGS_ENV))
    path = path or default_settings_file()
    where = printable(str(path))
    text = _read(path, where, required)
    if text is None:
        return ()
    data = _parse(text, where)
    unknown = [key for key in data if key != "builders"] if isinstance(data, dict) else []
    if unknown:
        raise EngineError(f"{where}: unknown key {printable(repr(unknown[0]))} (the settings hold one list, builders)")
    entries = data.get("builders") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise EngineError(f"{where}: expected a mapping with a list under 'builders'")
    engines: list[Engine] = []
    for number, entry in enumerate(entries):
        engines += _entry(entry, f"{where}: builders[{number}]")
        if len(engines) > MAX_PATTERNS:
            raise EngineError(f"{where}: more than {MAX_PATTERNS} target patterns; builders settings are a few lines")
    return tuple(engines)


def engine_for(target: str, engines: tuple[Engine, ...], architecture: str = "") -> Engine | None:
    """The first engine whose pattern matches the target's name, or its name
    with the architecture (`*/arm64` sends every arm64 build to a native
    arm64 engine instead of emulating it here)."""
    names = [target] + ([f"{target}/{architecture}"] if architecture else [])
    return next((engine for engine in engines if any(engine.matches(name) for name in names)), None)


def check_engines(builds: Iterable[Target], engines: tuple[Engine, ...]) -> None:
    """Every build goes to an engine of its own kind: a jail target to a jail
    host, a Docker target to a Docker engine (or stays here)."""
    for build in builds:
        engine = engine_for(build.name, engines, build.architecture)
        if engine is None or engine.kind == build.builder:
            continue
        if build.builder == "jail":
            hint = "name a FreeBSD jail host: --engine 'PATTERN=jail+ssh://HOST' or jail: in the builders settings"
        else:
            hint = "name a Docker engine for it (unix://, ssh:// or tcp://), or a narrower pattern for the jail host"
        raise EngineError(f"{build.label} builds in {'a jail' if build.builder == 'jail' else 'Docker'}, but the "
                          f"pattern '{printable(engine.pattern)}' sends it to the {engine.kind} "
                          f"{'host' if engine.kind == 'jail' else 'engine'} {printable(engine.url)}; {hint}")
