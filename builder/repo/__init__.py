"""Signed package repositories from what `qmail-pkg build` wrote.

One tree serves every target: an apt archive at the top (pool/, dists/
with one suite per Debian release), rpm/<target>/ for each RHEL-family
target, and freebsd/<ABI>/ for each FreeBSD one. publish.py runs a publish:
admit.py verifies every artifact before anything is signed, then each
format's writer (named by its packager: apt.py, rpm.py, freebsd.py) adds to
the tree. base.py holds what they share.

Rules every writer keeps:
- Nothing is signed that was not verified (admit.py), and every write goes
  through folder descriptors that never follow a link (builder/safefs.py).
- A published file never changes: publishing the same version again with
  other content is refused (the identity of each published file is kept in
  .qmail-pkg/published.json); the same bytes again change nothing.
- Indexes are regenerated so that a reader never sees a half-written one:
  new content goes beside the old under new names, and the file that
  points at it (Release, repomd.xml, the catalogue) is replaced last.
- Old versions stay unless --prune N keeps only the newest N.

This module imports nothing: packagers import their writer from here
(builder/package/), and the publish imports the packagers.
"""
