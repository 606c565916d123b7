"""Install a built artifact into a clean sandbox and check the result against
the build's own record: layout (owners, modes, types), setuid, syncdir symbols."""

from __future__ import annotations

from pathlib import Path

from ..recipe.model import Recipe, Target
from ..sandbox.docker import DockerSandbox
from ..sandbox.images import ensure_image, image_spec
from .checks import CheckResult, installed_checks, load_record, put_artifact


def install_and_check(recipe: Recipe, target: Target, artifact: Path, record_path: Path) -> list[CheckResult]:
    record = load_record(record_path)
    spec = image_spec(target, "verify")
    ensure_image(spec)
    with DockerSandbox(spec.reference, role="verify", labels={"qmail-pkg.target": target.name}) as sandbox:
        code, out = sandbox.output(["dpkg", "-i", put_artifact(sandbox, artifact)])
        installed = CheckResult("dpkg -i on a clean system", code == 0, out.strip().splitlines()[-1] if out.strip() else "")
        if code != 0:
            return [installed]
        return [installed, *installed_checks(sandbox, recipe, target, record["staged_manifest"])]
