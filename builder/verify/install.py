"""Install a built artifact into a clean sandbox and check the result against
the build's own record: layout (owners, modes, types), setuid, syncdir symbols."""

from __future__ import annotations

from pathlib import Path

from ..recipe.model import Recipe, Target
from ..sandbox.docker import DockerSandbox
from ..sandbox.images import ensure_image, image_spec
from .checks import CheckResult, check_layout, check_setuid, check_syncdir_symbols, load_record, put_artifact

PROOF_BINARIES = ("qmail-queue", "qmail-local", "qmail-send", "qmail-clean")


def install_and_check(recipe: Recipe, target: Target, artifact: Path, record_path: Path) -> list[CheckResult]:
    record = load_record(record_path)
    spec = image_spec(target, "verify")
    ensure_image(spec)
    prefix = recipe.layout.prefix
    names = {u.name for u in target.accounts.users} | {g.name for g in target.accounts.groups}
    results: list[CheckResult] = []
    with DockerSandbox(spec.reference, role="verify", labels={"qmail-pkg.target": target.name}) as sandbox:
        path = put_artifact(sandbox, artifact)
        code, out = sandbox.output(["dpkg", "-i", path])
        results.append(CheckResult("dpkg -i on a clean system", code == 0, out.strip().splitlines()[-1] if out.strip() else ""))
        if code != 0:
            return results
        results.append(check_layout(sandbox, record["staged_manifest"], names, prefix))
        queue_user = next((u.name for u in target.accounts.users if u.name == "qmailq"), "qmailq")
        results.append(check_setuid(sandbox, f"{prefix}/bin/qmail-queue", queue_user))
        results.append(check_syncdir_symbols(sandbox, [f"{prefix}/bin/{name}" for name in PROOF_BINARIES]))
        code, out = sandbox.output(["dpkg", "--verify", recipe.package.name])
        results.append(CheckResult("dpkg --verify", code == 0 and not out.strip(), out.strip() or "no differences"))
    return results
