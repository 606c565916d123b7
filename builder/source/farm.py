"""A source package rebuilt as a farm rebuilds it: in a clean container of
the target (the buildd image: build-essential, fakeroot and the declared
build dependencies, nothing else), with the network off, as a user that is
not root and without the qmail accounts. Debian: dpkg-source -x, then
dpkg-buildpackage -us -uc (source and binary, as a buildd's full build);
RPM: rpmbuild --rebuild of the SRPM. What comes back out is data: the files
the build wrote next to the source, bounded, never followed."""

from __future__ import annotations

import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..environment import open_sandbox, prepare_environment
from ..errors import BuildError, printable
from ..progress import Progress
from ..recipe.model import Target
from ..sandbox.images import BUILDD
from .base import SourceResult

USER = "builder"
HOME = f"/home/{USER}"
WORK = "/build/farm"  # under /build/, where dpkg-genbuildinfo records the Build-Path (as sbuild builds)
MAX_FILE = 1 << 30


@dataclass(frozen=True)
class Rebuild:
    files: tuple[Path, ...]  # what the farm's build wrote (.deb, .buildinfo, .changes; .rpm)
    log_path: Path
    seconds: float
    image: str


def _collect(sandbox, folder: str, suffixes: tuple[str, ...], out_dir: Path) -> list[Path]:
    """The regular files of `folder` (not below it) ending so, copied out."""
    found = []
    top = folder.rstrip("/").rsplit("/", 1)[-1]
    with sandbox.open_tar(folder) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = member.name.split("/")
            if (len(parts) != 2 or parts[0] != top or not member.isreg() or not parts[1].endswith(suffixes)
                    or parts[1].endswith(".src.rpm")):
                continue
            if member.size > MAX_FILE or parts[1].startswith(".") or "\\" in parts[1]:
                raise BuildError(f"{folder}/{printable(parts[1])}: not a file a farm's build leaves")
            handle = tar.extractfile(member)
            if handle is None:  # a regular member always has its data
                raise BuildError(f"{folder}/{printable(parts[1])}: no data in the tar stream")
            destination = out_dir / parts[1]
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out:
                while chunk := handle.read(1 << 16):
                    out.write(chunk)
            found.append(destination)
    return sorted(found)


def rebuild(target: Target, source: SourceResult, out_dir: Path, log_dir: Path, quiet: bool = False) -> Rebuild:
    """Build the source package in the target's buildd image; the results go to out_dir."""
    if source.kind not in COMMANDS:
        raise BuildError(f"{target.label}: a {source.kind} source package is not rebuilt here (a FreeBSD port "
                         "needs poudriere on a FreeBSD host)")
    log_path = log_dir / f"{target.label.replace('/', '-')}.rebuild-{source.kind}.log"
    progress = Progress(f"{target.label} rebuild {source.kind}", log_path, quiet=quiet)
    outcome = "failed"
    started = time.monotonic()
    try:
        progress.stage(f"environment {BUILDD}")
        environment = prepare_environment(target, BUILDD, progress.line)
        # what a farm is given: the source package itself (an SRPM is whole), not an upload's .changes
        files = [source.main] if source.kind == "srpm" else [
            path for path in source.files if path.is_file() and not path.name.endswith(".changes")]
        with open_sandbox(target, environment.reference, role="build",
                          labels={"qmail-pkg.target": target.name, "qmail-pkg.rebuild": source.kind}) as box:
            progress.stage("a user that is not root")
            code = box.run(["useradd", "-m", USER], on_output=progress.line)
            if code != 0:
                raise BuildError(f"{target.label}: useradd {USER} failed in {environment.reference}")
            for path in files:
                box.put_file(path.read_bytes(), f"{WORK}/{path.name}")
            box.put_file(COMMANDS[source.kind].read_bytes(), f"{HOME}/farm.sh")
            box.run(["chown", "-R", f"{USER}:{USER}", WORK])
            progress.stage(f"{source.kind} build as {USER}, network off")
            env = {"HOME": HOME, "LC_ALL": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
                   "DEB_BUILD_OPTIONS": f"parallel={os.cpu_count() or 1}"}
            code = box.run(["sh", f"{HOME}/farm.sh", source.main.name], env=env, workdir=WORK, user=USER,
                           on_output=progress.line)
            if code != 0:
                raise BuildError(f"{target.label}: the {source.kind} source package failed to build as a farm "
                                 f"builds it (exit {code}; log: {log_path})")
            out_dir.mkdir(parents=True, exist_ok=True)
            results = _collect(box, WORK, SUFFIXES[source.kind], out_dir)
        if not results:
            raise BuildError(f"{target.label}: the {source.kind} build left no package (log: {log_path})")
        outcome = "ok: " + ", ".join(path.name for path in results)
        return Rebuild(tuple(results), log_path, time.monotonic() - started, environment.reference)
    finally:
        progress.close(outcome)


# What a farm runs (templates/farm/<kind>.sh), given the source package's main file in $1.
FARM_SCRIPTS = Path(__file__).resolve().parent / "templates" / "farm"
COMMANDS = {kind: FARM_SCRIPTS / f"{kind}.sh" for kind in ("debian", "srpm")}
SUFFIXES = {"debian": (".deb", ".buildinfo", ".changes"), "srpm": (".rpm",)}

__all__ = ["COMMANDS", "Rebuild", "rebuild"]
