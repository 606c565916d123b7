"""Load a YAML recipe, validate it and turn it into the model's dataclasses.

Every problem is reported, all at once, as ``FILE:LINE:COL: field.path: message``.
To know where each value came from, the YAML is composed into nodes (which
carry marks) and walked into plain data by hand, filling a side table
path -> position. The data is then checked by the JSON schema and by the
cross-reference rules a schema cannot express, and only a recipe without any
problem is converted.
"""

from __future__ import annotations

import functools
import json
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

import jsonschema
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from builder.errors import RecipeError, kind_name, printable
from builder.platforms import platform_for
from builder.recipe.model import (
    Accounts,
    BuildOption,
    Group,
    Layout,
    PackageMeta,
    Patch,
    Recipe,
    Services,
    Source,
    Target,
    User,
)

FieldPath = tuple[Union[str, int], ...]
Position = tuple[int, int]  # 1-based line, column

DOCUMENT: FieldPath = ()
MAX_FILE_BYTES = 1 << 20  # the real recipe is 6 KB
MAX_NODES = 100_000  # aliases can expand exponentially ("billion laughs")
MAX_EXPANDED_CHARS = 4 << 20  # text after aliases are expanded: a 1 KB string aliased 10^5 times is not a recipe
MAX_DEPTH = 32  # recipes nest 6 deep; deeper data would only exhaust the stack later
# Fields that may span lines (every other string is one line without control characters).
MULTILINE_FIELDS = {("package", "description"), ("package", "copyright")}
# Folders a prefix or log folder must never be: purge removes what the package made there.
SHARED_FOLDERS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
    "/usr/sbin", "/usr/share", "/var", "/var/cache", "/var/db", "/var/lib", "/var/log", "/var/mail",
    "/var/run", "/var/spool", "/var/tmp",
})
MERGE_TAG = "tag:yaml.org,2002:merge"


# --------------------------------------------------------------------------
# public API


def schema_text() -> str:
    """The JSON schema of the recipe format (draft 2020-12), with the enums
    and packager sections filled in from the registries."""
    return json.dumps(_schema(), indent=2) + "\n"


def _fill_enums(node: Any, enums: dict[str, list[str]]) -> None:
    if isinstance(node, dict):
        source = node.pop("x-enum-from", None)
        if source is not None:
            node["enum"] = enums[source]
        for value in node.values():
            _fill_enums(value, enums)
    elif isinstance(node, list):
        for value in node:
            _fill_enums(value, enums)


@functools.cache
def _schema() -> dict[str, Any]:
    from builder.package import PACKAGERS
    from builder.platforms import PLATFORMS

    schema = json.loads(resources.files("builder.recipe").joinpath("schema.json").read_text(encoding="utf-8"))
    _fill_enums(schema, {"platforms": sorted(PLATFORMS), "packagers": sorted(PACKAGERS)})
    for packager in PACKAGERS.values():
        schema["properties"][packager.options_key] = packager.options_schema
    return schema


def _format_families() -> dict[str, str]:
    from builder.package import PACKAGERS

    return {fmt: packager.family for fmt, packager in PACKAGERS.items()}


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and convert one recipe; RecipeError lists every problem."""
    problems, recipe = _load(path)
    if problems or recipe is None:
        raise RecipeError(problems)
    return recipe


def validate_paths(paths: Iterable[str | Path]) -> list[str]:
    """Every problem of every recipe file; an empty list means all are valid."""
    problems: list[str] = []
    for path in paths:
        problems.extend(_load(path)[0])
    return problems


# --------------------------------------------------------------------------
# problem collection


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: FieldPath) -> str:
    """('targets', 1, 'formats', 0) -> 'targets[1].formats[0]'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            text += f"[{json.dumps(part)}]"  # keep odd keys (spaces, dots...) unambiguous
        else:
            text += f".{part}" if text else part
    return text or "(document)"


@dataclass
class _Report:
    """Problems of one file, plus where every path of its data was written."""

    file: str
    values: dict[FieldPath, Position] = field(default_factory=dict)
    keys: dict[FieldPath, Position] = field(default_factory=dict)
    # paths whose value could not be read: already reported, so the schema's
    # complaints about the placeholder below them would only be noise
    broken: set[FieldPath] = field(default_factory=set)
    found: list[tuple[Position, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, position: Position, path: FieldPath, message: str) -> None:
        line, col = position
        # One problem, one line: a value quoted into a message must not break it.
        text = printable(f"{self.file}:{line}:{col}: {format_path(path)}: {message}")
        if text not in self.seen:  # an aliased value can fail the same way twice
            self.seen.add(text)
            self.found.append((position, text))

    def at_value(self, path: FieldPath, message: str) -> None:
        self.add(self.value_position(path), path, message)

    def at_key(self, path: FieldPath, message: str) -> None:
        self.add(self.key_position(path), path, message)

    def value_position(self, path: FieldPath) -> Position:
        # a path with no value of its own (a missing key) falls back to its parent
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def key_position(self, path: FieldPath) -> Position:
        return self.keys.get(path) or self.value_position(path)

    def line_of(self, path: FieldPath) -> int:
        return self.value_position(path)[0]

    def is_broken(self, path: FieldPath) -> bool:
        return any(path[: len(bad)] == bad for bad in self.broken)

    def problems(self) -> list[str]:
        # stable sort: problems on one position keep the order they were found in
        return [text for _, text in sorted(self.found, key=lambda item: item[0])]


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


# --------------------------------------------------------------------------
# YAML -> plain data with positions


class _TooLarge(Exception):
    """The document expands beyond MAX_NODES values or MAX_EXPANDED_CHARS of text."""


class _Loader(yaml.SafeLoader):
    """Composes nodes only; _Walker builds the data so it can record positions."""


_STEP_LISTS = ("steps", "steps_before", "steps_after")


def _is_step(path: FieldPath) -> bool:
    """A step's shell text: an item of a step list, or the run: of one."""
    if len(path) >= 3 and path[-1] == "run" and isinstance(path[-2], int):
        return path[-3] in _STEP_LISTS
    return len(path) >= 2 and isinstance(path[-1], int) and path[-2] in _STEP_LISTS


class _Walker:
    """Turns a node tree into dicts/lists/scalars, recording positions."""

    def __init__(self, loader: _Loader, report: _Report):
        self.loader = loader
        self.report = report
        self.count = 0
        self.chars = 0  # text walked so far, aliases counted every time they are used
        self.merged: dict[int, int] = {}  # id(mapping node) -> leading merged pairs

    def walk(self, node: Node, path: FieldPath, active: frozenset[int] = frozenset()) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        self.report.values[path] = _position(node)
        if id(node) in active:
            return self._broken(node, path, "an alias refers to a value that contains it")
        if len(path) > MAX_DEPTH:
            return self._broken(node, path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        inner = active | {id(node)}
        if isinstance(node, SequenceNode):
            return [self.walk(item, path + (index,), inner) for index, item in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        return self._mapping(node, path, inner)

    def _broken(self, node: Node, path: FieldPath, message: str) -> None:
        self.report.add(_position(node), path, message)
        self.report.broken.add(path)
        return None

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        self.chars += len(node.value)
        if self.chars > MAX_EXPANDED_CHARS:
            raise _TooLarge
        value, problem = self._construct(node)
        if not problem and _is_step(path):
            problem = self._cut_by_comment(node)
        return self._broken(node, path, problem) if problem else value

    def _cut_by_comment(self, node: ScalarNode) -> str | None:
        """A plain step followed by ` #...` on its line was cut short by YAML:
        `sed -i '1i #include "x.h"' f` would silently become `sed -i '1i`."""
        if node.style is not None or node.end_mark.buffer is None:
            return None
        buffer, end = node.end_mark.buffer, node.end_mark.pointer
        line_end = buffer.find("\n", end)
        rest = buffer[end : line_end if line_end != -1 else len(buffer)]
        if rest.lstrip().startswith("#") and rest[:1] in (" ", "\t"):
            return "this unquoted step ends where ' #' starts a YAML comment; write the step as a block (`- |`) or quote it"
        return None

    def _construct(self, node: ScalarNode) -> tuple[Any, str | None]:
        """The scalar's value, or None and why it cannot be read."""
        try:
            return self.loader.construct_object(node, deep=True), None
        except yaml.MarkedYAMLError as error:
            return None, f"cannot read value: {error.problem}"
        except Exception as error:  # noqa: BLE001 - PyYAML's constructors raise
            # ValueError, AttributeError... on explicit tags like `!!int x`
            return None, f"cannot read value tagged {node.tag}: {error}"

    def _mapping(self, node: MappingNode, path: FieldPath, active: frozenset[int]) -> dict[str, Any]:
        merged = self._flatten(node)
        result: dict[str, Any] = {}
        own: dict[str, int] = {}  # key -> line, for keys written in this mapping
        for index, (key_node, value_node) in enumerate(node.value):
            key = self._key(key_node, path)
            if key is None:
                continue
            key_path = path + (key,)
            line = _position(key_node)[0]
            if index >= merged:
                # keys brought in by `<<: *anchor` may be overridden; own keys not
                if key in own:
                    message = f"duplicate key {_show(key)} (first at line {own[key]})"
                    self.report.add(_position(key_node), key_path, message)
                    continue
                own[key] = line
            self.report.keys[key_path] = _position(key_node)
            result[key] = self.walk(value_node, key_path, active)
        return result

    def _flatten(self, node: MappingNode) -> int:
        """Apply `<<` merge keys in place; return how many pairs came from them."""
        # an aliased mapping is visited again, already flattened: remember the count
        if id(node) not in self.merged:
            own = sum(1 for key, _ in node.value if key.tag != MERGE_TAG)
            self.loader.flatten_mapping(node)
            self.merged[id(node)] = len(node.value) - own
        return self.merged[id(node)]

    def _key(self, node: Node, path: FieldPath) -> str | None:
        """The key as a string, or None after reporting why it is not one."""
        if not isinstance(node, ScalarNode):
            self.report.add(_position(node), path, "a key must be a string, not a list or mapping")
            return None
        key, problem = self._construct(node)
        if isinstance(key, str):
            return key
        # YAML 1.1 reads `yes:`, `1:` or `~:` as a boolean, number or null
        self.report.add(_position(node), path, problem or f"key {_show(key)} must be a string (quote it)")
        return None


def _parse(text: str, report: _Report) -> Any:
    """The document as plain data, or None after reporting why there is none."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks every character already
        node = loader.get_single_node()
        if node is None:
            report.add((1, 1), DOCUMENT, "empty recipe")
            return None
        return _Walker(loader, report).walk(node, DOCUMENT)
    except yaml.MarkedYAMLError as error:
        _report_yaml_error(error, text, report)
    except yaml.reader.ReaderError as error:
        report.add(_offset_position(text, error.position), DOCUMENT, f"invalid character: {error.reason}")
    except _TooLarge:
        report.add((1, 1), DOCUMENT, f"the document expands to more than {MAX_NODES} values "
                   f"or {MAX_EXPANDED_CHARS} characters (aliases counted each time they are used)")
    except RecursionError:
        report.add((1, 1), DOCUMENT, "the document is nested too deeply")
    finally:
        if loader is not None:
            loader.dispose()
    return None


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


def _report_yaml_error(error: yaml.MarkedYAMLError, text: str, report: _Report) -> None:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line, mark.column) if mark else (0, 0)
    lines = _LINE_BREAK.split(text)
    row = lines[line] if line < len(lines) else ""
    indent = row[: len(row) - len(row.lstrip(" \t"))]
    if "\t" in indent:
        # PyYAML's own message ("found character '\t' that cannot start any
        # token") does not say what to fix
        report.add((line + 1, indent.index("\t") + 1), DOCUMENT, "tab character used for indentation")
        return
    message = error.problem or str(error)
    if error.context:
        # e.g. "while parsing a flow sequence (line 2): expected ',' or ']'..."
        where = error.context_mark
        started = f" (line {where.line + 1})" if where and where.line != line else ""
        message = f"{error.context}{started}: {message}"
    report.add((line + 1, col + 1), DOCUMENT, f"YAML syntax error: {message}")


def _offset_position(text: str, offset: int) -> Position:
    line = text.count("\n", 0, offset)
    return line + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _read(path: str | Path, report: _Report) -> str | None:
    try:
        # Non-blocking, so that a FIFO cannot hang us before we see what it is.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        report.add((1, 1), DOCUMENT, f"cannot read: {error.strerror or error}")
        return None
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        report.add((1, 1), DOCUMENT, f"not a regular file ({kind_name(kind)}); a recipe is a YAML file")
        return None
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        report.add((1, 1), DOCUMENT, f"larger than {MAX_FILE_BYTES} bytes; a recipe is a few kilobytes")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        head = data[: error.start].decode("utf-8-sig")  # valid up to the error
        report.add(_offset_position(head, len(head)), DOCUMENT, "not valid UTF-8")
        return None


# --------------------------------------------------------------------------
# schema validation


def _is_int(_checker: Any, instance: Any) -> bool:
    # jsonschema counts 1.0 as an integer; a recipe should say 1
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """JSON Schema patterns are ECMA-262 regexes, where `$` matches only at
    the very end. Python's `$` also matches before a final newline, which let
    "libc6\\n" pass `^...$`: read every unescaped `$` as `\\Z`."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("integer", _is_int)
    cls = jsonschema.validators.extend(base, {"pattern": _pattern}, type_checker=checker)
    return cls(_schema())


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "number": "a number",
}


def _show(value: Any, limit: int = 60) -> str:
    """repr() of a value from the recipe, cut short: it can be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}
    for kind, name in kinds.items():
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"  # date, bytes... from YAML 1.1 scalars or tags


def _type_message(expected: Any, value: Any) -> str:
    if expected == "string" and value is not None and not isinstance(value, (list, dict)):
        # YAML read `1.03`, `yes` or `2024-01-01` as a number, boolean or date
        return "must be a string (quote it)"
    names = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
    return f"must be {wanted}, not {_describe(value)}"


def _message(error: jsonschema.ValidationError) -> str:
    custom = error.schema.get("x-messages", {}) if isinstance(error.schema, dict) else {}
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind in custom:
        return str(custom[kind])
    if kind == "type":
        return _type_message(expected, value)
    if kind == "pattern":
        return f"{_show(value)} does not match {expected}"
    if kind == "enum":
        return f"{_show(value)} is not one of: {', '.join(map(str, expected))}"
    if kind == "const":
        return f"must be {expected!r}"
    if kind == "minimum":
        return f"must be at least {expected}"
    if kind == "maximum":
        return f"must be at most {expected}"
    if kind in ("minItems", "minLength"):
        return "must not be empty" if expected == 1 else f"must have at least {expected} items"
    if kind == "uniqueItems":
        return "items must be unique"
    return error.message


def _check_schema(data: Any, report: _Report) -> None:
    for error in _validator().iter_errors(data):
        path: FieldPath = tuple(error.absolute_path)
        if report.is_broken(path):
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            for key in _unexpected_keys(error.instance, error.schema):
                report.at_key(path + (key,), f"unknown key {_show(key)}")
        elif error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    report.at_key(path, f"missing required key {key!r}")
        elif "propertyNames" in error.relative_schema_path and isinstance(error.instance, str):
            # the failing "instance" is a key of the mapping at `path`
            report.at_key(path + (error.instance,), f"{_show(error.instance)} {_message(error)}")
        else:
            report.at_value(path, _message(error))


def _unexpected_keys(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    known = schema.get("properties", {})
    return [key for key in instance if key not in known]


# --------------------------------------------------------------------------
# cross-reference checks (run even when the schema failed, on what looks right)


def _mappings(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) for the items of a list that are mappings."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _check_unique(report: _Report, base: FieldPath, items: Any, key: str, what: str) -> set[Any]:
    """Report repeated values of `key` among the list `items`; return the values."""
    first: dict[Any, int] = {}
    for index, item in _mappings(items):
        value = item.get(key)
        path = base + (index, key)
        if not isinstance(value, (str, int)) or isinstance(value, bool) or report.is_broken(path):
            continue
        if value in first:
            report.at_value(path, f"duplicate {what} {_show(value)} (first at line {first[value]})")
        else:
            first[value] = report.line_of(path)
    return set(first)


def _check_sources(data: dict[str, Any], report: _Report) -> set[str]:
    sources = data.get("sources")
    names = _check_unique(report, ("sources",), sources, "name", "source name")
    for index, source in _mappings(sources):
        if not source.get("sha256") and not source.get("sha512"):
            report.at_value(("sources", index), "no sha256 or sha512 checksum: a source must be pinned")
    return {name for name in names if isinstance(name, str)}


def _check_accounts(accounts: Any, base: FieldPath, report: _Report) -> None:
    if not isinstance(accounts, dict):
        return
    groups, users = accounts.get("groups"), accounts.get("users")
    declared = _check_unique(report, base + ("groups",), groups, "name", "group name")
    _check_unique(report, base + ("groups",), groups, "gid", "gid")
    _check_unique(report, base + ("users",), users, "name", "user name")
    _check_unique(report, base + ("users",), users, "uid", "uid")
    broken_groups = any(report.is_broken(base + ("groups", index, "name")) for index, _ in _mappings(groups))
    for index, user in _mappings(users):
        group = user.get("group")
        if isinstance(group, str) and group not in declared and not broken_groups:
            known = ", ".join(sorted(map(str, declared))) or "none"
            message = f"unknown group {_show(group)} (declared: {known})"
            report.at_value(base + ("users", index, "group"), message)


def _check_targets(data: dict[str, Any], report: _Report) -> set[str]:
    targets = data.get("targets")
    names = _check_unique(report, ("targets",), targets, "name", "target name")
    for index, target in _mappings(targets):
        base: FieldPath = ("targets", index)
        family, formats = target.get("family"), target.get("formats")
        if isinstance(family, str) and isinstance(formats, list):
            families = _format_families()
            for number, fmt in enumerate(formats):
                needed = families.get(fmt) if isinstance(fmt, str) else None
                if needed and family in families.values() and needed != family:
                    report.at_value(
                        base + ("formats", number), f"format {fmt!r} needs family {needed!r}, not {family!r}"
                    )
        if "architecture" in target and "architectures" in target:
            report.at_key(base + ("architectures",), "give architecture or architectures, not both")
        if "accounts" in target:
            _check_accounts(target["accounts"], base + ("accounts",), report)
        elif "accounts" not in data:
            report.at_key(base, "no accounts: declare them in this target or at the top level")
    return {name for name in names if isinstance(name, str)}


def _patch_file(recipe_path: Path, file: str) -> Path:
    return (recipe_path.parent / "patches" / file).resolve()


def _check_patches(
    data: dict[str, Any], recipe_path: Path, sources: set[str], targets: set[str], report: _Report
) -> None:
    for index, patch in _mappings(data.get("patches")):
        base: FieldPath = ("patches", index)
        file = patch.get("file")
        # a path leaving patches/ is already refused by the schema
        if isinstance(file, str) and file and not file.startswith("/") and ".." not in Path(file).parts:
            resolved = _patch_file(recipe_path, file)
            if not resolved.is_file():
                report.at_value(base + ("file",), f"patch file not found: {resolved}")
        source = patch.get("source")
        if isinstance(source, str) and source not in sources:
            known = ", ".join(sorted(sources)) or "none"
            report.at_value(base + ("source",), f"unknown source {_show(source)} (sources: {known})")
        names = patch.get("targets")
        for number, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in targets:
                report.at_value(base + ("targets", number), f"unknown target {_show(name)}")


# C0 and C1 controls, DEL, the Unicode line and paragraph separators (YAML
# and some readers of control files break lines there too) and surrogates
# (YAML's "\\ud800" escape yields one; no file can hold it as UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # newline and tab allowed


def _check_text(value: Any, path: FieldPath, report: _Report) -> None:
    """Every string is one line without control characters, except the few
    fields that are text (description, copyright, steps). A newline in a
    name or a relation would otherwise start a new field in a control file."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(item, path + (key,), report)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, path + (index,), report)
    elif isinstance(value, str):
        multiline = path in MULTILINE_FIELDS or _is_step(path)
        found = (_CONTROL_IN_TEXT if multiline else _CONTROL).search(value)
        if found:
            what = "a control character other than newline or tab" if multiline else "must be one line without control characters"
            report.at_value(path, f"{what} (found {found.group()!r} at offset {found.start()})")
            report.broken.add(path)


def _below(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _check_paths(data: dict[str, Any], report: _Report) -> None:
    """Where the package puts things: a folder of its own, state and
    configuration inside it (purge and conffile rules depend on it)."""
    layout = data.get("layout") if isinstance(data.get("layout"), dict) else {}
    services = data.get("services") if isinstance(data.get("services"), dict) else {}
    prefix = layout.get("prefix", Layout.prefix)
    if not isinstance(prefix, str) or not _ecma_regex(_schema()["$defs"]["absPath"]["pattern"]).search(prefix):
        prefix = None  # already reported by the schema
    own = "is a shared system folder; the package needs a folder of its own"
    if isinstance(prefix, str) and prefix in SHARED_FOLDERS:
        report.at_value(("layout", "prefix"), f"{prefix} {own}, such as /var/qmail")
        prefix = None
    log_dir = services.get("log_dir")
    if isinstance(log_dir, str) and log_dir in SHARED_FOLDERS:
        report.at_value(("services", "log_dir"), f"{log_dir} {own}, such as /var/log/qmail")
    if not isinstance(prefix, str):
        return
    for kind in ("state", "config"):
        folders = layout.get(kind)
        for index, folder in enumerate(folders if isinstance(folders, list) else []):
            if isinstance(folder, str) and not _below(folder, prefix):
                report.at_value(("layout", kind, index), f"{folder} must be a folder inside layout.prefix ({prefix})")
    harvest = layout.get("harvest")
    for index, folder in enumerate(harvest if isinstance(harvest, list) else []):
        if not isinstance(folder, str):
            continue
        if folder in SHARED_FOLDERS:
            report.at_value(("layout", "harvest", index), f"{folder} {own}")
        elif folder == prefix or _below(folder, prefix) or _below(prefix, folder):
            report.at_value(("layout", "harvest", index), f"{folder} overlaps layout.prefix ({prefix}), which is harvested already")


def _step_lists(data: dict[str, Any]) -> Iterator[tuple[FieldPath, list]]:
    build = data.get("build")
    if isinstance(build, dict) and isinstance(build.get("steps"), list):
        yield ("build", "steps"), build["steps"]
    for index, target in _mappings(data.get("targets")):
        for key in _STEP_LISTS:
            if isinstance(target.get(key), list):
                yield ("targets", index, key), target[key]


def _check_step_options(data: dict[str, Any], report: _Report) -> None:
    """`if:` and `unless:` name an option the recipe declares."""
    declared = data.get("options") if isinstance(data.get("options"), dict) else {}
    for base, steps in _step_lists(data):
        for number, step in _mappings(steps):
            for key in ("if", "unless"):
                name = step.get(key)
                if isinstance(name, str) and name not in declared:
                    known = ", ".join(sorted(map(str, declared))) or "none"
                    report.at_value(base + (number, key), f"unknown option {_show(name)} (options: {known})")


def _check_references(data: dict[str, Any], recipe_path: Path, report: _Report) -> None:
    _check_paths(data, report)
    _check_step_options(data, report)
    sources = _check_sources(data, report)
    _check_accounts(data.get("accounts"), ("accounts",), report)
    targets = _check_targets(data, report)
    _check_patches(data, recipe_path, sources, targets, report)


# --------------------------------------------------------------------------
# conversion (only of data that passed every check)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


def _package(raw: dict[str, Any]) -> PackageMeta:
    return PackageMeta(**raw)


def _source(raw: dict[str, Any]) -> Source:
    digests = {algo: raw[algo].lower() for algo in ("sha256", "sha512", "md5") if algo in raw}
    return Source(
        name=raw["name"], filename=raw["filename"], urls=_strings(raw["urls"]), size=raw.get("size"), **digests
    )


def _accounts(raw: dict[str, Any]) -> Accounts:
    return Accounts(
        groups=tuple(Group(**group) for group in raw["groups"]),
        users=tuple(User(**user) for user in raw["users"]),
    )


def _tuples(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: _strings(value) if isinstance(value, list) else value for key, value in raw.items()}


def _target(raw: dict[str, Any], data: dict[str, Any], patches: tuple[Patch, ...], position: Position) -> Target:
    build = data["build"]
    env = dict(build.get("env", {}))
    env.update(raw.get("env", {}))  # target wins, build's order is kept
    architectures = tuple(raw.get("architectures") or [raw.get("architecture", "amd64")])
    items = raw.get("steps_before", []) + raw.get("steps", build["steps"]) + raw.get("steps_after", [])
    steps = [item["run"] if isinstance(item, dict) else item for item in items]
    when = [_step_rule(item) for item in items]
    name = raw["name"]
    return Target(
        name=name,
        family=raw["family"],
        release=raw["release"],
        image=raw["image"],
        formats=_strings(raw["formats"]),
        make=raw.get("make", build.get("make", "make")),
        jobs=raw.get("jobs", build.get("jobs", 0)),
        env=tuple(env.items()),
        cflags=_strings(raw.get("cflags")),
        ldflags=_strings(build.get("ldflags")) + _strings(raw.get("ldflags")),
        steps=tuple(steps),
        patches=tuple(patch for patch in patches if not patch.targets or name in patch.targets),
        accounts=_accounts(raw.get("accounts", data.get("accounts"))),
        suite=raw.get("suite", ""),
        architecture=architectures[0],
        architectures=architectures,
        userland=raw.get("userland", raw["family"]),
        builder=raw.get("builder", platform_for(raw.get("userland", raw["family"])).default_builder),
        test_only=raw.get("test_only", False),
        source_date_epoch=build.get("source_date_epoch"),
        position=position,
        step_when=tuple(when) if any(when) else (),
    )


def _step_rule(item: Any) -> tuple[str, bool] | None:
    if isinstance(item, dict):
        return (item["if"], True) if "if" in item else (item["unless"], False)
    return None


def _patch(raw: dict[str, Any], recipe_path: Path) -> Patch:
    return Patch(
        file=_patch_file(recipe_path, raw["file"]),
        source=raw["source"],
        strip=raw.get("strip", 1),
        targets=_strings(raw.get("targets")),
        architectures=_strings(raw.get("architectures")),
    )


def _packagers():
    from builder.package import PACKAGERS

    return PACKAGERS.values()


def _convert(data: dict[str, Any], recipe_path: Path, report: _Report) -> Recipe:
    patches = tuple(_patch(raw, recipe_path) for raw in data.get("patches", []))
    return Recipe(
        path=recipe_path,
        package=_package(data["package"]),
        sources=tuple(_source(raw) for raw in data["sources"]),
        layout=Layout(**_tuples(data.get("layout", {}))),
        services=Services(**_tuples(data.get("services", {}))),
        targets=tuple(
            _target(raw, data, patches, report.value_position(("targets", index)))
            for index, raw in enumerate(data["targets"])
        ),
        options={packager.options_key: packager.options(data.get(packager.options_key, {}))
                 for packager in _packagers()},
        build_options=tuple(BuildOption(name, spec["default"], spec["description"])
                            for name, spec in data.get("options", {}).items()),
    )


# --------------------------------------------------------------------------


def _load(path: str | Path) -> tuple[list[str], Recipe | None]:
    report = _Report(file=str(path))
    text = _read(path, report)
    data = _parse(text, report) if text is not None else None
    if isinstance(data, dict):
        recipe_path = Path(path).absolute()
        _check_text(data, DOCUMENT, report)
        _check_schema(data, report)
        _check_references(data, recipe_path, report)
        if not report.found:
            return [], _convert(data, recipe_path, report)
    elif data is not None:
        report.at_value(DOCUMENT, f"a recipe must be a mapping of keys, not {_describe(data)}")
    elif not report.found:  # `---` alone or `~`: a document holding null
        report.add((1, 1), DOCUMENT, "empty recipe")
    return report.problems(), None
