"""Errors a user can cause. The CLI prints them on one line and exits non-zero."""

from __future__ import annotations


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
