"""Charts drawn on the server: a time axis, a value axis with its unit, and an empty state that says so.

:func:`time_chart` turns samples (a time and a value each) into the geometry the ``chart`` macro draws as
SVG: bars for per-minute counts, a step line for sampled levels. Each sample sits at its own time within
the window, so three samples taken in the last two minutes fill two minutes of the axis, not the hour.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

#: The drawing's size in SVG units (the page scales it to its width, text included).
WIDTH, HEIGHT = 360.0, 120.0
#: The plot area inside it: room on the left for the value labels and below for the time labels.
LEFT, RIGHT, TOP, BOTTOM = 30.0, 6.0, 18.0, 16.0


@dataclass(frozen=True)
class Tick:
    """A labelled grid line: ``at`` is its position on the axis in SVG units."""

    at: float
    label: str
    anchor: Literal["start", "middle", "end"] = "middle"


@dataclass(frozen=True)
class Mark:
    """A bar (``width`` > 0) or a point of a step line, with its tooltip."""

    x: float
    y: float
    width: float
    title: str


@dataclass(frozen=True)
class Chart:
    """Everything the ``chart`` macro needs; ``empty`` is the sentence shown instead when there is no data."""

    label: str
    unit: str
    kind: Literal["bars", "line"]
    marks: tuple[Mark, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    empty: str | None
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM
    line: str = field(default="")

    @property
    def baseline(self) -> float:
        """The y of the value 0."""
        return self.bottom


def nice_peak(peak: float) -> float:
    """The top of the value axis: ``peak`` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if peak <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 5, 10):
        if peak <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover (the loop always returns)


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def time_chart(samples: Sequence[tuple[float, float]], *, label: str, unit: str, kind: Literal["bars", "line"],
               window: float = 3600.0, bucket: float = 60.0, now: float | None = None,
               empty: str = "No data yet.") -> Chart:
    """A chart of ``samples`` (unix time, value) over the ``window`` seconds that end ``now``.

    ``bars`` draws each sample as a bar ``bucket`` seconds wide starting at its time (per-minute counts);
    ``line`` draws the samples as a step line, each level held until the next sample.
    """
    end = time.time() if now is None else now
    start = end - window
    inside = [(t, v) for t, v in samples if start <= t <= end]
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    peak = nice_peak(max((v for _, v in inside), default=0.0))

    def x_of(t: float) -> float:
        return left + (t - start) / window * (right - left)

    def y_of(v: float) -> float:
        return bottom - v / peak * (bottom - top)

    minutes = round(window / 60)
    steps = list(range(minutes, -1, -max(1, minutes // 4)))
    x_ticks = tuple(Tick(x_of(end - m * 60), "now" if m == 0 else f"−{m} min",
                         "start" if m == steps[0] else "end" if m == 0 else "middle") for m in steps)
    # Counts have no halves: the middle line only where it falls on a whole number.
    values = (0.0, peak / 2, peak) if (peak / 2).is_integer() else (0.0, peak)
    y_ticks = tuple(Tick(y_of(v), _count(v)) for v in values)
    marks: list[Mark] = []
    points: list[str] = []
    last_y: float | None = None
    for t, v in inside:
        stamp = datetime.fromtimestamp(t, UTC).strftime("%H:%M UTC")
        title = f"{stamp}: {_count(v)} {unit}"
        if kind == "bars":
            width = max(1.0, bucket / window * (right - left) - 1)
            marks.append(Mark(x_of(t), y_of(v), width, title))
        else:
            if last_y is not None:  # hold the last level until this sample
                points.append(f"{x_of(t):.1f},{last_y:.1f}")
            last_y = y_of(v)
            points.append(f"{x_of(t):.1f},{last_y:.1f}")
            marks.append(Mark(x_of(t), y_of(v), 0.0, title))
    has_data = any(v for _, v in inside) if kind == "bars" else bool(inside)
    return Chart(label=label, unit=unit, kind=kind, marks=tuple(marks), x_ticks=x_ticks, y_ticks=y_ticks,
                 empty=None if has_data else empty, line=" ".join(points))
