"""Build-sandbox commands for GNU userlands (Debian, and the RHEL family):
stripping binaries the way Debian's dh_strip does, without losing the
owners and setuid bits `make setup` gave them."""

from __future__ import annotations

import shlex

from .base import Steps

# How the build strips one ELF file, as dh_strip does ($STRIP, the
# target's strip, in place of the first word when cross-compiling) (qmail links with -s:
# no debug information is lost, only what a program does not need).
GNU_STRIP = ("strip", "--remove-section=.comment", "--remove-section=.note", "--strip-unneeded")

# The name a binary is stripped into before it is renamed over the original.
# The library probe, which runs meanwhile, must not read these half-written
# files: it skips names ending so.
STRIP_SUFFIX = ".qmail-pkg-strip"

# ELF files below the roots (found by one perl, which every GNU build image
# has); each is stripped into a new file that gets the owner and mode back
# and is renamed over the original: whoever reads the binaries meanwhile
# (the library probe) sees the old file or the new one, never half of one.
STRIP_SCRIPT = r"""
find "$@" -type f -print0 | perl -0ne 'chomp; open(my $f, "<", $_) or next;
    read($f, my $magic, 4); print "$_\n" if $magic eq "\x7fELF"' |
while IFS= read -r f; do
    mode=$(stat -c %a "$f")
    owner=$(stat -c %u:%g "$f")
    "${STRIP:-strip}" @STRIP_OPTIONS@ -o "$f@STRIP_SUFFIX@" "$f"
    chown "$owner" "$f@STRIP_SUFFIX@"
    chmod "$mode" "$f@STRIP_SUFFIX@"
    mv -f "$f@STRIP_SUFFIX@" "$f"
done
""".replace("@STRIP_SUFFIX@", STRIP_SUFFIX).replace("@STRIP_OPTIONS@", shlex.join(GNU_STRIP[1:]))


def strip_steps(roots: tuple[str, ...]) -> Steps:
    return [("strip binaries (dh_strip's options; owners and modes kept)",
             ("sh", "-eu", "-c", STRIP_SCRIPT, "strip", *roots))]
