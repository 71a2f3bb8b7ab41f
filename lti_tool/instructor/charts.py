"""Geometry for the server-rendered SVG charts (no script, no CDN: nothing loads at runtime).

The templates draw what these dataclasses describe; every chart also has its numbers in a
table next to it, so the SVG is a picture of the table, never the only copy of the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lti_tool.services.analytics import Bin, CriterionStat


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int | float
    text: str  # accessible description of this bar


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    bottom: int
    top: int
    bars: list[Bar]
    ticks: list[Tick]


def _nice_max(value: int) -> int:
    """An axis maximum of 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def histogram(bins: list[Bin], width: int = 640, height: int = 260) -> Chart:
    left, right, top, bottom = 44, 12, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((b.count for b in bins), default=0))
    slot = plot_w / max(len(bins), 1)
    bars = []
    for i, b in enumerate(bins):
        h = plot_h * b.count / peak
        bars.append(
            Bar(
                x=round(left + i * slot + 2, 2),
                y=round(top + plot_h - h, 2),
                width=round(slot - 4, 2),
                height=round(h, 2),
                label=b.label,
                value=b.count,
                text=f"Score {b.label}: {b.count}",
            )
        )
    steps = min(peak, 5)
    ticks = [
        Tick(position=round(top + plot_h - plot_h * k / steps, 2), label=str(peak * k // steps))
        for k in range(steps + 1)
    ]
    return Chart(width, height, left, bottom, top, bars, ticks)


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def miss_rates(stats: list[CriterionStat], width: int = 640, row: int = 34) -> Chart:
    """Horizontal bars: share of learners who missed each criterion (0-100 %)."""
    left, right, top, bottom = 220, 48, 8, 28
    height = top + bottom + row * max(len(stats), 1)
    plot_w = width - left - right
    bars = [
        Bar(
            x=left,
            y=round(top + i * row + 5, 2),
            width=round(plot_w * s.miss_rate, 2),
            height=row - 10,
            label=_short(s.description or s.criterion_id),
            value=round(100 * s.miss_rate),
            text=f"{s.criterion_id}: missed by {s.missed} of {s.assessed}",
        )
        for i, s in enumerate(stats)
    ]
    ticks = [Tick(position=round(left + plot_w * k / 4, 2), label=f"{25 * k}%") for k in range(5)]
    return Chart(width, height, left, bottom, top, bars, ticks)
