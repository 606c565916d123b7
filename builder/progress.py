"""Progress: a live status on a terminal (one line, or one line per target
when several build at once), plain stage lines elsewhere, and the full log
of every target kept in a file."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO


class Board:
    """The lines of the targets building at once, redrawn in place.

    Each target owning a `\r` line of its own would overwrite the others';
    instead every Progress hands its line to the board, which moves the
    cursor back over what it drew last time and draws all rows again. A
    finished target's last line is printed above the rows and stays."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.rows: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self._last = 0.0

    def update(self, target: str, text: str, force: bool = False) -> None:
        with self._lock:
            self.rows[target] = text
            now = time.monotonic()
            if not force and now - self._last < 0.1:
                return
            self._last = now
            self._redraw()

    def finish(self, target: str, text: str) -> None:
        with self._lock:
            self.rows.pop(target, None)
            self._clear()
            self.stream.write(text + "\n")
            self._draw_rows()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}A\r\x1b[J")  # up over the rows, erase to the end
        self._drawn = 0

    def _draw_rows(self) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)
        for text in self.rows.values():
            self.stream.write(text[:width] + "\n")
        self._drawn = len(self.rows)
        self.stream.flush()

    def _redraw(self) -> None:
        self._clear()
        self._draw_rows()


class Progress:
    def __init__(self, target: str, log_path: Path, stream: TextIO | None = None, quiet: bool = False,
                 board: Board | None = None):
        self.board = board if board is not None and not quiet else None
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
        if self.board is not None:
            self.board.update(self.target, f"{head} | {tail}", force)
            return
        self.stream.write(f"\r\x1b[K{head} | {tail}")
        self.stream.flush()

    def close(self, outcome: str) -> None:
        self._end_stage()
        self._log.write(f"==> {outcome}\n")
        self._log.close()
        if self.board is not None and self.live:
            self.board.finish(self.target, f"[{self.target}] {self._elapsed()} {outcome}")
            return
        if self.live:
            self.stream.write("\r\x1b[K")
        if not self.quiet:
            print(f"[{self.target}] {self._elapsed()} {outcome}", file=self.stream, flush=True)
