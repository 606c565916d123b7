"""The power-cut chart's geometry: per file system, a bar for the package
and one for its baseline, each split into what became of the acknowledged
mail (delivered, queued, stranded, lost) as shares of it. The picture is
drawn by one template (templates/chart.svg.j2) from these numbers; the
same figures go into a text table beside it, for readers that do not see
the picture."""

from __future__ import annotations

from dataclasses import dataclass

from ..evidence import PowerCutCounts

STATES = ("delivered", "queued", "stranded", "lost")
# Each at least 3:1 against the white page (WCAG 1.4.11, graphical objects)
# and told apart by the legend's words as well as by colour.
COLOURS = {"delivered": "#1a7f37", "queued": "#0969da", "stranded": "#9a6700", "lost": "#cf222e"}
WIDTH = 720
LEFT = 96  # the bars' labels
BAR = 600  # the whole of a bar: all acknowledged mail
BAR_HEIGHT = 22
ROW = BAR_HEIGHT + 24  # a bar and its numbers below it
GROUP_HEAD = 24  # the file system's name above its bars
GAP = 8
TOP = 36  # the legend


@dataclass(frozen=True)
class Segment:
    state: str
    count: int
    x: float
    width: float
    colour: str


@dataclass(frozen=True)
class Bar:
    variant: str
    y: float
    acknowledged: int
    segments: tuple[Segment, ...]
    words: str  # the numbers beside the bar


@dataclass(frozen=True)
class Group:
    filesystem: str
    y: float
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Legend:
    state: str
    colour: str
    x: float


@dataclass(frozen=True)
class Chart:
    ident: str  # unique on its page: the ids of its title and description
    title: str
    description: str
    width: int
    height: int
    left: int  # where bars start
    bar: int  # a bar's length: all acknowledged mail
    bar_height: int
    groups: tuple[Group, ...]
    legend: tuple[Legend, ...]
    rows: tuple[PowerCutCounts, ...]  # the text table's figures


def _bar(row: PowerCutCounts, y: float) -> Bar:
    segments, x = [], float(LEFT)
    for state in STATES:
        count = getattr(row, state)
        width = BAR * count / row.acknowledged if row.acknowledged else 0.0
        if width:
            segments.append(Segment(state, count, round(x, 2), round(width, 2), COLOURS[state]))
        x += width
    words = (f"{row.acknowledged} acknowledged, {row.stranded + row.lost} stranded or lost" if row.acknowledged
             else "no acknowledged mail")
    return Bar(row.variant, y, row.acknowledged, tuple(segments), words)


def _sentence(rows: tuple[PowerCutCounts, ...]) -> str:
    parts = []
    for row in rows:
        parts.append(f"on {row.filesystem}, the {row.variant}: {row.acknowledged} messages acknowledged, "
                     + ", ".join(f"{getattr(row, state)} {state}" for state in STATES))
        parts[-1] += f" ({row.cycles} power cuts)"
    return "; ".join(parts) + "."


def chart(ident: str, package: str, rows: tuple[PowerCutCounts, ...]) -> Chart:
    groups, y = [], float(TOP)
    for filesystem in dict.fromkeys(row.filesystem for row in rows):
        mine = sorted((row for row in rows if row.filesystem == filesystem), key=lambda row: row.variant != "package")
        bars = []
        for index, row in enumerate(mine):
            bars.append(_bar(row, y + GROUP_HEAD + index * ROW))
        groups.append(Group(filesystem, y, tuple(bars)))
        y += GROUP_HEAD + len(bars) * ROW + GAP
    legend = tuple(Legend(state, COLOURS[state], LEFT + index * 110.0) for index, state in enumerate(STATES))
    return Chart(ident, f"What became of acknowledged mail after power cuts: {package} beside its baseline",
                 f"Shares of acknowledged mail, per file system: {_sentence(rows)}", WIDTH, int(y), LEFT, BAR,
                 BAR_HEIGHT, tuple(groups),
                 legend, rows)


__all__ = ["COLOURS", "Chart", "STATES", "chart"]
