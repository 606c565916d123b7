"""`qmail-pkg piuparts`: Debian's own package tester on a .deb, strictly.

piuparts installs the package in a chroot, removes it, installs it again
(--install-remove-install: the config-files-remaining state), purges it and
fails on anything left behind, modified or broken. Here it runs with no
--warn-on-* option, with adequate's findings fatal, on the target's own
verification image (exported once per image id into a cached base tarball:
no second bootstrap), with the Debian mirror from the host's apt
configuration. The chroot needs that mirror; piuparts needs root.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..environ import cache_folder
from ..environment import prepare_environment
from ..errors import VerifyError
from ..evidence import CheckResult, Evidence
from ..platforms import platform_for
from ..recipe.model import Target
from ..sandbox.docker import LABEL, client

BASES_ENV = "QMAIL_PKG_PIUPARTS_BASES"
# Strict: every finding fails the run. --no-upgrade-test: the package is not in
# the archive, there is nothing to upgrade from.
STRICT_OPTIONS = (
    "--no-upgrade-test",
    "--install-remove-install",
    "--fail-if-inadequate",
    "--fail-on-broken-symlinks",
    "--pedantic-purge-test",
)
# What piuparts itself ignores in newer releases than the host may have, each
# with the reason; never a path the package could have made.
IGNORED = (
    # debconf's dpkg-preconfigure (trixie and later) leaves this folder behind
    # for any package with a config script; piuparts 1.6.0 ignores it itself
    # (Debian bug #1092667), bookworm's 1.1.7 does not yet.
    "/var/cache/debconf/tmp.ci/",
)
TIMEOUT = 30 * 60  # piuparts bounds each command at 60 min; one run of ours is ~20 s
STOP_WAIT = 60  # after SIGINT, piuparts unmounts and removes its chroot


def bases_dir() -> Path:
    return cache_folder("piuparts-bases", BASES_ENV)


@dataclass
class PiupartsResult:
    target: str
    artifact: Path
    passed: bool
    seconds: float
    log: Path
    base: Path
    command: list[str]
    findings: list[str] = field(default_factory=list)  # ERROR/WARN lines and what they list

    def evidence(self, sha256: str) -> Evidence:
        said = "\n".join(self.findings) if self.findings else f"INFO: PASS: All tests. ({self.seconds:.1f} s)"
        check = CheckResult(f"piuparts {' '.join(STRICT_OPTIONS)} on {self.target}, no --warn-on-*: nothing "
                            "left after purge", self.passed, said)
        return Evidence.made("piuparts", self.artifact, sha256, self.passed, [check])

    def as_dict(self) -> dict:
        return {"target": self.target, "artifact": str(self.artifact), "passed": self.passed,
                "seconds": round(self.seconds, 1), "log": str(self.log), "base": str(self.base),
                "command": self.command, "findings": self.findings}


def _require_tools() -> None:
    missing = [tool for tool in ("piuparts", "adequate") if not shutil.which(tool)]
    if missing:
        raise VerifyError(f"{' and '.join(missing)} not installed (apt-get install piuparts adequate, "
                          "or qmail-pkg setup-host)")
    if os.geteuid() != 0:
        raise VerifyError("piuparts makes chroots and must run as root")


def _safe_name(reference: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", reference)


def base_tarball(target: Target, log: Callable[[str], None] = lambda line: None) -> Path:
    """The target's verification image as a gzipped tarball for --basetgz,
    made once per image id (`docker export` of a container never started)."""
    environment = prepare_environment(target, "verify", log)
    folder = bases_dir()
    name = _safe_name(environment.reference)
    base = folder / f"{name}@{environment.identity.split(':')[-1][:16]}.tgz"
    if base.is_file():
        return base
    folder.mkdir(parents=True, exist_ok=True)
    log(f"exporting {environment.reference} as the piuparts base {base}")
    engine = client()
    container = engine.containers.create(environment.reference, ["true"], network_mode="none",
                                         labels={LABEL: "piuparts-base", "qmail-pkg.target": target.name})
    handle, partial = tempfile.mkstemp(prefix=f".{name}-", suffix=".partial", dir=folder)
    os.close(handle)
    try:
        with gzip.open(partial, "wb", compresslevel=1) as out:
            for chunk in container.export(chunk_size=1 << 20):
                out.write(chunk)
        os.replace(partial, base)
    finally:
        container.remove(force=True)
        if os.path.exists(partial):
            os.unlink(partial)
    # Older bases of the same image reference are stale: the image changed.
    for old in folder.glob(f"{name}@*.tgz"):
        if old != base:
            old.unlink(missing_ok=True)
    return base


def piuparts_command(target: Target, artifact: Path, base: Path, mirror: str) -> list[str]:
    suite = target.suite or target.release
    # --defaults debian: piuparts would take Ubuntu's components on an Ubuntu host
    return ["piuparts", "--defaults", "debian", "--distribution", suite, "--mirror", mirror, "--basetgz", str(base),
            *STRICT_OPTIONS, *(f"--ignore={path}" for path in IGNORED), str(artifact)]


_FINDING = re.compile(r"^\d+m\d+\.\ds (ERROR|WARN): ")
_STAMP = re.compile(r"^\d+m\d+\.\ds \w+: ")


def findings_of(output: str) -> list[str]:
    """The ERROR and WARN lines of a piuparts log, each with the indented
    lines that follow it (the files it lists), without the run's last words."""
    found: list[str] = []
    taking = False
    for line in output.splitlines():
        match = _FINDING.match(line)
        if match:
            text = _STAMP.sub("", line, count=1)
            if match.group(1) == "WARN":
                text = f"WARN: {text}"  # an ERROR line says FAIL itself
            taking = text != "piuparts run ends."
            if taking:
                found.append(text)
        elif _STAMP.match(line):
            taking = False
        elif taking and line.strip():
            found.append(line.rstrip())
    return found


def _run(command: list[str], log_path: Path) -> tuple[int, str]:
    """piuparts with its output into the log; on Ctrl-C or SIGTERM it gets
    SIGINT, which makes it unmount and remove its chroot before exiting."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "LC_ALL": "C.UTF-8"})
        try:
            code = process.wait(timeout=TIMEOUT)
        except BaseException as exc:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise VerifyError(f"piuparts did not finish within {TIMEOUT // 60} min; see {log_path}") from None
            raise
    return code, log_path.read_text(encoding="utf-8", errors="replace")


def run_piuparts(target: Target, artifact: Path, *, log_path: Path | None = None,
                 progress: Callable[[str], None] = lambda line: None) -> PiupartsResult:
    """piuparts, strictly, on one .deb of a Debian target."""
    if "deb" not in target.formats:
        raise VerifyError(f"{target.name}: piuparts tests Debian packages; this target makes "
                          f"{', '.join(target.formats) or 'nothing'} for {target.family}")
    if target.builder != "docker":
        raise VerifyError(f"{target.name}: the piuparts base comes from the target's Docker image")
    if artifact.suffix != ".deb" or not artifact.is_file():
        raise VerifyError(f"{artifact}: no such .deb")
    # the package says which architecture's system it needs (arm64 runs
    # under qemu-user in the arm64 image's base, like verify)
    architecture = artifact.name.rsplit("_", 1)[-1].removesuffix(".deb")
    if architecture != "all" and architecture != target.architecture:
        if architecture not in target.architectures:
            raise VerifyError(f"{artifact.name} is built for {architecture}, which {target.name} does not list")
        target = target.for_architecture(architecture)
    _require_tools()
    mirror = platform_for(target.family).mirror()
    base = base_tarball(target, progress)
    log_path = log_path or artifact.with_name(f"{artifact.name}.piuparts.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = piuparts_command(target, artifact.resolve(), base, mirror)
    progress(f"piuparts on {artifact.name} ({target.suite or target.release}, base {base.name}); log: {log_path}")
    started = time.monotonic()
    code, output = _run(command, log_path)
    seconds = time.monotonic() - started
    findings = findings_of(output)
    # Strict: the exit code, piuparts' own verdict, and not a single warning.
    passed = code == 0 and re.search(r"INFO: PASS: All tests\.$", output, re.M) is not None and not findings
    if code == 0 and not passed and not findings:
        findings = ["piuparts exited 0 without saying PASS: All tests."]
    return PiupartsResult(target.name, artifact, passed, seconds, log_path, base, command, findings)
