"""Render maintainer scripts and daemontools service files from a ScriptModel.

All shell lives in templates/. Python only hands data to Jinja2, whose
`finalize` hook passes every `{{ value }}` through shlex.quote: a value from a
recipe can never become shell syntax, whatever it contains.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

from .model import ScriptModel, ServiceFile

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Script names of a set that are not shell: rendered without shell quoting,
# every value still refused if it could break a line.
TEXT_SCRIPTS = {"templates": "templates.debconf.j2"}


class _Word(str):
    """A value already checked to be one plain shell word (see _word)."""


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./+-]+")


def _word(value: object) -> _Word:
    """filter `word`: a value written bare, for readers that look for
    literal text (lintian finds debconf templates by name); refused unless
    it is made only of characters that mean nothing to the shell."""
    text = str(value)
    if not _PLAIN_WORD.fullmatch(text):
        raise ValueError(f"refusing to write {text!r} as a bare shell word")
    return _Word(text)


def _quote(value: object) -> str:
    """finalize hook: every expression output is one shell word."""
    if isinstance(value, _Word):
        return value
    if value is None or isinstance(value, bool):
        raise TypeError(f"refusing to render {value!r} into shell")
    if isinstance(value, (str, int)):
        text = str(value)
        quoted = shlex.quote(text)
        # shlex leaves "safe" words bare; quote those too, so that a value is
        # always visibly one literal word (and `alias` is never a command).
        return quoted if quoted != text else f"'{text}'"
    raise TypeError(f"refusing to render a {type(value).__name__} into shell: {value!r}")


def _octal(mode: int) -> str:
    return format(mode, "04o")


def _one_line(value: object) -> str:
    """finalize hook of text (non-shell) templates: values are single lines."""
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"refusing to render {value!r} into a text template")
    text = str(value)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise ValueError(f"refusing to render {text!r}: a control character would break the file's lines")
    return text


def _unit_spec(value: object) -> str:
    """filter `unit_spec`: a value in a systemd unit setting that expands
    %-specifiers (paths in Condition*=): % written as %%."""
    return _one_line(value).replace("%", "%%")


def _unit_exec(value: object) -> str:
    """filter `unit_exec`: one word of an Exec*= command line. systemd splits
    those at spaces, unquotes C-style inside double quotes, expands
    %-specifiers and $VARIABLES: quoted, with all four escaped, the word
    reaches the program exactly as written."""
    text = _one_line(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _environment(text: bool = False) -> jinja2.Environment:
    return template_environment(TEMPLATES, text)


@lru_cache(maxsize=8)
def template_environment(folder: Path, text: bool = False) -> jinja2.Environment:
    """Jinja for the templates in `folder`, with these rules: in shell
    (text=False) every value one quoted word, in text every value one line;
    the same filters (octal, word, unit_spec, unit_exec)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        finalize=_one_line if text else _quote,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["octal"] = _octal
    env.filters["word"] = _word
    env.filters["unit_spec"] = _unit_spec
    env.filters["unit_exec"] = _unit_exec
    return env


def _alias_lines(model: ScriptModel) -> tuple[tuple[str, str], ...]:
    """(file name in ~alias, its one delivery line) for the three admin aliases.

    qmail never delivers to root (qmail-getpw skips uid 0), so mail for root
    lands in ~alias/.qmail-root. If the recipe sends postmaster mail to
    "root", .qmail-root therefore delivers into ~alias/Maildir/ itself and the
    other two forward to root; anything else is forwarded to by all three.
    """
    target = model.postmaster_alias_to.strip()
    if target.startswith(("&", "./", "/", "|")):
        line = target  # already a .qmail delivery instruction
    else:
        line = "&" + target
    root_line = "./Maildir/" if target in ("root", "&root") else line
    return ((".qmail-postmaster", line), (".qmail-mailer-daemon", line), (".qmail-root", root_line))


def _context(model: ScriptModel, platform: str, script: str, script_set: str = "") -> dict:
    prefix = model.prefix.rstrip("/") or "/"
    gids = {group.name: group.gid for group in model.accounts.groups}
    users = [(user, gids[user.group]) for user in model.accounts.users]
    alias_lines = _alias_lines(model)
    state_paths = {entry.path.rstrip("/") for entry in model.state}
    state_roots = [entry.path for entry in model.state
                   if posixpath.dirname(entry.path.rstrip("/")) not in state_paths]
    return {
        "m": model,
        "script": script,
        "platform": platform,
        "script_set": script_set,
        "renumber_question": f"{model.package}/renumber-accounts",
        "supervisor_question": f"{model.package}/supervisor",
        "users": users,
        "control_dir": f"{prefix}/control",
        "alias_dir": model.user(model.alias_user).home,
        "alias_group": model.user(model.alias_user).group,
        "alias_maildir": any(line == "./Maildir/" for _, line in alias_lines),
        "alias_lines": alias_lines,
        "log_group": model.user(model.log_user).group,
        "state_roots": state_roots,
    }


def _render(name: str, context: dict, text: bool = False) -> str:
    return _environment(text).get_template(name).render(context)


def render_maintainer_scripts(model: ScriptModel, script_set: str, names: tuple[str, ...]) -> dict[str, str]:
    """The maintainer scripts of one packager's set (templates/<script_set>/), by name."""
    if not (TEMPLATES / script_set).is_dir():
        raise ValueError(f"no maintainer script set {script_set!r} in {TEMPLATES}")
    scripts = {}
    for name in names:
        context = _context(model, model.script_platform, name, script_set)
        if name in TEXT_SCRIPTS:
            scripts[name] = _render(f"{script_set}/{TEXT_SCRIPTS[name]}", context, text=True)
        else:
            scripts[name] = _render(f"{script_set}/{name}.j2", context)
    return scripts


def render_library(model: ScriptModel, script_set: str) -> str:
    """Only the shared shell function library (what every script includes).

    Sourcing it defines the qs_* functions and the quoted recipe values and
    runs nothing else; tests call single functions this way. `script_set`
    is the packager's (its package-manager hooks are part of the library).
    """
    return _render("common/lib.sh.j2", _context(model, model.script_platform, "library", script_set))


def render_service_files(model: ScriptModel) -> list[ServiceFile]:
    """qmail's rc, each service's run and log/run, and control/defaultdelivery."""
    context = _context(model, model.script_platform, "service")
    prefix = model.prefix.rstrip("/") or "/"
    files = [ServiceFile(f"{prefix}/rc", _render("services/rc.j2", context), 0o755)]
    known = {path.name for path in (TEMPLATES / "services").iterdir()}
    for service in model.services:
        run, log_run = f"{service.name}.run.j2", f"{service.name}.log.run.j2"
        if run not in known or log_run not in known:
            raise ValueError(f"no run file templates for service {service.name!r}")
        service_context = dict(context, service=service,
                               service_log_dir=f"{model.log_dir.rstrip('/')}/{service.name}")
        directory = service.directory.rstrip("/")
        files.append(ServiceFile(f"{directory}/run", _render(f"services/{run}", service_context), 0o755))
        files.append(ServiceFile(f"{directory}/log/run", _render(f"services/{log_run}", service_context), 0o755))
    # Not shell: the .qmail-style delivery instruction qmail-start gets.
    files.append(ServiceFile(f"{prefix}/control/defaultdelivery", model.default_delivery + "\n", 0o644))
    files.extend(_unit_files(model, context))
    return files


def _unit_files(model: ScriptModel, context: dict) -> list[ServiceFile]:
    """One systemd unit per service, for hosts that supervise with systemd.
    Each runs what daemontools runs (rc, the smtpd run script)."""
    files = []
    for unit, name in model.units:
        service = next(s for s in model.services if s.name == name)
        template = f"services/{unit}.j2"
        if not (TEMPLATES / template).exists():
            raise ValueError(f"no systemd unit template for service {name!r}")
        unit_context = dict(context, marker=model.systemd_mark,
                            rc=f"{model.prefix.rstrip('/') or ''}/rc", run=f"{service.directory.rstrip('/')}/run")
        files.append(ServiceFile(f"{model.systemd_unit_dir.rstrip('/')}/{unit}",
                                 _render(template, unit_context, text=True), 0o644))
    return files
