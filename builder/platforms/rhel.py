"""The RHEL family (AlmaLinux, Rocky, RHEL): rpm as the package manager,
`.elN` in the release so builds for EL 8 and 9 never share a version.

Images come from the distribution's own base image (containers/rhel/
Dockerfile), which needs a container registry; this project's CI has none,
so its RPM test target builds on a Debian userland with Debian's rpm tools
and is marked test-only."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace

from ..errors import SandboxError
from ..recipe.model import Target
from ..sandbox.images import DEFINITION_LABEL, ImageSpec, containers_dir
from .base import (
    DAEMONTOOLS_PROGRAMS,
    GLIBC_INTERPRETERS,
    GLIBC_LIBRARIES,
    BinaryRules,
    PackageManager,
    Platform,
    Steps,
)
from .gnu import GNU_STRIP, STRIP_SUFFIX, strip_steps

# rpm's own dependency generator (rpm-build on RHEL, Debian's rpm package),
# on the ELF files below the given roots.
RPMDEPS_SCRIPT = r"""
find "$@" -type f ! -name '*@STRIP_SUFFIX@' -exec sh -c '
for f; do
    [ "$(od -An -N4 -tx1 "$f" | tr -d " ")" = 7f454c46 ] && printf "%s\n" "$f"
done; :' sh {} + | sort | tr '\n' '\0' | xargs -0 -r /usr/lib/rpm/rpmdeps --requires
""".replace("@STRIP_SUFFIX@", STRIP_SUFFIX)
_CAPABILITY = re.compile(r"[A-Za-z0-9_.+-]+(\([^()\s]*\))*")

# Each EL release's glibc (what its binaries may need at most).
GLIBC = {"8": "2.28", "9": "2.34", "10": "2.39"}

RPM = PackageManager(
    name="rpm",
    install="rpm -i {path}",
    # --replacepkgs: verification also "upgrades" a package over itself
    upgrade="rpm -U --replacepkgs {path}",
    remove="rpm -e {name}",
    purge=None,  # rpm has no purge: erase keeps what the scripts made
    verify="rpm -V {name}",
    version="rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {name}",
    installed="rpm -q {name} >/dev/null 2>&1",
    # SUPERVISOR= in /etc/sysconfig/<name>, then a reinstall (what
    # `dnf reinstall` runs), whose %post acts on it
    switch_supervisor="mkdir -p /etc/sysconfig && touch /etc/sysconfig/{name}"
                      " && sed -i '/^SUPERVISOR=/d' /etc/sysconfig/{name}"
                      " && echo SUPERVISOR={supervisor} >> /etc/sysconfig/{name} && {reinstall}",
    switch_supervisor_file="/etc/sysconfig/{name}",
)


class RhelPlatform(Platform):
    family = "rhel"
    script_platform = "linux"
    # EL's own repositories carry neither: the administrator's repository or a build from source
    program_install = "dnf install {package} (from a repository that carries it; EL's own do not)"
    program_packages = {"tcpserver": "ucspi-tcp", **dict.fromkeys(DAEMONTOOLS_PROGRAMS, "daemontools")}
    strip_command = GNU_STRIP
    noise_paths = (r"^/var/lib/(rpm|dnf|alternatives)(/|$)", r"^/var/cache/(dnf|ldconfig)(/|$)",
                   r"^/var/log/(dnf|hawkey)", r"^/etc/(passwd|group|shadow|gshadow)-$")
    package_manager = RPM
    arch_names = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686"}
    # /usr/sbin/sendmail belongs to the "mta" alternative: the scripts register qmail there.
    ships_sendmail_links = False

    def version_suffix(self, target: Target) -> str:
        major = target.release.split(".")[0]
        return f".el{major}" if major.isdigit() else f".{major}"

    def package_manager_on(self, userland: str) -> PackageManager:
        if userland == self.family:
            return self.package_manager
        # rpm on another userland has an empty database: nothing can satisfy
        # the package's dependencies, so they are not checked there.
        return replace(self.package_manager,
                       install="rpm -i --nodeps {path}", upgrade="rpm -U --nodeps --replacepkgs {path}",
                       verify="rpm -V --nodeps {name}",
                       prepare="mkdir -p /var/lib/rpm && rpm --initdb")

    def finish_steps(self, roots: tuple[str, ...]) -> Steps:
        return strip_steps(roots)

    def glibc(self, target: Target) -> str:
        """The release's glibc: no binary may need a newer symbol version."""
        major = target.release.split(".")[0]
        if major not in GLIBC:
            raise ValueError(f"{target.name}: no glibc known for EL {target.release} (known: {', '.join(GLIBC)})")
        return GLIBC[major]

    def binary_rules(self, target: Target) -> BinaryRules:
        return BinaryRules(("ELFOSABI_SYSV", "ELFOSABI_LINUX"), GLIBC_INTERPRETERS[target.architecture],
                           GLIBC_LIBRARIES, "GLIBC_", tuple(int(part) for part in self.glibc(target).split(".")))

    def cross_triple(self, target: Target) -> str:
        """Zig's glibc targets cap the symbol versions at the release's glibc:
        x86_64-linux-gnu.2.34 for EL 9."""
        return f"{self.arch(target.architecture)}-linux-gnu.{self.glibc(target)}"

    def dependency_probe(self, roots: tuple[str, ...]) -> tuple[str, ...]:
        return ("sh", "-eu", "-c", RPMDEPS_SCRIPT, "rpmdeps", *roots)

    def parse_dependencies(self, output: list[str]) -> tuple[str, ...]:
        # rpmdeps prints one capability a line: libc.so.6(GLIBC_2.34)(64bit)
        found = [line.strip() for line in output if _CAPABILITY.fullmatch(line.strip())]
        return tuple(dict.fromkeys(found))

    def bootstrap(self, spec: ImageSpec, log: Callable[[str], None], engine=None) -> None:
        folder = containers_dir() / "rhel"
        command = ["docker", "build", "--build-arg", f"RELEASE={spec.suite or '9'}", "--build-arg", f"ROLE={spec.role}",
                   "--label", f"{DEFINITION_LABEL}={spec.definition_hash}", "-t", spec.reference, str(folder)]
        log(f"building {spec.reference} from {folder}/Dockerfile")
        env = {**os.environ, **({"DOCKER_HOST": engine.url} if engine is not None else {})}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
            raise SandboxError(
                f"image {spec.reference} is missing and could not be built from {folder}/Dockerfile, which starts "
                f"from the distribution's own base image and so needs a container registry ({tail})"
            )
