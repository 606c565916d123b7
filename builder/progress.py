"""Progress: a live one-line status on a terminal, plain stage lines elsewhere,
and the full log of every target kept in a file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO


class Progress:
    def __init__(self, target: str, log_path: Path, stream: TextIO | None = None, quiet: bool = False):
        self.target = target
        self.log_path = log_path
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() and not quiet
        self.quiet = quiet
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "w", encoding="utf-8")  # one log per target and run
        self._started = time.monotonic()
        self._stage_started = self._started
        self._stage = "start"
        self._last_line = ""
        self._last_draw = 0.0
        self.durations: dict[str, float] = {}

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self._started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def _end_stage(self) -> float:
        now = time.monotonic()
        self.durations[self._stage] = round(self.durations.get(self._stage, 0.0) + now - self._stage_started, 3)
        return now

    def stage(self, name: str) -> None:
        self._stage, self._stage_started = name, self._end_stage()
        self._log.write(f"==> {name}\n")
        self._log.flush()
        if self.live:
            self._draw(force=True)
        elif not self.quiet:
            print(f"[{self.target}] {self._elapsed()} {name}", file=self.stream, flush=True)

    def line(self, text: str) -> None:
        self._log.write(text + "\n")
        self._last_line = text.strip() or self._last_line
        if self.live:
            self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        head = f"[{self.target}] {self._elapsed()} {self._stage}"
        room = 110 - len(head)
        tail = self._last_line[-room:] if room > 10 else ""
        self.stream.write(f"\r\x1b[K{head} | {tail}")
        self.stream.flush()

    def close(self, outcome: str) -> None:
        self._end_stage()
        self._log.write(f"==> {outcome}\n")
        self._log.close()
        if self.live:
            self.stream.write("\r\x1b[K")
        if not self.quiet:
            print(f"[{self.target}] {self._elapsed()} {outcome}", file=self.stream, flush=True)
