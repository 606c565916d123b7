"""`build --check-reproducible`: the same inputs built twice, the second time
with another build folder, host name, time zone, umask and `make -j1`, must
give the same bytes. A difference is explained by diffoscope, whose report
is kept beside the artifacts."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .evidence import CheckResult, Evidence
from .pipeline import VARIED, BuildOptions, BuildResult, build_target
from .recipe.model import Recipe, Target


@dataclass(frozen=True)
class Comparison:
    artifact: str
    first: str  # sha256
    second: str
    report: Path | None = None

    @property
    def identical(self) -> bool:
        return self.first == self.second

    def evidence(self, artifact: Path) -> Evidence:
        """What the comparison proves about the placed artifact (the first
        build's bytes)."""
        said = (f"sha256 {self.first} both times" if self.identical
                else f"sha256 {self.first}, then {self.second}"
                + (f"; diffoscope's report: {self.report.name}" if self.report else ""))
        check = CheckResult("built twice, the second time in another folder, with another host name, time zone, "
                            "umask and make -j1: the same bytes", self.identical, said)
        return Evidence.made("reproducible", artifact, self.first, self.identical, [check])


@dataclass
class Reproduction:
    result: BuildResult
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def reproducible(self) -> bool:
        return bool(self.comparisons) and all(c.identical for c in self.comparisons)


def _diffoscope(first: Path, second: Path, report: Path) -> Path | None:
    if not shutil.which("diffoscope"):
        report.write_text(f"diffoscope is not installed (apt-get install diffoscope-minimal); "
                          f"{first.name} differs between the two builds\n")
        return report
    subprocess.run(["diffoscope", "--text", str(report), "--no-progress", str(first), str(second)],
                   capture_output=True, timeout=900)
    return report


def check_reproducible(recipe: Recipe, target: Target, options: BuildOptions) -> Reproduction:
    with tempfile.TemporaryDirectory(prefix="qmail-pkg-reproduce-") as scratch:
        logs = options.log_dir or options.out_dir / "logs"
        first = build_target(recipe, target, replace(options, out_dir=Path(scratch) / "a", use_cache=False,
                                                     log_dir=logs / "reproduce-a"))
        second = build_target(recipe, target, replace(options, out_dir=Path(scratch) / "b", use_cache=False,
                                                      log_dir=logs / "reproduce-b", variation=VARIED))
        others = {a.path.name: a for a in second.artifacts}
        comparisons = []
        for artifact in first.artifacts:
            other = others.get(artifact.path.name)
            report = None
            if other is None or other.sha256 != artifact.sha256:
                folder = options.out_dir / target.name
                folder.mkdir(parents=True, exist_ok=True)
                report = _diffoscope(artifact.path, other.path if other else artifact.path,
                                     folder / f"{artifact.path.name}.diffoscope.txt")
            comparisons.append(Comparison(artifact.path.name, artifact.sha256, other.sha256 if other else "missing",
                                          report))
    # the first build is in the cache now: placing it in --out starts no container
    final = build_target(recipe, target, replace(options, use_cache=True))
    return Reproduction(final, comparisons)
