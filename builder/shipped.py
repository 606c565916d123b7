"""Folders the tool ships beside its code: the image definitions
(containers/) and the example recipe with its patches (recipes/).

In a checkout they are the repository's own top-level folders; in an
installed wheel (pip, pipx) the same folders are package data inside
builder/, so the tool works from a folder that holds only a user's recipes."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """containers or recipes, wherever this copy of the tool keeps them."""
    installed = _HERE / name
    return installed if installed.is_dir() else _HERE.parent / name


def example_recipe() -> Path:
    return shipped("recipes") / "qmail-syncdir.yaml"


def host_setup_script() -> Path:
    """The script `qmail-pkg setup-host` and `./run.sh setup` run (package data)."""
    return _HERE / "setup-host.sh"


__all__ = ["example_recipe", "host_setup_script", "shipped"]
