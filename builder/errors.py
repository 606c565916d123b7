"""Errors a user can cause. The CLI prints them on one line and exits non-zero."""

from __future__ import annotations

import re


class QmailPkgError(Exception):
    """Base for every error meant for the user rather than a traceback."""

    exit_code = 1


class RecipeError(QmailPkgError):
    """A recipe is invalid. Carries every problem, each already formatted as
    FILE:LINE:COL: field.path: message."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SourceError(QmailPkgError):
    """A source could not be found, fetched, verified or extracted."""


class BuildError(QmailPkgError):
    """The sandboxed build, harvesting or packaging failed."""


class SandboxError(BuildError):
    """The isolation backend (Docker engine, jail) is unusable."""


class VerifyError(QmailPkgError):
    """Verification could not run (not: a verification step failed)."""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """Hostile text made safe to quote in a one-line message: control
    characters (C0, C1, DEL) and Unicode line separators escaped."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)
