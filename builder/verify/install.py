"""Install a built artifact into a clean sandbox and check the result against
the build's own record: layout (owners, modes, types), setuid, syncdir symbols."""

from __future__ import annotations

from pathlib import Path

from ..environment import open_sandbox, prepare_environment
from ..platforms import package_manager_for
from ..recipe.model import Recipe, Target
from ..record import BuildRecord
from .checks import CheckResult, installed_checks, put_artifact


def install_and_check(recipe: Recipe, target: Target, artifact: Path, record_path: Path) -> list[CheckResult]:
    record = BuildRecord.read(record_path)
    environment = prepare_environment(target, "verify")
    pm = package_manager_for(target)
    with open_sandbox(target, environment.reference, role="verify",
                      labels={"qmail-pkg.target": target.name}) as sandbox:
        if pm.prepare:
            sandbox.output(["sh", "-c", pm.prepare])
        command = pm.command("install", path=put_artifact(sandbox, artifact))
        code, out = sandbox.output(["sh", "-c", command + " 2>&1"])
        installed = CheckResult(f"{pm.name} installs it on a clean system", code == 0,
                                out.strip().splitlines()[-1] if out.strip() else "")
        if code != 0:
            return [installed]
        return [installed, *installed_checks(sandbox, recipe, target, record.staged_manifest)]
