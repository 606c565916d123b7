"""Settings read from the environment, each read one way and checked before
any work starts.

Integer settings are ASCII decimal digits within a stated range: `int()`
alone would take ' 5', '+5', '١٠' (Arabic-Indic digits) or '1_000', and
str.isdigit() says yes to '²', which int() then refuses. A value that is
set must hold a number: an empty value is an error, not the default.

Folder settings name a folder, or a path where one can be made; one that is
empty counts as unset (as the XDG Base Directory specification has it).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import QmailPkgError, kind_name, printable, quoted

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: no re.ASCII needed for an explicit class
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NUMBER_SHOWN = 40  # a number longer than this is no number: its head says enough
PATH_SHOWN = 512  # a folder's name is quoted whole unless it is absurdly long


class SettingError(QmailPkgError):
    """An environment variable holds a value the tool cannot use."""


@dataclass(frozen=True)
class IntegerSetting:
    name: str
    low: int
    high: int
    default: int | None  # None: unset means "not given" (the caller decides)
    meaning: str  # for the README and --help: what the number is

    def value(self, environ: Mapping[str, str] | None = None) -> int:
        """read() of a setting that has a default: always a number."""
        found = self.read(environ)
        if found is None:
            raise SettingError(f"{self.name} must be set: {self.meaning}")
        return found

    def read(self, environ: Mapping[str, str] | None = None) -> int | None:
        """The value, the default when unset, or a SettingError."""
        environ = os.environ if environ is None else environ
        text = environ.get(self.name)
        if text is None:
            return self.default
        # the length is checked before int(): a 5000-digit value is refused, not converted
        if _DIGITS.fullmatch(text) and len(text.lstrip("0") or "0") <= len(str(self.high)):
            value = int(text, 10)
            if self.low <= value <= self.high:
                return value
        raise SettingError(f"{self.name}={quoted(text, NUMBER_SHOWN)}: "
                           f"must be a whole number from {self.low} to {self.high} in ASCII digits")


# Builds never get near these bounds; they only keep a typo from meaning
# "no limit" or from overflowing what a format can hold.
EXTRACT_DEFAULT_BYTES = 512 * 1024 * 1024  # real qmail + syncdir extract to about 1.2 MB
EXTRACT_DEFAULT_MEMBERS = 50_000  # qmail-1.03 has 433 entries
EXTRACT_MAX_BYTES = IntegerSetting("QMAIL_PKG_EXTRACT_MAX_BYTES", 1, 1 << 40, EXTRACT_DEFAULT_BYTES,
                                   "bytes one extraction or harvest may write")
EXTRACT_MAX_MEMBERS = IntegerSetting("QMAIL_PKG_EXTRACT_MAX_MEMBERS", 1, 10_000_000, EXTRACT_DEFAULT_MEMBERS,
                                     "members one extraction or harvest may hold")
# reproducible-builds.org: a non-negative decimal integer. rpm keeps build and
# file times as unsigned 32-bit numbers (nfpm writes them so), the narrowest
# of the three formats: a later time would wrap around silently.
SOURCE_DATE_EPOCH = IntegerSetting("SOURCE_DATE_EPOCH", 0, (1 << 32) - 1, None,
                                   "the time every packaged file carries (Unix seconds)")
INTEGER_SETTINGS = (EXTRACT_MAX_BYTES, EXTRACT_MAX_MEMBERS, SOURCE_DATE_EPOCH)


def check_integer_settings(environ: Mapping[str, str] | None = None) -> None:
    """Every integer setting read once, so that a bad one stops a command
    before its first container rather than in the middle of a build."""
    for setting in INTEGER_SETTINGS:
        setting.read(environ)


def folder_path(text: str, label: str) -> Path:
    """The folder `text` names, or a path where one can be made; `label`
    says where the text came from ("QMAIL_PKG_CACHE='/x'") in errors."""
    if "\0" in text or _CONTROL.search(text):
        raise SettingError(f"{label}: a folder name cannot hold control characters or line breaks")
    path = Path(text)
    probe = path
    while True:
        try:
            mode = os.stat(probe).st_mode
        except (FileNotFoundError, NotADirectoryError):
            if probe.parent == probe:
                return path
            probe = probe.parent  # not there yet: what is there must let it be made
            continue
        except OSError as exc:
            raise SettingError(f"{label}: cannot use {printable(str(probe))}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(mode):
            return path
        if probe == path:
            raise SettingError(f"{label}: not a folder ({kind_name(mode)})")
        raise SettingError(f"{label}: {printable(str(probe))} is {kind_name(mode)}, so no folder can be made there")


def folder_setting(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder an environment variable names, checked; None when it is
    unset or empty."""
    environ = os.environ if environ is None else environ
    text = environ.get(name, "")
    return folder_path(text, f"{name}={quoted(text, PATH_SHOWN)}") if text else None


def cache_folder(name: str, override: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where one of the tool's caches lives, checked: $override if set, else
    $XDG_CACHE_HOME/qmail-pkg/<name>, else ~/.cache/qmail-pkg/<name>. A
    relative XDG_CACHE_HOME is ignored, as the XDG specification says."""
    environ = os.environ if environ is None else environ
    chosen = folder_setting(override, environ)
    if chosen is not None:
        return chosen
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        base, origin = folder_path(xdg, f"XDG_CACHE_HOME={quoted(xdg, PATH_SHOWN)}"), "XDG_CACHE_HOME"
    else:
        base, origin = Path.home() / ".cache", "the home folder"
    folder = base / "qmail-pkg" / name
    return folder_path(str(folder),
                       f"the {name} cache {quoted(str(folder), PATH_SHOWN)} (from {origin}; or set {override})")
