"""CI pipeline definitions for the recipe's targets: `qmail-pkg ci github|gitlab`.

A team adopting the tool gets a pipeline that does what we do by hand: one
job per target (build, then the whole install/upgrade/remove verification
and, for .deb targets, piuparts), an independent rebuild on a second runner
compared byte for byte, and publishing of the signed repositories on tags,
with the signing key only in the publishing job.

The files are rendered from templates whose only variable parts are the
recipe path, the target names, their builders and formats. Every such value
is written as a double-quoted YAML scalar (the `yaml` filter): a target
named `on`, `1.10` or `2024-01-01` stays a string for every YAML reader, and
no value can end a line. Values never reach a shell as text: the recipe
path is an environment variable of the pipeline (RECIPE) and the target the
matrix's own (TARGET), both quoted where the scripts use them.

The file is written through a descriptor of its folder, never following a
link: a temporary file made with O_EXCL beside it, then renamed over it.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from . import __version__
from .errors import QmailPkgError, kind_name, printable
from .recipe.model import Recipe

PROVIDERS = ("github", "gitlab")
TEMPORARY_ATTEMPTS = 8  # names are 64 random bits: a clash means someone planted files
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class CiError(QmailPkgError):
    """The pipeline cannot be written as asked."""


def yaml_string(value: str) -> str:
    """`value` as a double-quoted YAML scalar: printable ASCII as is, every
    other character escaped (\\n, \\u00e9, \\U0001f600; JSON's syntax but for
    the last), so that no reader types it or breaks a line in it."""
    if not isinstance(value, str):
        raise TypeError(f"refusing to write {value!r} into a pipeline: only strings are written")
    out = []
    for char in value:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _templates() -> Environment:
    environment = Environment(loader=PackageLoader("builder", "ci_templates"), undefined=StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)
    environment.filters["yaml"] = yaml_string
    return environment


def render_pipeline(provider: str, recipe: Recipe, recipe_path: str) -> str:
    if provider not in PROVIDERS:
        raise CiError(f"unknown CI provider {printable(repr(provider))}; expected one of {', '.join(PROVIDERS)}")
    if provider == "github" and "${{" in recipe_path:
        # GitHub evaluates ${{ }} in every value of a workflow, quoted or not
        raise CiError(f"{printable(recipe_path)}: a recipe path holding '${{{{' cannot be written into a GitHub "
                      "workflow (GitHub would evaluate it as an expression); rename it")
    chosen = list(recipe.targets)
    targets = [t.name for t in chosen]
    formats = sorted({fmt for t in chosen for fmt in t.formats})
    # Docker targets build on any Linux runner; jail targets are sent to a
    # FreeBSD host over ssh (the builders engines) named in a CI variable.
    builders = {t.name: t.builder for t in chosen}
    groups: dict[str, list[str]] = {}
    for name, builder in builders.items():
        groups.setdefault(builder, []).append(name)
    return _templates().get_template(f"{provider}.yml.j2").render(
        recipe=recipe_path, targets=targets, formats=formats, builders=builders, groups=groups,
        **_settings(provider))


def _settings(provider: str) -> dict[str, str]:
    """The pipeline's own variables and their defaults: the tool installed
    from QMAIL_PKG_INSTALL (default: this version), more build flags and the
    source cache. On GitHub, repository variables fill them in."""
    install = f"qmail-pkg=={__version__}"
    if provider == "github":
        return {"install": f"${{{{ vars.QMAIL_PKG_INSTALL || '{install}' }}}}",
                "build_flags": "${{ vars.QMAIL_PKG_BUILD_FLAGS }}",
                "sources": "${{ vars.QMAIL_PKG_SOURCES || '.qmail-pkg-cache/sources' }}"}
    return {"install": install, "build_flags": ""}


def default_destination(provider: str) -> Path:
    return Path(".github/workflows/qmail-pkg.yml") if provider == "github" else Path(".gitlab-ci.yml")


def write_pipeline(destination: str | Path, text: str) -> None:
    """Write `text` to `destination` whole or not at all, never through a
    link: every folder on the way (created when missing) is opened with
    O_NOFOLLOW, the text goes into a new file of an unpredictable name made
    with O_EXCL in that folder, is synced, and is renamed over the
    destination, which may only be a regular file (or nothing yet)."""
    shown = printable(str(destination))
    raw = str(destination)
    path = Path(raw)
    if not raw or raw.endswith("/") or path.name in ("", ".", ".."):
        raise CiError(f"{shown or repr(raw)}: names a folder; give the pipeline's file name")
    try:
        folder = _open_folder(path.parent, shown)
    except OSError as exc:
        raise CiError(f"{shown}: cannot make its folder: {exc.strerror or exc}") from None
    try:
        _replace_in(folder, path.name, text.encode("utf-8"), shown)
    except OSError as exc:
        raise CiError(f"{shown}: cannot write: {exc.strerror or exc}") from None
    finally:
        os.close(folder)


def _open_folder(folder: Path, shown: str) -> int:
    """A descriptor of `folder`, made where missing, each component opened
    with O_NOFOLLOW from / or the current folder: a link on the way is refused."""
    fd = os.open("/" if folder.is_absolute() else ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folder.parts[1:] if folder.is_absolute() else folder.parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                kind = kind_name(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                raise CiError(f"{shown}: its folder {printable(repr(part))} is {kind}; "
                              "the pipeline is written only into real folders") from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _replace_in(folder: int, name: str, data: bytes, shown: str) -> None:
    try:
        existing = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise CiError(f"{shown}: {kind_name(existing.st_mode)}; a pipeline replaces only a regular file")
    temporary, fd = _new_temporary(folder, shown)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if existing is not None:
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))  # the file replaced keeps its permissions
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=folder)
        except FileNotFoundError:
            pass
        raise
    os.fsync(folder)  # the rename itself survives a power cut


def _new_temporary(folder: int, shown: str) -> tuple[str, int]:
    for _ in range(TEMPORARY_ATTEMPTS):
        name = f".qmail-pkg-{secrets.token_hex(8)}.tmp"
        try:
            return name, os.open(name, _NEW_FILE_FLAGS, 0o644, dir_fd=folder)
        except FileExistsError:
            continue  # planted or left over: never opened, never removed
    raise CiError(f"{shown}: no unused temporary name in its folder after {TEMPORARY_ATTEMPTS} tries; "
                  "something creates files there")
