"""What a schema cannot say: references between parts of a recipe (sources,
accounts, targets, patches, options), text that must be one line, and where
the package may put things. Run even when the schema failed, on whatever
looks right, so one pass reports every problem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from builder.recipe.model import Layout
from builder.recipe.schema import ecma_regex, format_families, schema
from builder.recipe.yamlpos import STEP_LISTS, FieldPath, Report, format_path, is_step, show

# Fields that may span lines (every other string is one line without control characters).
MULTILINE_FIELDS = {("package", "description"), ("package", "copyright")}


# Folders a prefix or log folder must never be: purge removes what the package made there.
SHARED_FOLDERS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
    "/usr/sbin", "/usr/share", "/var", "/var/cache", "/var/db", "/var/lib", "/var/log", "/var/mail",
    "/var/run", "/var/spool", "/var/tmp",
})


def _mapping(value: Any) -> dict[str, Any]:
    """The value when it is a mapping, else an empty one (the schema reports it)."""
    return value if isinstance(value, dict) else {}


def _mappings(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) for the items of a list that are mappings."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield index, item


def _check_unique(report: Report, base: FieldPath, items: Any, key: str, what: str) -> set[Any]:
    """Report repeated values of `key` among the list `items`; return the values."""
    first: dict[Any, int] = {}
    for index, item in _mappings(items):
        value = item.get(key)
        path = base + (index, key)
        if not isinstance(value, (str, int)) or isinstance(value, bool) or report.is_broken(path):
            continue
        if value in first:
            report.at_value(path, f"duplicate {what} {show(value)} (first at line {first[value]})")
        else:
            first[value] = report.line_of(path)
    return set(first)


def _check_sources(data: dict[str, Any], report: Report) -> set[str]:
    sources = data.get("sources")
    names = _check_unique(report, ("sources",), sources, "name", "source name")
    for index, source in _mappings(sources):
        if not source.get("sha256") and not source.get("sha512"):
            report.at_value(("sources", index), "no sha256 or sha512 checksum: a source must be pinned")
    return {name for name in names if isinstance(name, str)}


def _check_accounts(accounts: Any, base: FieldPath, report: Report) -> None:
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
            message = f"unknown group {show(group)} (declared: {known})"
            report.at_value(base + ("users", index, "group"), message)


def _check_targets(data: dict[str, Any], report: Report) -> set[str]:
    targets = data.get("targets")
    names = _check_unique(report, ("targets",), targets, "name", "target name")
    for index, target in _mappings(targets):
        base: FieldPath = ("targets", index)
        family, formats = target.get("family"), target.get("formats")
        if isinstance(family, str) and isinstance(formats, list):
            families = format_families()
            for number, fmt in enumerate(formats):
                needed = families.get(fmt) if isinstance(fmt, str) else None
                if needed and family in families.values() and needed != family:
                    report.at_value(
                        base + ("formats", number), f"format {fmt!r} needs family {needed!r}, not {family!r}"
                    )
        cross = target.get("cross")
        listed = target.get("architectures") or [target.get("architecture", "amd64")]
        if isinstance(cross, dict) and isinstance(cross.get("architectures"), list) and isinstance(listed, list):
            for number, arch in enumerate(cross["architectures"]):
                if isinstance(arch, str) and arch not in listed:
                    report.at_value(base + ("cross", "architectures", number),
                                    f"{show(arch)} is not one of the target's architectures "
                                    f"({', '.join(map(str, listed))})")
        if "architecture" in target and "architectures" in target:
            report.at_key(base + ("architectures",), "give architecture or architectures, not both")
        if "accounts" in target:
            _check_accounts(target["accounts"], base + ("accounts",), report)
        elif "accounts" not in data:
            report.at_key(base, "no accounts: declare them in this target or at the top level")
    return {name for name in names if isinstance(name, str)}


def patch_file(recipe_path: Path, file: str) -> Path:
    return (recipe_path.parent / "patches" / file).resolve()


def _check_patches(
    data: dict[str, Any], recipe_path: Path, sources: set[str], targets: set[str], report: Report
) -> None:
    for index, patch in _mappings(data.get("patches")):
        base: FieldPath = ("patches", index)
        file = patch.get("file")
        # a path leaving patches/ is already refused by the schema
        if isinstance(file, str) and file and not file.startswith("/") and ".." not in Path(file).parts:
            resolved = patch_file(recipe_path, file)
            if not resolved.is_file():
                report.at_value(base + ("file",), f"patch file not found: {resolved}")
        source = patch.get("source")
        if isinstance(source, str) and source not in sources:
            known = ", ".join(sorted(sources)) or "none"
            report.at_value(base + ("source",), f"unknown source {show(source)} (sources: {known})")
        names = patch.get("targets")
        for number, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in targets:
                report.at_value(base + ("targets", number), f"unknown target {show(name)}")


# C0 and C1 controls, DEL, the Unicode line and paragraph separators (YAML
# and some readers of control files break lines there too) and surrogates
# (YAML's "\\ud800" escape yields one; no file can hold it as UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")  # newline and tab allowed


def check_text(value: Any, path: FieldPath, report: Report) -> None:
    """Every string is one line without control characters, except the few
    fields that are text (description, copyright, steps). A newline in a
    name or a relation would otherwise start a new field in a control file."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(item, path + (key,), report)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, path + (index,), report)
    elif isinstance(value, str):
        multiline = path in MULTILINE_FIELDS or is_step(path)
        found = (_CONTROL_IN_TEXT if multiline else _CONTROL).search(value)
        if found:
            what = ("a control character other than newline or tab" if multiline
                    else "must be one line without control characters")
            report.at_value(path, f"{what} (found {found.group()!r} at offset {found.start()})")
            report.broken.add(path)


def _below(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _check_paths(data: dict[str, Any], report: Report) -> None:
    """Where the package puts things: a folder of its own, state and
    configuration inside it (purge and conffile rules depend on it)."""
    layout = _mapping(data.get("layout"))
    services = _mapping(data.get("services"))
    prefix = layout.get("prefix", Layout.prefix)
    if not isinstance(prefix, str) or not ecma_regex(schema()["$defs"]["absPath"]["pattern"]).search(prefix):
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
            report.at_value(("layout", "harvest", index),
                            f"{folder} overlaps layout.prefix ({prefix}), which is harvested already")


def _step_lists(data: dict[str, Any]) -> Iterator[tuple[FieldPath, list]]:
    build = data.get("build")
    if isinstance(build, dict) and isinstance(build.get("steps"), list):
        yield ("build", "steps"), build["steps"]
    for index, target in _mappings(data.get("targets")):
        for key in STEP_LISTS:
            if isinstance(target.get(key), list):
                yield ("targets", index, key), target[key]


def _check_step_options(data: dict[str, Any], report: Report) -> None:
    """`if:` and `unless:` name an option the recipe declares."""
    declared = _mapping(data.get("options"))
    for base, steps in _step_lists(data):
        for number, step in _mappings(steps):
            for key in ("if", "unless"):
                name = step.get(key)
                if isinstance(name, str) and name not in declared:
                    known = ", ".join(sorted(map(str, declared))) or "none"
                    report.at_value(base + (number, key), f"unknown option {show(name)} (options: {known})")


PHASES = ("prepare", "build", "install")


def _check_step_phases(data: dict[str, Any], report: Report) -> None:
    """In every target's steps, as a build runs them (steps_before, the build's
    or its own steps, steps_after), the phases come in order: every change to
    the sources before anything is compiled, so that a source package can
    carry those changes as patches and its build run the rest."""
    build = _mapping(data.get("build"))
    for index, target in _mappings(data.get("targets")):
        items: list[tuple[FieldPath, Any]] = []
        for key in ("steps_before", "steps", "steps_after"):  # the order a build runs them in
            own = target.get(key)
            base: FieldPath = ("targets", index, key)
            if key == "steps" and own is None:
                base, own = ("build", "steps"), build.get("steps")
            if isinstance(own, list):
                items += [(base + (number,), item) for number, item in enumerate(own)]
        reached = 0
        where: FieldPath = ()
        for path, item in items:
            phase = item.get("phase", "build") if isinstance(item, dict) else "build"
            if phase not in PHASES:
                continue  # the schema says so already
            if PHASES.index(phase) < reached:
                report.at_value(path, f"{phase} step after the {PHASES[reached]} step at {format_path(where)} in "
                                      f"target {show(target.get('name'))}: steps run prepare, then build, then install")
                break
            if PHASES.index(phase) > reached:
                reached, where = PHASES.index(phase), path


def check_references(data: dict[str, Any], recipe_path: Path, report: Report) -> None:
    _check_paths(data, report)
    _check_step_options(data, report)
    _check_step_phases(data, report)
    sources = _check_sources(data, report)
    _check_accounts(data.get("accounts"), ("accounts",), report)
    targets = _check_targets(data, report)
    _check_patches(data, recipe_path, sources, targets, report)
