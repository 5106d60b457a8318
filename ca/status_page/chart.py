"""Geometry of the "revocations per day by reason" chart: stacked bars, drawn as inline SVG.

Drawn on the server because the page must work with no script and fetch nothing from
outside; the template only places the rectangles computed here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from ca.status_page.queries import REASONS, DayCounts

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 28  # margins around the plot: axis labels go there
#: One colour per reason, told apart also by lightness (readable when printed in grey).
COLOURS = dict(zip(REASONS, ("#b3261e", "#5b2a86", "#1f6f8b", "#4f8a3c", "#c58b00"), strict=True))


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    day: str
    reason: str
    count: int
    x: float
    y: float
    width: float
    height: float
    colour: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    value: int
    y: float


@dataclasses.dataclass(frozen=True, slots=True)
class DayLabel:
    text: str
    x: float


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    plot_left: float
    plot_bottom: float
    plot_right: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[DayLabel, ...]
    legend: tuple[tuple[str, str, int], ...]  # (reason, colour, total over the period)
    total: int


def nice_top(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (and at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def stacked_bars(days: Sequence[DayCounts]) -> Chart:
    top = nice_top(max((d.total for d in days), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    bars = []
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base: float = TOP + plot_h
        for reason, count in day.by_reason:
            if not count:
                continue
            h = plot_h * count / top
            base -= h
            bars.append(Bar(day.day.isoformat(), reason, count, round(x, 2), round(base, 2), round(bar_w, 2),
                            round(h, 2), COLOURS[reason]))
    ticks = tuple(Tick(v, round(TOP + plot_h - plot_h * v / top, 2)) for v in sorted({0, top // 2, top}))
    step = max(len(days) // 6, 1)  # about six date labels whatever the period
    labels = tuple(DayLabel(f"{d.day:%m-%d}", round(LEFT + i * slot + slot / 2, 2))
                   for i, d in enumerate(days) if (len(days) - 1 - i) % step == 0)
    totals = {r: sum(dict(d.by_reason)[r] for d in days) for r in REASONS}
    return Chart(WIDTH, HEIGHT, LEFT, TOP + plot_h, WIDTH - RIGHT, tuple(bars), ticks, labels,
                 tuple((r, COLOURS[r], totals[r]) for r in REASONS), sum(totals.values()))
