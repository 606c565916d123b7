"""Render maintainer scripts and daemontools service files from a ScriptModel.

All shell lives in templates/. Python only hands data to Jinja2, whose
`finalize` hook passes every `{{ value }}` through shlex.quote: a value from a
recipe can never become shell syntax, whatever it contains.
"""

from __future__ import annotations

import posixpath
import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

from .model import ScriptModel, ServiceFile

TEMPLATES = Path(__file__).resolve().parent / "templates"

# fmt -> (platform library the common functions call into, entry scripts)
FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "deb": ("linux", ("preinst", "postinst", "prerm", "postrm")),
}


def _quote(value: object) -> str:
    """finalize hook: every expression output is one shell word."""
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


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        finalize=_quote,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["octal"] = _octal
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


def _context(model: ScriptModel, platform: str, script: str) -> dict:
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
        "users": users,
        "control_dir": f"{prefix}/control",
        "alias_dir": model.user(model.alias_user).home,
        "alias_group": model.user(model.alias_user).group,
        "alias_maildir": any(line == "./Maildir/" for _, line in alias_lines),
        "alias_lines": alias_lines,
        "log_group": model.user(model.log_user).group,
        "state_roots": state_roots,
    }


def _render(name: str, context: dict) -> str:
    return _environment().get_template(name).render(context)


def render_maintainer_scripts(model: ScriptModel, fmt: str) -> dict[str, str]:
    """The maintainer scripts of one package format, by script name."""
    if fmt not in FORMATS:
        raise ValueError(f"no maintainer scripts for package format {fmt!r} (known: {', '.join(sorted(FORMATS))})")
    platform, scripts = FORMATS[fmt]
    return {script: _render(f"{fmt}/{script}.j2", _context(model, platform, script)) for script in scripts}


def render_library(model: ScriptModel, fmt: str = "deb") -> str:
    """Only the shared shell function library (what every script includes).

    Sourcing it defines the qs_* functions and the quoted recipe values and
    runs nothing else; tests call single functions this way.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown package format {fmt!r}")
    platform, _ = FORMATS[fmt]
    return _render("common/lib.sh.j2", _context(model, platform, "library"))


def render_service_files(model: ScriptModel) -> list[ServiceFile]:
    """qmail's rc, each service's run and log/run, and control/defaultdelivery."""
    platform = FORMATS["deb"][0]
    context = _context(model, platform, "service")
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
    return files
