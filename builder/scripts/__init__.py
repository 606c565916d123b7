"""Maintainer scripts (install/upgrade/remove) and daemontools service files."""

from .model import ScriptModel, ServiceFile, ServiceSpec, StateEntry, script_model
from .render import render_library, render_maintainer_scripts, render_service_files, template_environment

__all__ = [
    "ScriptModel",
    "ServiceFile",
    "ServiceSpec",
    "StateEntry",
    "render_library",
    "render_maintainer_scripts",
    "render_service_files",
    "script_model",
    "template_environment",
]
