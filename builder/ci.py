"""CI pipeline definitions for the recipe's targets: `qmail-pkg ci github|gitlab`.

A team adopting the tool gets a pipeline that does what we do by hand: one
job per target (build, then the whole install/upgrade/remove verification
and, for .deb targets, piuparts), an independent rebuild on a second runner
compared byte for byte, and publishing of the signed repositories on tags,
with the signing key only in the publishing job. The files are rendered from templates so the only
variable parts, the recipe path and the target names, are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from .errors import QmailPkgError

PROVIDERS = ("github", "gitlab")
# what may appear unquoted in a YAML flow list and a shell word
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class CiError(QmailPkgError):
    """The pipeline cannot be written as asked."""


def render_pipeline(provider: str, recipe, recipe_path: str) -> str:
    if provider not in PROVIDERS:
        raise CiError(f"unknown CI provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    # Test-only targets prove formats on a foreign userland; a team's pipeline
    # ships real ones. A recipe with only test targets still gets a pipeline.
    chosen = [t for t in recipe.targets if not t.test_only] or list(recipe.targets)
    targets = [t.name for t in chosen]
    formats = sorted({fmt for t in chosen for fmt in t.formats})
    # Docker targets build on any Linux runner; jail targets are sent to a
    # FreeBSD host over ssh (the builders engines) named in a CI variable.
    builders = {t.name: t.builder for t in chosen}
    groups: dict[str, list[str]] = {}
    for name, builder in builders.items():
        groups.setdefault(builder, []).append(name)
    for word in (recipe_path, *targets):
        if not _SAFE.match(word):
            raise CiError(f"{word!r} cannot be written into a pipeline unquoted; rename it (letters, digits, . _ / -)")
    templates = Environment(loader=PackageLoader("builder", "ci_templates"), undefined=StrictUndefined,
                            keep_trailing_newline=True, autoescape=False)
    return templates.get_template(f"{provider}.yml.j2").render(recipe=recipe_path, targets=targets, formats=formats,
                                                                   builders=builders, groups=groups)


def default_destination(provider: str) -> Path:
    return Path(".github/workflows/qmail-pkg.yml") if provider == "github" else Path(".gitlab-ci.yml")
