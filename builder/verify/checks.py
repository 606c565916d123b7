"""Checks on an installed system inside a sandbox. Each returns a CheckResult
with the evidence it saw, so reports say why something passed or failed."""

from __future__ import annotations

from pathlib import Path

from ..errors import QmailPkgError
from ..evidence import CheckResult
from ..platforms import package_manager_for
from ..recipe.model import Accounts, Recipe, Target
from ..record import ManifestEntry
from ..staged import Entry, IdNames, read_tree

SYNCDIR_SYMBOLS = ("open", "link", "rename", "unlink")
# The programs that touch the queue or a Maildir: each must carry syncdir.
PROOF_BINARIES = ("qmail-queue", "qmail-local", "qmail-send", "qmail-clean")
PACKAGE_DROP = "/tmp/qmail-pkg-artifacts"


def put_artifact(sandbox, artifact: Path) -> str:
    dest = f"{PACKAGE_DROP}/{artifact.name}"
    sandbox.put_file(artifact.read_bytes(), dest)
    return dest


def installed_entries(sandbox, root: str, accounts: Accounts) -> dict[str, Entry]:
    """What is installed below root, by path (owners by name; ids no account has as #id)."""
    with sandbox.open_tar(root) as stream:
        return {e.path: e for e in read_tree(stream, root, IdNames.of(accounts), None, strict=False)}


def check_layout(sandbox, manifest: tuple[ManifestEntry, ...], accounts: Accounts, prefix: str) -> CheckResult:
    """Every entry of the build's staged manifest exists installed with the same type, owner, group and mode."""
    try:
        installed = installed_entries(sandbox, prefix, accounts)
    except QmailPkgError as exc:
        return CheckResult("layout", False, f"cannot read {prefix}: {exc}")
    wrong = []
    checked = 0
    for row in manifest:
        if not row.path.startswith(prefix):
            continue
        checked += 1
        entry = installed.get(row.path)
        if entry is None:
            wrong.append(f"missing {row.path}")
            continue
        # a symlink's mode and owner mean nothing: its kind is what counts
        width = 1 if row.kind == "symlink" else 4
        want = (row.kind, row.mode, row.owner, row.group)[:width]
        have = (entry.kind, entry.mode, entry.owner, entry.group)[:width]
        if want != have:
            wrong.append(f"{row.path}: want {row.kind} {row.mode:04o} {row.owner}:{row.group}, have {entry.describe()}")
    if wrong:
        return CheckResult("layout", False, f"{len(wrong)} of {checked} entries differ: " + "; ".join(wrong[:8]))
    return CheckResult("layout", True, f"{checked} entries below {prefix} match the build manifest")


def check_syncdir_symbols(sandbox, binaries: list[str]) -> CheckResult:
    """The binaries define open/link/rename/unlink themselves (syncdir), not import them from libc."""
    problems, seen = [], []
    for binary in binaries:
        code, out = sandbox.output(["nm", "-D", binary])
        if code != 0:
            problems.append(f"nm -D {binary} failed: {out.strip()[:200]}")
            continue
        defined = {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3 and line.split()[1] == "T"}
        missing = [name for name in SYNCDIR_SYMBOLS if name not in defined]
        if missing:
            problems.append(f"{binary} imports {','.join(missing)} from libc")
        else:
            seen.append(binary.rsplit("/", 1)[-1])
    if problems:
        return CheckResult("syncdir symbols", False, "; ".join(problems))
    return CheckResult("syncdir symbols", True, f"T open/link/rename/unlink in {', '.join(seen)}")


def check_setuid(sandbox, path: str, owner: str) -> CheckResult:
    code, out = sandbox.output(["stat", "-c", "%a %U", path])
    ok = code == 0 and out.strip() == f"4711 {owner}"
    return CheckResult(f"setuid {path}", ok, f"stat: {out.strip()}")


def installed_checks(sandbox, recipe: Recipe, target: Target, manifest: tuple[ManifestEntry, ...]) -> list[CheckResult]:
    """What a fresh install must look like: the build's layout, a setuid
    qmail-queue, syncdir linked in, and nothing the package manager would call altered."""
    prefix = recipe.layout.prefix
    pm = package_manager_for(target)
    code, out = sandbox.output(["sh", "-c", pm.command("verify", name=recipe.package.name) + " 2>&1"])
    return [
        check_layout(sandbox, manifest, target.accounts, prefix),
        check_setuid(sandbox, f"{prefix}/bin/qmail-queue", "qmailq"),
        check_syncdir_symbols(sandbox, [f"{prefix}/bin/{name}" for name in PROOF_BINARIES]),
        CheckResult(f"{pm.name} verifies the installed files", code == 0 and not out.strip(),
                    out.strip() or "no differences"),
    ]



