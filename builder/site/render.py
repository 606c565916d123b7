"""The pages, from the site's typed values, through Jinja templates with
autoescape on: every value is escaped, and before that made visible
(finalize): a control character, a bidirectional override or a
noncharacter from hostile text is written as its escape, so it can
neither reorder what is shown nor make the page invalid HTML.

The stylesheet is inlined and named by its sha256 in the page's Content
Security Policy, which allows nothing else: no script, no image, no font,
no request anywhere, whatever a string might have smuggled in."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..errors import printable
from .collect import href
from .model import FormatView, PackageView, Site

# Unicode noncharacters: not allowed in an HTML document
_NONCHARACTER = re.compile("[\ufdd0-\ufdef" + "".join(chr(plane << 16 | low) for plane in range(17)
                                                     for low in (0xFFFE, 0xFFFF)) + "]")
KINDS = (("verify", "Lifecycle (verify)"), ("piuparts", "piuparts"), ("lint", "Lint"),
         ("reproducible", "Reproducible"), ("power-cut", "Power cuts"))


def visible(value):
    """Text as it may be shown: line breaks kept, every other character that
    could hide or rearrange text escaped. Our own markup passes as it is."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    text = "\n".join(printable(line) for line in value.split("\n"))
    return _NONCHARACTER.sub(lambda found: f"\\U{ord(found.group()):08x}", text)


def size(value: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit} ({value} bytes)"
    return f"{value} bytes"


def _href(path: str) -> str:
    """A path of the tree we wrote (a key or snippet file) as a relative link."""
    return href(*(part for part in path.split("/") if part not in ("", ".", "..")))


def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("builder.site", "templates"), autoescape=True,
                              undefined=StrictUndefined, finalize=visible, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)
    environment.filters["size"] = size
    environment.filters["href"] = _href
    return environment


ENVIRONMENT = _environment()
CSS = resources.files("builder.site").joinpath("templates/style.css").read_text(encoding="utf-8").strip()
if "</" in CSS:
    raise RuntimeError("style.css must not hold '</': it is inlined into a <style> element")
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()


def _common(site: Site, root: str) -> dict:
    return {"site": site, "root": root, "css": Markup(CSS), "style_hash": STYLE_HASH, "kinds": KINDS}


def index_page(site: Site) -> bytes:
    return ENVIRONMENT.get_template("index.html.j2").render(_common(site, "")).encode()


def package_page(site: Site, view: FormatView, package: PackageView) -> bytes:
    root = "../" * (len(package.page_path) - 1)
    return ENVIRONMENT.get_template("package.html.j2").render(
        _common(site, root), view=view, package=package).encode()


__all__ = ["CSS", "KINDS", "index_page", "package_page", "size", "visible"]
