"""`qmail-pkg verify --power-cut N`: real power cuts in a virtual machine.

The claim the package exists for, measured: mail that qmail acknowledged
survives a power cut with syncdir, and does not without it. For each file
system tried, N cycles per package (the package, and the --baseline built
--without syncdir): boot the machine with the package installed, let
several injectors queue mail while qmail-send delivers it, cut the power
2-10 s after the first acknowledgement (seeded: the same seed cuts after
the same delay), boot again, repair the file system as the system would,
classify every acknowledged message (machine.py, classify.py), let
qmail-send deliver what is queued and check that all of it arrives, once.

Pass: for the package, no acknowledged message stranded or lost on any
file system, all of them delivered after recovery. Messages delivered twice
are counted and shown: qmail promises delivery at least once, and a cut
after a delivery but before qmail-send noted it repeats that delivery. The baseline is
there to show that the experiment can fail: without syncdir it strands or
loses mail, most of all on ext4 without a journal.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import VerifyError
from ...evidence import COUNTS, CheckResult, Evidence, PowerCutCounts
from ...platforms import package_manager_for
from ...recipe.model import Target
from ...record import BuildRecord, RecordError
from .classify import STATES, Outcome, classify
from .images import base_machine, cache_dir, package_machine
from .machine import Boot, Console, Disk, job_disk, run_boot

FILESYSTEMS = ("ext4", "ext4-nojournal", "xfs")
DATA_DISK_MIB = 320  # xfs needs 300 MiB at least
CUT_WINDOW = (2.0, 10.0)  # seconds after the first acknowledgement
BOOT_TIMEOUT = 300.0  # until the machine is ready and acknowledges mail, under emulation
RECOVERY_TIMEOUT = 420.0
MAIL_USER = "pcuser"
MAIL_HOST = "powercut.test"


@dataclass(frozen=True)
class PowerCutOptions:
    cycles: int
    filesystems: tuple[str, ...] = FILESYSTEMS
    baseline: Path | None = None
    seed: int = 1
    jobs: int = 0  # machines at once; 0 = as many as cores
    keep: Path = Path("power-cut")  # the command line's default is a new folder in the cache (runs_folder)
    injectors: int = 3
    pace: float = 0.2  # seconds between two messages of one injector


@dataclass(frozen=True)
class Cycle:
    variant: str  # package | baseline
    filesystem: str
    number: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.variant}-{self.filesystem}-{self.number:03d}"


@dataclass(frozen=True)
class CycleResult:
    cycle: Cycle
    folder: Path
    cut_after: float = 0.0  # seconds after the first acknowledgement
    outcome: Outcome | None = None
    error: str = ""

    def as_dict(self) -> dict:
        row: dict = {"variant": self.cycle.variant, "filesystem": self.cycle.filesystem,
                     "cycle": self.cycle.number, "seed": self.cycle.seed, "folder": str(self.folder),
                     "cut_after": round(self.cut_after, 3)}
        if self.error:
            row["error"] = self.error
        if self.outcome is not None:
            row.update({"acknowledged": self.outcome.acknowledged, **self.outcome.counts,
                        "not_recovered": list(self.outcome.not_recovered),
                        "duplicated": list(self.outcome.duplicated),
                        "examples": {k: list(v) for k, v in self.outcome.examples.items()}})
        return row


@dataclass
class PowerCutReport:
    target: str
    package: str
    baseline: str | None
    options: PowerCutOptions
    results: list[CycleResult] = field(default_factory=list)

    def totals(self, variant: str, filesystem: str) -> dict:
        rows = [r for r in self.results if r.cycle.variant == variant and r.cycle.filesystem == filesystem]
        outcomes = [r.outcome for r in rows if r.outcome is not None]
        total = {"cycles": len(rows), "failed_cycles": sum(1 for r in rows if r.error),
                 "acknowledged": sum(o.acknowledged for o in outcomes)}
        for state in STATES:
            total[state] = sum(o.counts[state] for o in outcomes)
        total["not_recovered"] = sum(len(o.not_recovered) for o in outcomes)
        total["duplicated"] = sum(len(o.duplicated) for o in outcomes)
        return total

    @property
    def variants(self) -> list[str]:
        return ["package"] + (["baseline"] if self.baseline else [])

    @property
    def passed(self) -> bool:
        package = [r for r in self.results if r.cycle.variant == "package"]
        return bool(package) and all(not r.error and r.outcome is not None and r.outcome.safe for r in package)

    def as_dict(self) -> dict:
        return {
            "target": self.target, "package": self.package, "baseline": self.baseline, "passed": self.passed,
            "cut_window_seconds": list(CUT_WINDOW), "seed": self.options.seed, "injectors": self.options.injectors,
            "filesystems": {fs: {variant: self.totals(variant, fs) for variant in self.variants}
                            for fs in self.options.filesystems},
            "cycles": [r.as_dict() for r in self.results],
        }

    def evidence(self, package: Path, sha256: str) -> Evidence:
        """The run as evidence for the package: per file system a step (none
        of the package's acknowledged mail stranded or lost), and the counts
        of the package and its baseline."""
        counts = tuple(PowerCutCounts(fs, variant, **{key: self.totals(variant, fs)[key] for key in COUNTS})
                       for fs in self.options.filesystems for variant in self.variants)
        steps = []
        for fs in self.options.filesystems:
            total = self.totals("package", fs)
            safe = total["cycles"] > 0 and not total["failed_cycles"] and not total["stranded"] + total["lost"]
            said = (f"{total['cycles']} power cuts ({total['failed_cycles']} cycles failed): {total['acknowledged']} "
                    f"acknowledged, {total['delivered']} delivered, {total['queued']} queued, "
                    f"{total['stranded']} stranded, {total['lost']} lost")
            if self.baseline:
                base = self.totals("baseline", fs)
                said += (f"; the baseline {self.baseline}: {base['acknowledged']} acknowledged, "
                         f"{base['stranded']} stranded, {base['lost']} lost")
            steps.append(CheckResult(f"{fs}: no acknowledged message stranded or lost", safe, said))
        return Evidence.made("power-cut", package, sha256, self.passed, steps, power_cut=counts)

    def table(self) -> str:
        columns = ("acknowledged", "delivered", "queued", "stranded", "lost", "not_recovered", "duplicated")
        head = (f"{'file system':<15} {'variant':<9} {'cycles':>6} "
                + " ".join(f"{c.replace('_', ' '):>13}" for c in columns))
        lines = [head]
        for fs in self.options.filesystems:
            for variant in self.variants:
                total = self.totals(variant, fs)
                cycles = f"{total['cycles'] - total['failed_cycles']}/{total['cycles']}"
                lines.append(f"{fs:<15} {variant:<9} {cycles:>6} " + " ".join(f"{total[c]:>13}" for c in columns))
        return "\n".join(lines)


@dataclass(frozen=True)
class PowerCutInputs:
    """The package and its baseline, checked against their build records."""

    target: Target
    package: Path
    name: str
    baseline: Path | None
    baseline_name: str


def power_cut_inputs(target: Target, artifacts: list[Path], baseline: Path | None) -> PowerCutInputs:
    """One package built as the recipe says, and optionally its variant built
    without syncdir as the baseline; the target as the package was built."""
    if len(artifacts) != 1:
        raise VerifyError("--power-cut takes one package (and --baseline for the comparison)")
    package = artifacts[0].resolve()
    for path in [package, *([baseline] if baseline else [])]:
        if not path.is_file():
            raise VerifyError(f"{path}: no such package")
    record = _record(package)
    if record.variant:
        raise VerifyError(f"{package.name} is a variant build ({dict(record.variant)}); give the package itself, "
                          "and the variant as --baseline")
    baseline_name = ""
    if baseline is not None:
        baseline_record = _record(baseline.resolve())
        if not baseline_record.variant:
            raise VerifyError(f"--baseline {baseline}: not a variant build; build it with --without syncdir")
        baseline_name = baseline_record.package
    return PowerCutInputs(target.for_architecture(record.architecture), package, record.package,
                          baseline.resolve() if baseline else None, baseline_name)


def _record(package: Path) -> BuildRecord:
    try:
        return BuildRecord.beside(package)
    except RecordError as exc:
        raise VerifyError(f"{exc}; the power-cut run needs it") from None


def runs_folder(package: Path) -> Path:
    """Where a run keeps its evidence unless told: a new folder in the
    machine cache, never the current folder."""
    return cache_dir() / "runs" / f"{package.stem}-{time.strftime('%Y%m%dT%H%M%S')}"


def _settings(prefix: str, package_name: str, version_command: str, options: PowerCutOptions) -> dict[str, str]:
    return {
        "QP_PREFIX": prefix, "QP_USER": MAIL_USER, "QP_HOST": MAIL_HOST,
        "QP_INJECTORS": str(options.injectors), "QP_PACE": f"{options.pace:g}",
        "QP_CRASH_TIMEOUT": str(int(BOOT_TIMEOUT)), "QP_DELIVER_TIMEOUT": "240",
        "QP_VERSION_COMMAND": version_command, "QP_PACKAGE": package_name,
    }


def _run_cycle(cycle: Cycle, machine, settings: dict[str, str], folder: Path,
               log: Callable[[str], None]) -> CycleResult:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.img"
    with open(data, "wb") as disk:
        disk.truncate(DATA_DISK_MIB << 20)  # sparse
    base = machine.base
    crash_job = job_disk(folder / "crash.tar", {**settings, "QP_MODE": "crash", "QP_FS": cycle.filesystem})
    boot = Boot(base.kernel, base.initrd, Disk(machine.root, format="qcow2"), Disk(crash_job),
                Disk(data, writable=True, direct=True))
    delay = random.Random(cycle.seed).uniform(*CUT_WINDOW)
    console = Console(boot, folder / "crash.console")
    crash_lines: list[str] = []
    first_ack = None
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        for arrived, line in console.lines(deadline):
            crash_lines.append(line)
            if line.startswith("QP FAIL "):
                return CycleResult(cycle, folder, error=f"the machine failed: {line[8:]}")
            if first_ack is None and line.startswith("QP ACK "):
                first_ack = arrived
                deadline = arrived + delay
                console_deadline = deadline
                break
        if first_ack is None:
            return CycleResult(cycle, folder,
                               error=f"no acknowledgement within {BOOT_TIMEOUT:.0f} s (console: {console.keep})")
        for _, line in console.lines(console_deadline):
            crash_lines.append(line)
        console.cut()  # the power cut
    finally:
        console.close()
    cut_after = time.monotonic() - first_ack
    recover_job = job_disk(folder / "recover.tar", {**settings, "QP_MODE": "recover", "QP_FS": cycle.filesystem})
    boot = Boot(base.kernel, base.initrd, Disk(machine.root, format="qcow2"), Disk(recover_job),
                Disk(data, writable=True, direct=True))
    recovery_lines = run_boot(boot, folder / "recover.console", timeout=RECOVERY_TIMEOUT)
    (folder / "repair.log").write_text("\n".join(line[10:] for line in recovery_lines if line.startswith("QP REPAIR "))
                                       + "\n")
    if "QP DONE" not in recovery_lines:
        said = [line[3:] for line in recovery_lines if line.startswith("QP ") and not line.startswith("QP REPAIR")][-3:]
        return CycleResult(cycle, folder, cut_after,
                           error=f"the recovery boot did not finish: {' | '.join(said) or 'no word'}")
    outcome = classify(crash_lines, recovery_lines)
    result = CycleResult(cycle, folder, cut_after, outcome)
    (folder / "classification.json").write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    log(f"{cycle.name}: cut {cut_after:.1f} s after the first acknowledgement: {outcome.acknowledged} acknowledged, "
        + ", ".join(f"{outcome.counts[s]} {s}" for s in STATES))
    return result


def run_power_cut(recipe, target, package: Path, package_name: str, options: PowerCutOptions,
                  log: Callable[[str], None], baseline_name: str = "") -> PowerCutReport:
    if options.cycles < 1:
        raise VerifyError("--power-cut needs at least one cycle")
    unknown = [fs for fs in options.filesystems if fs not in FILESYSTEMS]
    if unknown:
        raise VerifyError(f"unknown file system {unknown[0]!r}; expected one of {', '.join(FILESYSTEMS)}")
    if not target.suite:
        raise VerifyError(f"{target.name}: the target names no suite to make a machine from")
    if target.architecture != "amd64":
        raise VerifyError(f"power-cut machines here are amd64 (qemu-system-x86_64); {target.architecture} would "
                          "need its own system emulator and kernel, which this tool does not make")
    # the machine runs the build image's userland (test targets install their
    # packages on a foreign one, as verify does)
    manager = package_manager_for(target)
    options.keep.mkdir(parents=True, exist_ok=True)
    base = base_machine(target.userland, target.suite, target.architecture, log)
    packages = {"package": (package, package_name)}
    if options.baseline is not None:
        packages["baseline"] = (options.baseline, baseline_name)
    settings = {variant: _settings(recipe.layout.prefix, name, manager.command("version", name=name), options)
                for variant, (path, name) in packages.items()}

    def install(variant: str):
        path = packages[variant][0]
        keep = options.keep / f"{variant}-install"
        keep.mkdir(parents=True, exist_ok=True)
        command = manager.command("install", path=f"/tmp/job/{path.name}")
        if manager.prepare:
            command = f"{manager.prepare} && {command}"
        return package_machine(base, path, command, settings[variant], log, keep)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(packages)) as pool:
        machines = dict(zip(packages, pool.map(install, packages), strict=True))
    cycles = [Cycle(variant, fs, number, options.seed + index)
              for index, (variant, fs, number) in enumerate(
                  (v, fs, n) for fs in options.filesystems for v in packages for n in range(1, options.cycles + 1))]
    report = PowerCutReport(target.name, package.name, options.baseline.name if options.baseline else None, options)
    jobs = options.jobs or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="power-cut") as pool:
        futures = [pool.submit(_guarded, cycle, machines[cycle.variant], settings[cycle.variant],
                               options.keep / cycle.name, log) for cycle in cycles]
        report.results = [future.result() for future in futures]
    for result in report.results:
        keep_image = result.error or (result.cycle.variant == "package" and result.outcome and not result.outcome.safe)
        if not keep_image:
            (result.folder / "data.img").unlink(missing_ok=True)
    (options.keep / "report.json").write_text(json.dumps(report.as_dict(), indent=1) + "\n")
    return report


def _guarded(cycle: Cycle, machine, settings, folder: Path, log) -> CycleResult:
    """A cycle whose machine could not run is a failed cycle, not a crash of the whole run."""
    try:
        return _run_cycle(cycle, machine, settings, folder, log)
    except VerifyError as exc:
        return CycleResult(cycle, folder, error=str(exc))
