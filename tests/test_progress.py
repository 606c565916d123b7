"""The live display: several targets building at once each keep a row of
their own on a terminal, and a finished target's line stays above them."""

from __future__ import annotations

import io
import re

from builder.progress import Board, Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _screen(raw: str) -> list[str]:
    """Replay the few control sequences the board uses into screen lines."""
    lines: list[str] = [""]
    row = 0
    for token in re.split(r"(\x1b\[\d*[AJK]|\r|\n)", raw):
        if token == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        elif token == "\r":
            pass  # every row is written whole after an erase
        elif token.startswith("\x1b[") and token.endswith("A"):
            row -= int(token[2:-1])
        elif token in ("\x1b[J",):
            del lines[row:]
            lines.append("")
        elif token == "\x1b[K":
            lines[row] = ""
        elif token:
            lines[row] += token
    return [line for line in lines if line]


def test_two_targets_share_the_terminal_without_overwriting_each_other(tmp_path):
    terminal = Terminal()
    board = Board(terminal)
    first = Progress("debian-12", tmp_path / "a.log", stream=terminal, board=board)
    second = Progress("el-9", tmp_path / "b.log", stream=terminal, board=board)
    first.stage("build")
    second.stage("copy sources in")
    first.line("gcc -c qmail-send.c")
    first.stage("package")
    assert [line.split("]")[0] for line in _screen(terminal.getvalue())] == ["[debian-12", "[el-9"]
    assert "package" in _screen(terminal.getvalue())[0] and "copy sources in" in _screen(terminal.getvalue())[1]
    first.close("built")
    second.stage("harvest staged tree")
    screen = _screen(terminal.getvalue())
    assert screen[0].startswith("[debian-12]") and screen[0].endswith("built")  # stays, above the live rows
    assert len(screen) == 2 and "harvest staged tree" in screen[1]
    second.close("failed")
    screen = _screen(terminal.getvalue())
    assert [line.split()[-1] for line in screen] == ["built", "failed"]
    assert "gcc -c qmail-send.c" in (tmp_path / "a.log").read_text()  # the full log is still kept


def test_without_a_terminal_there_are_plain_stage_lines_and_no_control_sequences(tmp_path):
    stream = io.StringIO()
    progress = Progress("debian-12", tmp_path / "a.log", stream=stream, board=Board(stream))
    progress.stage("build")
    progress.close("built")
    assert "\x1b" not in stream.getvalue()
    assert re.fullmatch(r"\[debian-12\] \d\d:\d\d build\n\[debian-12\] \d\d:\d\d built\n", stream.getvalue())
