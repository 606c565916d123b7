"""What a check saw: one result per check, with the evidence behind it, so
that every report (verify, lint, piuparts, publish) says why something
passed, failed or was not run."""

from __future__ import annotations

from dataclasses import dataclass


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


__all__ = ["CheckResult"]
