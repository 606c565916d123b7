"""Several targets at once: a pool of `jobs` workers (the only scheduler),
one failing target never stopping the others, and a summary that says which
failed and why.

Each run labels its containers with a run id, so that an interrupt removes
exactly this run's sandboxes (workers in other threads then fail fast and
clean their own temporary folders) and nothing of another run's.
"""

from __future__ import annotations

import concurrent.futures
import sys
import uuid
from dataclasses import dataclass, field, replace

from .errors import QmailPkgError, SandboxError
from .pipeline import BuildOptions, BuildResult, build_target
from .progress import Board
from .recipe.model import Recipe, Target
from .reproduce import Comparison, check_reproducible
from .sandbox.docker import remove_leftovers


@dataclass(frozen=True)
class Outcome:
    target: str
    status: str  # built | cached | failed | skipped
    result: BuildResult | None = None
    reason: str = ""
    reproducible: bool | None = None  # with --check-reproducible
    differences: tuple[str, ...] = ()  # diffoscope reports of artifacts that differ
    comparisons: tuple[Comparison, ...] = ()  # each artifact's two builds, with --check-reproducible

    def as_dict(self) -> dict:
        row: dict = {"target": self.target, "status": self.status}
        if self.result is not None:
            row.update({
                "artifacts": [{"path": str(a.path), "format": a.format, "version": a.version, "sha256": a.sha256,
                               "size": a.size} for a in self.result.artifacts],
                "record": str(self.result.record_path),
                "log": str(self.result.log_path),
                "durations": self.result.durations,
            })
        if self.reason:
            row["reason"] = self.reason
        if self.reproducible is not None:
            row["reproducible"] = self.reproducible
            row["differences"] = list(self.differences)
        return row


@dataclass
class Matrix:
    recipe: Recipe
    targets: list[Target]
    options: BuildOptions
    jobs: int = 1
    skip_unavailable: bool = False
    check_reproducible: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def _one(self, target: Target) -> Outcome:
        options = replace(self.options, run_id=self.run_id, board=self._board)
        try:
            if self.check_reproducible:
                reproduction = check_reproducible(self.recipe, target, options)
                reports = tuple(str(c.report) for c in reproduction.comparisons if c.report)
                status = "built" if reproduction.reproducible else "failed"
                reason = "" if reproduction.reproducible else f"not reproducible: see {', '.join(reports)}"
                return Outcome(target.label, status, reproduction.result, reason, reproduction.reproducible, reports,
                               tuple(reproduction.comparisons))
            result = build_target(self.recipe, target, options)
        except SandboxError as exc:
            if self.skip_unavailable:
                return Outcome(target.label, "skipped", reason=str(exc))
            return Outcome(target.label, "failed", reason=str(exc))
        except QmailPkgError as exc:
            return Outcome(target.label, "failed", reason=str(exc))
        return Outcome(target.label, "cached" if result.cached else "built", result)

    def __post_init__(self) -> None:
        concurrent_builds = self.jobs > 1 and len(self.targets) > 1
        self._board = (Board(sys.stderr) if concurrent_builds and sys.stderr.isatty() and not self.options.quiet
                       else None)

    def run(self) -> list[Outcome]:
        if self.jobs <= 1 or len(self.targets) <= 1:
            return [self._one(target) for target in self.targets]
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="qmail-pkg")
        futures = [pool.submit(self._one, target) for target in self.targets]
        try:
            return [future.result() for future in futures]
        except BaseException:
            # Ctrl-C or SIGTERM lands in this thread: cancel what has not
            # started, remove this run's sandboxes so running builds fail at
            # once and clean up after themselves, then wait for them.
            for future in futures:
                future.cancel()
            _remove_run_sandboxes(self.run_id, self.options.engines)
            pool.shutdown(wait=True)
            raise
        finally:
            pool.shutdown(wait=True)


def _remove_run_sandboxes(run_id: str, engines) -> None:
    for engine in [None, *(e for e in engines if e.kind == "docker")]:
        try:
            remove_leftovers({"qmail-pkg.run": run_id}, engine)
        except QmailPkgError:
            pass  # no engine left to ask: nothing of ours can be running there either
