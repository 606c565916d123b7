"""YAML read with positions: every value of a recipe, with the line and
column it was written at, so that every problem can be reported as
FILE:LINE:COL: field.path: message. The YAML is composed into nodes (which
carry marks) and walked into plain data by hand, filling a side table
path -> position, bounded against documents that expand (aliases) or nest
without end, and refusing a file that is not a regular UTF-8 file."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from builder.errors import kind_name, printable

FieldPath = tuple[Union[str, int], ...]


Position = tuple[int, int]  # 1-based line, column


DOCUMENT: FieldPath = ()


MAX_FILE_BYTES = 1 << 20  # the real recipe is 6 KB


MAX_NODES = 100_000  # aliases can expand exponentially ("billion laughs")


MAX_EXPANDED_CHARS = 4 << 20  # text after aliases are expanded: a 1 KB string aliased 10^5 times is not a recipe


MAX_DEPTH = 32  # recipes nest 6 deep; deeper data would only exhaust the stack later


MERGE_TAG = "tag:yaml.org,2002:merge"


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
class Report:
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


def position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _TooLarge(Exception):
    """The document expands beyond MAX_NODES values or MAX_EXPANDED_CHARS of text."""


class _Loader(yaml.SafeLoader):
    """Composes nodes only; _Walker builds the data so it can record positions."""


STEP_LISTS = ("steps", "steps_before", "steps_after")


def is_step(path: FieldPath) -> bool:
    """A step's shell text: an item of a step list, or the run: of one."""
    if len(path) >= 3 and path[-1] == "run" and isinstance(path[-2], int):
        return path[-3] in STEP_LISTS
    return len(path) >= 2 and isinstance(path[-1], int) and path[-2] in STEP_LISTS


class _Walker:
    """Turns a node tree into dicts/lists/scalars, recording positions."""

    def __init__(self, loader: _Loader, report: Report):
        self.loader = loader
        self.report = report
        self.count = 0
        self.chars = 0  # text walked so far, aliases counted every time they are used
        self.merged: dict[int, int] = {}  # id(mapping node) -> leading merged pairs

    def walk(self, node: Node, path: FieldPath, active: frozenset[int] = frozenset()) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        self.report.values[path] = position(node)
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
        self.report.add(position(node), path, message)
        self.report.broken.add(path)
        return None

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        self.chars += len(node.value)
        if self.chars > MAX_EXPANDED_CHARS:
            raise _TooLarge
        value, problem = self._construct(node)
        if not problem and is_step(path):
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
            return ("this unquoted step ends where ' #' starts a YAML comment; "
                    "write the step as a block (`- |`) or quote it")
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
            line = position(key_node)[0]
            if index >= merged:
                # keys brought in by `<<: *anchor` may be overridden; own keys not
                if key in own:
                    message = f"duplicate key {show(key)} (first at line {own[key]})"
                    self.report.add(position(key_node), key_path, message)
                    continue
                own[key] = line
            self.report.keys[key_path] = position(key_node)
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
            self.report.add(position(node), path, "a key must be a string, not a list or mapping")
            return None
        key, problem = self._construct(node)
        if isinstance(key, str):
            return key
        # YAML 1.1 reads `yes:`, `1:` or `~:` as a boolean, number or null
        self.report.add(position(node), path, problem or f"key {show(key)} must be a string (quote it)")
        return None


def show(value: Any, limit: int = 60) -> str:
    """repr() of a value from the recipe, cut short: it can be huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse(text: str, report: Report) -> Any:
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


def _report_yaml_error(error: yaml.MarkedYAMLError, text: str, report: Report) -> None:
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


def read_text(path: str | Path, report: Report) -> str | None:
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
