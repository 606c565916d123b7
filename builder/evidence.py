"""What a check saw: one result per check, with the evidence behind it, so
that every report (verify, lint, piuparts, publish) says why something
passed, failed or was not run.

An Evidence is the result of one command on one artifact (verify on one
kind of host, piuparts, lint, the reproducibility check, a power-cut run),
written as JSON beside the artifact: `<artifact>.<kind>[-<qualifier>]
.evidence.json`. It travels with the artifact from the job that checked it
to the job that publishes it, so it is read back as hostile data, as build
records are (builder/record/): bounded, names and types strict, duplicate
keys refused. It names the artifact's sha256: evidence for other bytes says
nothing about these (the publish ignores it)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import printable
from .record.reading import FILE, SHA256, Reader, RecordError, strict_json
from .safefs import Folder, FsError

SUFFIX = ".evidence.json"
KINDS = ("verify", "piuparts", "lint", "reproducible", "power-cut")
VARIANTS = ("package", "baseline")  # of a power-cut run: the package, and the same built --without syncdir
COUNTS = ("cycles", "failed_cycles", "acknowledged", "delivered", "queued", "stranded", "lost", "duplicated",
          "not_recovered")
MAX_BYTES = 4 << 20
MAX_STEPS = 1000
MAX_FILES = 100  # evidence files about one artifact
MAX_ROWS = 100
MAX_EVIDENCE_TEXT = 4096  # characters in any one string of an evidence file
MAX_STEP_TEXT = 4000  # what a writer keeps of one step's evidence (below what the reader allows)
SCHEMA = 1
QUALIFIER = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
FILESYSTEM = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    evidence: str
    skipped: bool = False  # not run here, and why (the evidence); never counts as a failure

    def as_dict(self) -> dict:
        row: dict = {"name": self.name, "passed": self.passed, "evidence": self.evidence}
        if self.skipped:
            row["skipped"] = True
        return row

    @property
    def word(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class PowerCutCounts:
    """What became of acknowledged mail on one file system, for the package
    or its baseline, summed over the cycles of a power-cut run."""

    filesystem: str
    variant: str
    cycles: int
    failed_cycles: int
    acknowledged: int
    delivered: int
    queued: int
    stranded: int
    lost: int
    duplicated: int
    not_recovered: int

    def to_json(self) -> dict[str, Any]:
        return {"filesystem": self.filesystem, "variant": self.variant, **{key: getattr(self, key) for key in COUNTS}}

    @classmethod
    def read(cls, reader: Reader, raw: Any, name: str) -> "PowerCutCounts":
        data = reader.mapping(raw, name)
        unknown = sorted(set(data) - {"filesystem", "variant", *COUNTS})
        if unknown:
            raise reader.fail(f"{name}.{printable(str(unknown[0]))[:40]}", "is not a field of a power-cut row")
        variant = reader.text(data, "variant", name)
        if variant not in VARIANTS:
            raise reader.fail(f"{name}.variant", f"must be one of {', '.join(VARIANTS)}")
        counts = {key: reader.integer(data, key, name, 0, 10**9) for key in COUNTS}
        return cls(reader.text(data, "filesystem", name, FILESYSTEM), variant, **counts)


@dataclass(frozen=True)
class Evidence:
    kind: str  # one of KINDS
    artifact: str  # the artifact's file name
    sha256: str  # of the artifact's bytes when it was checked
    passed: bool
    steps: tuple[CheckResult, ...]
    qualifier: str = ""  # verify: the kind of host
    power_cut: tuple[PowerCutCounts, ...] = ()
    tool: str = ""  # the qmail-pkg that checked it
    time: str = ""  # when, RFC 3339 UTC

    @classmethod
    def made(cls, kind: str, artifact: Path, sha256: str, passed: bool, steps, qualifier: str = "",
             power_cut: tuple[PowerCutCounts, ...] = ()) -> "Evidence":
        """Evidence of a check that just ran, stamped with this tool and the
        time, each step's text cut to what a reader accepts."""
        kept = tuple(CheckResult(step.name[:MAX_STEP_TEXT], step.passed, _cut(step.evidence), step.skipped)
                     for step in list(steps)[:MAX_STEPS])
        return cls(kind, artifact.name, sha256, passed, kept, qualifier, tuple(power_cut),
                   f"qmail-pkg {__version__}", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def file_name(self) -> str:
        return f"{self.artifact}.{self.kind}{'-' + self.qualifier if self.qualifier else ''}{SUFFIX}"

    @property
    def title(self) -> str:
        """What was checked, in words."""
        return {"verify": f"verify on a {self.qualifier} host", "piuparts": "piuparts (Debian's tester)",
                "lint": "lint (the format's linter)", "reproducible": "reproducible build",
                "power-cut": "power cuts"}[self.kind]

    # -- writing -------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA, "kind": self.kind, "artifact": {"file": self.artifact, "sha256": self.sha256},
            "passed": self.passed, "tool": self.tool, "time": self.time,
            "steps": [step.as_dict() for step in self.steps],
        }
        if self.qualifier:
            data["qualifier"] = self.qualifier
        if self.power_cut:
            data["power_cut"] = [row.to_json() for row in self.power_cut]
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, folder: Path) -> Path:
        """Into `folder` (created when missing) in one rename, never through
        a link."""
        try:
            with Folder.open(folder, create=True, what=str(folder)) as target:
                target.write(self.file_name, self.dumps().encode())
        except FsError as exc:
            raise RecordError(f"cannot write the evidence: {exc}") from None
        return folder / self.file_name

    # -- reading -------------------------------------------------------------
    @classmethod
    def loads(cls, text: str | bytes, where: str) -> "Evidence":
        return cls.from_json(strict_json(text, where, "evidence"), where)

    @classmethod
    def from_json(cls, raw: Any, where: str) -> "Evidence":
        r = Reader(where, MAX_EVIDENCE_TEXT)
        data = r.mapping(raw, "(evidence)")
        unknown = sorted(set(data) - {"schema", "kind", "artifact", "passed", "tool", "time", "steps", "qualifier",
                                      "power_cut"})
        if unknown:
            raise r.fail(printable(str(unknown[0]))[:40], "is not a field of evidence")
        schema = r.integer(data, "schema", "", 1, 2**31)
        if schema > SCHEMA:
            raise r.fail("schema", f"version {schema} is newer than this tool reads ({SCHEMA}); update qmail-pkg")
        kind = r.text(data, "kind")
        if kind not in KINDS:
            raise r.fail("kind", f"must be one of {', '.join(KINDS)}")
        artifact = r.mapping(r.get(data, "artifact", ""), "artifact")
        steps = []
        for index, item in enumerate(r.items(r.get(data, "steps", ""), "steps")[:MAX_STEPS + 1]):
            if index == MAX_STEPS:
                raise r.fail("steps", f"more than {MAX_STEPS} steps")
            row = r.mapping(item, f"steps[{index}]")
            steps.append(CheckResult(r.text(row, "name", f"steps[{index}]"), r.flag(row, "passed", f"steps[{index}]"),
                                     r.text(row, "evidence", f"steps[{index}]"),
                                     r.flag(row, "skipped", f"steps[{index}]", default=False)))
        rows = r.items(data.get("power_cut", []), "power_cut")
        if len(rows) > MAX_ROWS:
            raise r.fail("power_cut", f"more than {MAX_ROWS} rows")
        if rows and kind != "power-cut":
            raise r.fail("power_cut", f"only power-cut evidence has it, not {kind}")
        qualifier = r.text(data, "qualifier", "", QUALIFIER, default="")
        if (kind == "verify") != bool(qualifier):
            raise r.fail("qualifier", "verify evidence names its kind of host, and only it")
        return cls(
            kind=kind,
            artifact=r.text(artifact, "file", "artifact", FILE),
            sha256=r.text(artifact, "sha256", "artifact", SHA256),
            passed=r.flag(data, "passed"),
            steps=tuple(steps),
            qualifier=qualifier,
            power_cut=tuple(PowerCutCounts.read(r, item, f"power_cut[{index}]") for index, item in enumerate(rows)),
            tool=r.text(data, "tool", "", default=""),
            time=r.text(data, "time", "", TIME),
        )


def _cut(text: str) -> str:
    return text if len(text) <= MAX_STEP_TEXT else text[: MAX_STEP_TEXT - 30] + f"... ({len(text)} characters)"


def evidence_files(names, artifact: str) -> list[str]:
    """The names among `names` that are evidence for the artifact `artifact`
    by their name (what they say inside is checked when read)."""
    return sorted(name for name in names if name.startswith(f"{artifact}.") and name.endswith(SUFFIX))


__all__ = ["COUNTS", "CheckResult", "Evidence", "KINDS", "MAX_BYTES", "MAX_FILES", "PowerCutCounts", "SUFFIX",
           "evidence_files"]
