"""Reading a record as hostile data: the patterns every name must match
before it can become a path or a repository key, the bounds, and a reader
whose every refusal names the field."""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import QmailPkgError, printable

SCHEMA = 2


SUFFIX = ".build.json"


MAX_BYTES = 16 << 20  # a real record is about 200 KB


MAX_ITEMS = 100_000  # entries in any list of a record


MAX_TEXT = 65536  # characters in any one string (an image lists every package version in one)


# Names that can become paths, repository keys or package identities.
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")


VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~_-]{0,99}$")


TARGET = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


SUITE = re.compile(r"^([a-z][a-z0-9-]{0,31})?$")


RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


ARCHITECTURE = re.compile(r"^[a-z0-9][a-z0-9_]{0,15}$")


FAMILY = re.compile(r"^[a-z][a-z0-9]{0,15}$")


FORMAT = re.compile(r"^[a-z][a-z0-9]{0,7}$")


FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$")


SHA256 = re.compile(r"^[0-9a-f]{64}$")


ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


OWNER = re.compile(r"^([a-z_][a-z0-9_-]{0,31}|#[0-9]{1,10})$")


ABSOLUTE = re.compile(r"^/[^\x00-\x1f\x7f]{0,4095}$")


FIELD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


KINDS = ("file", "dir", "symlink", "fifo")


class RecordError(QmailPkgError):
    """A build record is missing, unreadable or not what `qmail-pkg build` writes."""


# -- reading helpers: each names the field that is wrong ---------------------
class Reader:
    def __init__(self, where: str, max_text: int = MAX_TEXT):
        self.where = where
        self.max_text = max_text  # a kind of file whose strings are shorter says so

    def fail(self, path: str, message: str) -> RecordError:
        return RecordError(f"{self.where}: {path}: {message}")

    def mapping(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, "must be a list")
        if len(value) > MAX_ITEMS:
            raise self.fail(path, f"more than {MAX_ITEMS} items")
        return value

    def get(self, data: dict[str, Any], key: str, path: str) -> Any:
        if key not in data:
            raise self.fail(f"{path}.{key}" if path else key, "missing")
        return data[key]

    def text(self, data: dict[str, Any], key: str, path: str = "", pattern: re.Pattern[str] | None = None,
             default: str | None = None) -> str:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        value = self.get(data, key, path)
        return self.string(value, name, pattern)

    def string(self, value: Any, name: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str):
            raise self.fail(name, "must be a string")
        if len(value) > self.max_text:
            raise self.fail(name, f"longer than {self.max_text} characters")
        if pattern is not None and not pattern.match(value):
            raise self.fail(name, f"{printable(value[:80])!r} is not a valid value here")
        return value

    def integer(self, data: dict[str, Any], key: str, path: str = "", low: int = 0, high: int = 2**63 - 1,
                default: int | None = None) -> int:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        value = self.get(data, key, path)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(name, f"must be a whole number from {low} to {high}")
        return value

    def flag(self, data: dict[str, Any], key: str, path: str = "", default: bool | None = None) -> bool:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        value = self.get(data, key, path)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def strings(self, data: dict[str, Any], key: str, path: str = "", pattern: re.Pattern[str] | None = None,
                default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        name = f"{path}.{key}" if path else key
        if key not in data and default is not None:
            return default
        return tuple(self.string(item, f"{name}[{index}]", pattern)
                     for index, item in enumerate(self.items(self.get(data, key, path), name)))

    def text_map(self, data: dict[str, Any], key: str, path: str = "", default: bool = True) -> dict[str, str]:
        name = f"{path}.{key}" if path else key
        if key not in data and default:
            return {}
        raw = self.mapping(self.get(data, key, path), name)
        if len(raw) > MAX_ITEMS:
            raise self.fail(name, f"more than {MAX_ITEMS} items")
        return {self.string(k, f"{name} key", FIELD_NAME): self.string(v, f"{name}.{k}") for k, v in raw.items()}

    def flags(self, data: dict[str, Any], key: str, path: str = "") -> dict[str, bool]:
        name = f"{path}.{key}" if path else key
        raw = self.mapping(data.get(key, {}), name)
        result = {}
        for option, value in raw.items():
            self.string(option, f"{name} key", FIELD_NAME)
            if not isinstance(value, bool):
                raise self.fail(f"{name}.{option}", "must be true or false")
            result[option] = value
        return result


def read_mode(reader: Reader, value: Any, name: str) -> int:
    text = reader.string(value, name, re.compile(r"^[0-7]{3,6}$"))
    mode = int(text, 8)
    if mode > 0o7777:
        raise reader.fail(name, "is not a permission mode")
    return mode


def strict_json(text: str | bytes, where: str, what: str) -> Any:
    """JSON from a file that travels between machines: duplicate keys,
    NaN and Infinity refused, and every refusal one line naming `what` it
    should have been (a build record, evidence)."""
    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except RecursionError:
        raise RecordError(f"{where}: nested too deeply to be {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"{where}: not {what} (not JSON: {printable(str(exc))[:120]})") from None


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number a record holds")
