"""Build-sandbox commands for GNU userlands (Debian, and the RHEL family):
stripping binaries the way Debian's dh_strip does, without losing the
owners and setuid bits `make setup` gave them."""

from __future__ import annotations

from .base import Steps

# ELF files below the roots; stat and chown keep what strip's rewrite would drop.
STRIP_SCRIPT = r"""
find "$@" -type f -exec sh -c '
for f; do
    [ "$(od -An -N4 -tx1 "$f" | tr -d " ")" = 7f454c46 ] || continue
    mode=$(stat -c %a "$f")
    owner=$(stat -c %u:%g "$f")
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$f"
    chown "$owner" "$f"
    chmod "$mode" "$f"
done' sh {} +
"""


def strip_steps(roots: tuple[str, ...]) -> Steps:
    return [("strip binaries (dh_strip's options; owners and modes kept)", ("sh", "-eu", "-c", STRIP_SCRIPT, "strip", *roots))]
