"""The format's own linter as a gate: lintian for .deb (errors and warnings),
rpmlint for .rpm (errors), with the findings the recipe justifies
(debian.lintian_overrides are shipped in the package; rpm.rpmlint_filters
are applied here); the .pkg read-back checks for FreeBSD packages, which have
no linter of their own outside FreeBSD."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..package.pkg import file_sum, read_pkg, symlink_sum
from ..recipe.model import Recipe
from .checks import CheckResult


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True)


def lint_deb(artifact: Path, recipe: Recipe) -> CheckResult:
    if not shutil.which("lintian"):
        return CheckResult("lintian", False, "lintian is not installed (apt-get install lintian)")
    result = _run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", str(artifact)])
    findings = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    ok = result.returncode == 0 and not findings
    return CheckResult("lintian: no error or warning", ok, "; ".join(findings[:6]) or "clean")


def lint_rpm(artifact: Path, recipe: Recipe) -> CheckResult:
    if not shutil.which("rpmlint"):
        return CheckResult("rpmlint", False, "rpmlint is not installed (apt-get install rpmlint)")
    options = recipe.options.get("rpm")
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-rpmlint-") as tmp:
        rc = Path(tmp) / "rpmlintrc"
        rc.write_text("".join(f"addFilter({json.dumps(f)})\n" for f in getattr(options, "rpmlint_filters", ())))
        result = _run(["rpmlint", "-r", str(rc), str(artifact)])
    errors = [line for line in result.stdout.splitlines() if ": E: " in line]
    summary = next((line for line in result.stdout.splitlines() if "packages and" in line), result.stdout.strip()[-200:])
    return CheckResult("rpmlint: no error", not errors, "; ".join(errors[:6]) or summary.strip())


MANIFEST_KEYS = ("name", "version", "origin", "comment", "desc", "maintainer", "www", "abi", "arch", "prefix",
                 "flatsize", "licenselogic", "categories", "users", "groups", "files", "directories", "scripts")


def lint_pkg(artifact: Path, recipe: Recipe) -> CheckResult:
    """What pkg(8) relies on, read back: member order, manifest keys, every
    file's checksum and attributes, scripts present."""
    try:
        members, compact, full, contents = read_pkg(artifact)
    except Exception as exc:  # noqa: BLE001 - any unreadable archive is a failure to report
        return CheckResult("pkg read-back", False, f"unreadable: {exc}")
    problems = []
    names = [m.name for m in members]
    if names[:2] != ["+COMPACT_MANIFEST", "+MANIFEST"]:
        problems.append(f"first members are {names[:2]}, not +COMPACT_MANIFEST, +MANIFEST")
    missing = [key for key in MANIFEST_KEYS if key not in full]
    if missing:
        problems.append(f"manifest lacks {', '.join(missing)}")
    if any(key in compact for key in ("files", "directories", "scripts")):
        problems.append("the compact manifest carries files, directories or scripts")
    files = full.get("files", {})
    by_name = {m.name: m for m in members}
    for path, attrs in files.items():
        member = by_name.get(path)
        if member is None:
            problems.append(f"{path} in the manifest, not in the archive")
            continue
        want = symlink_sum(member.linkname) if member.issym() else file_sum(contents.get(path, b""))
        if attrs.get("sum") != want:
            problems.append(f"{path}: checksum {attrs.get('sum')} is not {want}")
        if (member.uname, member.gname, f"0{member.mode:o}".rjust(4, "0")) != (attrs["uname"], attrs["gname"], attrs["perm"]):
            problems.append(f"{path}: tar says {member.uname}:{member.gname} {member.mode:o}, manifest {attrs}")
    for name in names[2:]:
        if name not in files and name not in full.get("directories", {}):
            problems.append(f"{name} in the archive, not in the manifest")
    files_at = [i for i, n in enumerate(names) if n in files]
    dirs_at = [i for i, n in enumerate(names) if n in full.get("directories", {})]
    if files_at and dirs_at and max(files_at) > min(dirs_at):
        problems.append("folders come before files")
    for script in ("pre-install", "post-install", "pre-deinstall", "post-deinstall"):
        if script not in full.get("scripts", {}):
            problems.append(f"no {script} script")
    evidence = "; ".join(problems[:6]) or (
        f"{len(files)} files, {len(full.get('directories', {}))} folders, abi {full.get('abi')}, version {full.get('version')}")
    return CheckResult("pkg read-back: manifest, checksums, owners, modes, scripts", not problems, evidence)


LINTERS = {"deb": lint_deb, "rpm": lint_rpm, "pkg": lint_pkg}


def lint(artifact: Path, fmt: str, recipe: Recipe) -> CheckResult:
    return LINTERS[fmt](artifact, recipe)
