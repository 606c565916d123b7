"""The packaging folder every source package carries (builder/source/
templates/common/): env.sh (the steps' environment), build.sh (the recipe's
build steps, each kept verbatim in steps/), install-tree.sh (the staged tree,
owners and modes included) and root/ (the packaging's own files: service
files, units, copyright). Shell comes from templates with every value one
quoted word; each format places the folder where its build finds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..platforms import platform_for
from ..scripts import template_environment
from .base import SourceSpec
from .run import step_comment

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class PackagingFile:
    path: str  # relative to the packaging folder
    content: bytes
    mode: int


@dataclass(frozen=True)
class _Step:
    title: str
    file: str


def spec_text(value: object) -> str:
    """filter `spec`: a value in an RPM spec, where % starts a macro."""
    return str(value).replace("%", "%%")


def make_text(value: object) -> str:
    """filter `make`: a value in a Makefile, where $ expands and # starts a comment."""
    return str(value).replace("$", "$$").replace("#", "\\#")


def render(name: str, context: dict, text: bool = False) -> str:
    """A template below builder/source/templates: shell (values quoted) or text (values one line)."""
    environment = template_environment(TEMPLATES, text)
    environment.filters.setdefault("spec", spec_text)
    environment.filters.setdefault("make", make_text)
    return environment.get_template(name).render(context)


def env_script(spec: SourceSpec) -> str:
    env = [(key, value) for key, value in spec.env if key != "SOURCE_DATE_EPOCH"]
    folders = [(upstream.name.upper(), f"/{upstream.folder}" if upstream.folder else "") for upstream in spec.upstreams]
    return render("common/env.sh.j2", {"env": env, "folders": folders, "epoch": spec.plan.source_date_epoch})


def install_script(spec: SourceSpec, items=None) -> str:
    items = spec.install if items is None else items
    return render("common/install-tree.sh.j2", {
        "dirs": [item for item in items if item.kind == "dir"],
        "files": [item for item in items if item.kind == "file"],
        "links": [item for item in items if item.kind == "symlink"],
        "strip": platform_for(spec.target.family).strip_command,
    })


def packaging_files(spec: SourceSpec, items=None, extra: tuple[tuple[str, bytes], ...] = ()) -> list[PackagingFile]:
    """Everything of the packaging folder, by path inside it. `items` and
    `extra` let a format add its own files (Debian: lintian overrides)."""
    steps = [_Step((step_comment(script) or (f"step {index}",))[0], f"steps/{index:02d}.sh")
             for index, script in enumerate(spec.build_steps, 1)]
    files = [
        PackagingFile("env.sh", env_script(spec).encode(), 0o644),
        PackagingFile("build.sh", render("common/build.sh.j2", {"steps": steps}).encode(), 0o755),
        PackagingFile("install-tree.sh", install_script(spec, items).encode(), 0o755),
    ]
    files += [PackagingFile(step.file, script.encode(), 0o644)
              for step, script in zip(steps, spec.build_steps, strict=True)]
    files += [PackagingFile(f"root{path}", content, 0o644) for path, content in (*spec.files, *extra)]
    return sorted(files, key=lambda item: item.path)


__all__ = ["PackagingFile", "env_script", "install_script", "make_text", "packaging_files", "render", "spec_text"]
