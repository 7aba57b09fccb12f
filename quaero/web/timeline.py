"""A job's timeline, drawn on the server: its durations, its steps or children as bars over time, its rate.

An execution shows one bar per step (queued, then running), a step one bar per child while it has at most
:data:`MAX_BARS` of them, and past that a density strip: how many children started and finished in each
bucket of time, from one aggregate query. Both show the rate of the step at work: children finished per
second, bucket by bucket, over the step's own run time. The time axis counts from the job's creation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quaero.stores.jobs import JobManager
from quaero.stores.models import Job
from quaero.stores.timeline import Buckets, Span
from quaero.web.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, Chart, Mark, Tick, nice_peak
from quaero.web.render import duration

#: At most this many children are drawn one bar each; a step with more is drawn as a density strip.
MAX_BARS = 200
#: Buckets of the density strip and of the rate chart.
BUCKETS = 60
#: The timeline's size in SVG units: room on the left for the names, below for the time labels.
T_WIDTH, T_LEFT, T_RIGHT, T_AXIS = 720.0, 150.0, 8.0, 18.0
#: Bucket widths in seconds, and the spacing of time labels, are round numbers of these.
ROUND_SECONDS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)


@dataclass(frozen=True)
class Bar:
    """One row of the timeline: a job queued from ``queued_x`` and running from ``run_x`` to ``end_x``."""

    y: float
    height: float
    label: str
    href: str | None
    status: str
    queued_x: float
    run_x: float | None
    end_x: float
    title: str


@dataclass(frozen=True)
class Strip:
    """One row of a density strip: a cell per bucket, ``level`` from 0 to 1 of the busiest bucket."""

    y: float
    label: str
    cells: tuple[tuple[float, float, float, str], ...]  # x, width, level, title


@dataclass(frozen=True)
class Timeline:
    """What ``_job_timeline.html`` draws; ``empty`` is said instead when there is nothing to draw."""

    label: str
    bars: tuple[Bar, ...]
    strips: tuple[Strip, ...]
    x_ticks: tuple[Tick, ...]
    height: float
    empty: str | None
    note: str = ""
    width: float = T_WIDTH
    left: float = T_LEFT
    right: float = T_WIDTH - T_RIGHT

    @property
    def bottom(self) -> float:
        return self.height - T_AXIS


def round_up(value: float) -> float:
    """The smallest of :data:`ROUND_SECONDS` at least ``value`` (a whole number of days past them)."""
    for candidate in ROUND_SECONDS:
        if value <= candidate:
            return float(candidate)
    return float(math.ceil(value / 86400) * 86400)


def elapsed_label(seconds: float) -> str:
    """A time label of the axis, counted from the start: ``0``, ``30 s``, ``2 min``, ``1.5 h``."""
    if seconds == 0:
        return "0"
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def time_ticks(span: float, x_of: Any, *, most: int = 6) -> tuple[Tick, ...]:
    """Labelled ticks every round number of seconds from 0 to ``span``, at most ``most`` of them."""
    step = round_up(span / (most - 1)) if span > 0 else 1.0
    ticks = []
    at = 0.0
    while at <= span + 1e-9:
        ticks.append(Tick(x_of(at), elapsed_label(at), "start" if at == 0 else "middle"))
        at += step
    return tuple(ticks)


def _spans_bars(spans: Sequence[Span], *, origin: float, end: float, x_of: Any, top: float, labels: bool,
                link: bool) -> tuple[list[Bar], float]:
    """A bar per span, one under the other; returns the bars and the y below the last."""
    row = 16.0 if labels else max(2.0, min(8.0, 480.0 / max(1, len(spans))))
    gap = 4.0 if labels else (1.0 if row > 3 else 0.0)
    bars = []
    y = top
    for span in spans:
        started, finished = span.started_at, span.finished_at
        stop = finished or end
        parts = [f"{span.name}: {span.status}"]
        if started is not None:
            parts.append(f"queued {duration(started - span.created_at)}")
            parts.append(f"{'ran' if finished else 'running for'} {duration(stop - started)}")
        else:
            parts.append(f"waiting for {duration(stop - span.created_at)}")
        bars.append(Bar(y, row, span.name if labels else "", f"/jobs/{span.id}" if link else None, span.status,
                        x_of(span.created_at - origin), None if started is None else x_of(started - origin),
                        max(x_of(stop - origin), x_of(span.created_at - origin) + 1.0), ", ".join(parts)))
        y += row + gap
    return bars, y


def steps_timeline(steps: Sequence[Job], *, origin: float, end: float) -> Timeline:
    """An execution's steps as bars over time (``origin`` and ``end`` in epoch seconds)."""
    spans = [Span(s.id, s.name, s.status, s.created_at, s.started_at, s.finished_at) for s in steps]
    return _timeline("steps over time", spans, origin=origin, end=end, labels=True, empty="No step has started yet.")


def _timeline(label: str, spans: Sequence[Span], *, origin: float, end: float, labels: bool, empty: str,
              note: str = "") -> Timeline:
    span = max(end - origin, 0.001)

    def x_of(seconds: float) -> float:
        return T_LEFT + max(0.0, min(seconds, span)) / span * (T_WIDTH - T_RIGHT - T_LEFT)

    bars, bottom = _spans_bars(spans, origin=origin, end=end, x_of=x_of, top=4.0, labels=labels, link=True)
    return Timeline(label, tuple(bars), (), time_ticks(span, x_of), bottom + T_AXIS, None if bars else empty, note)


def density_timeline(buckets: Buckets, *, origin: float, end: float, total: int) -> Timeline:
    """Children started and finished per bucket, as two strips of cells shaded by how many."""
    span = max(end - origin, 0.001)

    def x_of(seconds: float) -> float:
        return T_LEFT + max(0.0, min(seconds, span)) / span * (T_WIDTH - T_RIGHT - T_LEFT)

    strips = []
    for row, (name, counts) in enumerate((("started", buckets.started), ("finished", buckets.finished))):
        peak = max(counts, default=0) or 1
        cells = []
        for index, number in enumerate(counts):
            begin = buckets.start + index * buckets.width - origin
            if begin >= span:
                break
            left, right = x_of(begin), x_of(begin + buckets.width)
            title = f"{elapsed_label_exact(begin)}–{elapsed_label_exact(begin + buckets.width)}: {number:,} {name}"
            cells.append((left, max(right - left, 0.5), number / peak, title))
        strips.append(Strip(4.0 + row * 22.0, f"{name} ({sum(counts):,})", tuple(cells)))
    note = (f"{total:,} children: shown as how many started and finished per {duration(buckets.width)}, "
            "darker where more did")
    has_data = any(buckets.started) or any(buckets.finished)
    return Timeline("children started and finished over time", (), tuple(strips), time_ticks(span, x_of),
                    4.0 + 2 * 22.0 + T_AXIS, None if has_data else "No child has started yet.", note)


def elapsed_label_exact(seconds: float) -> str:
    """A bucket's bound for a tooltip: ``+12.5 s``, ``+3 min 05 s``."""
    return "+" + (duration(seconds) if seconds > 0 else "0 s")


def rate_chart(buckets: Buckets, *, origin: float, end: float, unit: str) -> Chart:
    """Children finished per second in each bucket, over the step's run (the last bucket by its part run)."""
    span = max(end - origin, 0.001)
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def x_of(seconds: float) -> float:
        return left + max(0.0, min(seconds, span)) / span * (right - left)

    rates = []
    for index, number in enumerate(buckets.finished):
        begin = buckets.start + index * buckets.width - origin
        if begin >= span:
            break
        covered = min(buckets.width, span - begin)
        rates.append((begin, number / covered if covered > 0 else 0.0))
    peak = nice_peak(max((r for _, r in rates), default=0.0))

    def y_of(value: float) -> float:
        return bottom - value / peak * (bottom - top)

    marks = tuple(Mark(x_of(begin), y_of(rate), max(1.0, x_of(begin + buckets.width) - x_of(begin) - 1),
                       f"{elapsed_label_exact(begin)}: {rate:,.2f} {unit}") for begin, rate in rates)
    values = (0.0, peak / 2, peak)
    y_ticks = tuple(Tick(y_of(v), f"{v:g}") for v in values)
    has_data = any(rate for _, rate in rates)
    return Chart(label=f"{unit} over the step's run", unit=unit, kind="bars", marks=marks,
                 x_ticks=time_ticks(span, x_of, most=5), y_ticks=y_ticks,
                 empty=None if has_data else "No child has finished yet: no rate yet.")


def bucketing(span: float) -> tuple[int, float]:
    """How many buckets cut ``span`` (at most :data:`BUCKETS`, each about a round number of seconds) and how
    wide each is: exactly ``span`` over their number, so that no last bucket covers a sliver of time and
    draws a rate out of two children in a millisecond."""
    span = max(span, 0.001)
    count = max(1, min(BUCKETS, math.ceil(span / round_up(span / BUCKETS))))
    return count, span / count


def durations(job: Job, now: float) -> dict[str, float | None]:
    """How long a job waited to start, ran, and took in all (so far, while it runs)."""
    end = job.finished_at or now
    return {"queued": (job.started_at or end) - job.created_at,
            "ran": end - job.started_at if job.started_at is not None else None,
            "total": end - job.created_at}


def _unit(step: Job) -> str:
    return "pages/s" if step.data.get("action") == "crawl" else "jobs/s"


def _step_buckets(jobs: JobManager, step: Job, now: float) -> tuple[float, float, Buckets]:
    """A step's run (from its start, or its creation until it starts, to its end or now) and its children
    started and finished per bucket of it."""
    origin = step.started_at or step.created_at
    end = step.finished_at or now
    count, width = bucketing(end - origin)
    return origin, end, jobs.child_buckets(step.id, start=origin, width=width, count=count)


def _children(jobs: JobManager, step: Job, origin: float, end: float, buckets: Buckets) -> Timeline:
    """A step's children over time: a bar each up to :data:`MAX_BARS` of them, else a density strip."""
    total = step.count_pending + step.count_running + step.count_completed + step.count_failed + step.count_cancelled
    if total > MAX_BARS:
        return density_timeline(buckets, origin=origin, end=end, total=total)
    spans = sorted(jobs.child_spans(step.id, limit=MAX_BARS),  # a waterfall: in the order they started
                   key=lambda span: (span.started_at is None, span.started_at or span.created_at, span.id))
    return _timeline("children over time", spans,
                     origin=origin, end=end, labels=total <= 30, empty="No child yet.")


def job_timeline(jobs: JobManager, job: Job, *, now: float | None = None) -> dict[str, Any]:
    """What the job page's timeline shows: durations, the steps (an execution) or children (a step) over
    time, and the rate of the step at work; ``live`` while the job can still change."""
    now = time.time() if now is None else now
    context: dict[str, Any] = {"durations": durations(job, now), "steps": None, "children": None, "rate": None,
                               "rate_step": None, "live": not job.is_terminal,
                               "started": datetime.fromtimestamp(job.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
    if job.type == "parent":
        steps = jobs.steps_of([job.id])[job.id]
        context["steps"] = steps_timeline(steps, origin=job.created_at, end=job.finished_at or now)
        if steps:
            current = next((s for s in reversed(steps) if not s.is_terminal), steps[-1])
            origin, end, buckets = _step_buckets(jobs, current, now)
            context["rate"] = rate_chart(buckets, origin=origin, end=end, unit=_unit(current))
            context["rate_step"] = current.name
    elif job.type == "step":
        origin, end, buckets = _step_buckets(jobs, job, now)
        context["children"] = _children(jobs, job, origin, end, buckets)
        context["rate"] = rate_chart(buckets, origin=origin, end=end, unit=_unit(job))
        context["rate_step"] = job.name
    return context
