"""Errors a user can cause. The CLI prints them on one line and exits non-zero."""

from __future__ import annotations

import re
import stat

# What must never reach a terminal raw from text we were handed: C0 and C1
# controls and DEL (an ESC sequence can rewrite the screen, a newline forges
# a line), the Unicode line and paragraph separators, the bidirectional
# overrides and isolates (they reorder what is shown), and lone surrogates
# (undecodable bytes of a file name; printing them would raise).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


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


def printable(text: str) -> str:
    """text with every character that could break a line or the terminal
    written as its Python escape (a newline as \\n, ESC as \\x1b): a message
    quoting a hostile name stays one honest line."""
    return _UNPRINTABLE.sub(lambda found: repr(found.group())[1:-1], text)


def quoted(text: str, limit: int = 200) -> str:
    """A value we were handed, quoted for a one-line message: escaped, and
    cut short (it can be thousands of characters long)."""
    if len(text) <= limit:
        return f"'{printable(text)}'"
    return f"'{printable(text[:limit])}...' ({len(text)} characters)"


def kind_name(mode: int) -> str:
    """What a file is, for a message that refuses it ("a FIFO")."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "a special file"
