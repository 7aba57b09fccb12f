"""A job's progress as its work: what the bars, the live page, the API's ``progress`` object and the CLI show.

An execution's progress is its steps' work, not its steps: the children done of the children known across
all its steps, and the step it is on (``step 2/3 crawl: 140/400``). A step's is its own children; a child's
its own counter. The figures come from the per-status counts stored on the step rows, so an execution of
10,000 children costs one small read of its steps, never a count of the children.

The ETA is the current step's known remaining children at the step's own rate (children finished per
second of the step's run time); ``None`` while that rate is unknown or nothing known is left to do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from quaero.stores.models import Job

DONE = ("completed", "failed", "cancelled")


def _done(job: Job) -> int:
    return job.count_completed + job.count_failed + job.count_cancelled


def _known(job: Job) -> int:
    return _done(job) + job.count_pending + job.count_running


def step_rate(step: Job, now: float | None = None) -> float | None:
    """Children finished per second of the step's own run time (to its end, once it has ended)."""
    if step.started_at is None:
        return None
    end = step.finished_at or (time.time() if now is None else now)
    elapsed = end - step.started_at
    done = _done(step)
    return done / elapsed if elapsed > 0 and done else None


def step_eta(step: Job, now: float | None = None) -> float | None:
    """Seconds until the step's known children are done at its rate so far; ``None`` when unknown."""
    if step.is_terminal:
        return None
    rate = step_rate(step, now)
    remaining = _known(step) - _done(step)
    return remaining / rate if rate and remaining > 0 else None


def progress_of(job: Job, steps: Sequence[Job] | None = None, *, now: float | None = None) -> dict[str, Any]:
    """The ``progress`` object of a job: ``done`` of ``total``, ``percent``, the parts that ``completed``,
    ``failed`` and were ``cancelled``, the ``step`` it is on with its ``step_index`` (from 1) of ``steps``,
    a ``text`` to show, the current step's ``rate_per_s`` and ``eta_s`` (``None`` when unknown).

    ``steps`` are an execution's step jobs oldest first (:meth:`~quaero.stores.job_reads.JobReads.steps_of`);
    without them an execution's figures fall back to its own counts, which count steps.
    """
    now = time.time() if now is None else now
    current: Job | None = None
    step_index: int | None = None
    step_count: int | None = None
    if job.type == "parent" and steps is not None:
        parts = [sum(getattr(s, f"count_{status}") for s in steps) for status in DONE]
        total = sum(_known(s) for s in steps)
        defined = [step.get("name") for step in job.data.get("definition", {}).get("steps", ())]
        step_count = len(defined) or len(steps)
        if steps:
            unfinished = [s for s in steps if not s.is_terminal]
            current = unfinished[-1] if unfinished else steps[-1]
            # The definition's step the execution is on, found by the name of the step at work (names are
            # unique; a retried step has more than one job). The steps are read after the execution's row,
            # so they can be a step ahead of the execution's own ``step_index``.
            if current.name in defined:
                step_index = defined.index(current.name) + 1
            else:
                step_index = min(int(job.data.get("step_index", len(steps) - 1)) + 1, step_count)
    elif job.type in ("parent", "step"):
        parts = [getattr(job, f"count_{status}") for status in DONE]
        total = _known(job)
        current = job if job.type == "step" else None
    else:
        parts = [job.progress_current, 0, 0]
        total = job.progress_total or 0
    done = sum(parts)
    terminal = job.is_terminal
    if total:
        percent = done * 100 // total
        if not terminal:
            percent = min(percent, 99)  # known work can all be done while more is being found
    else:
        percent = 100 if terminal else 0
    rate = step_rate(current, now) if current is not None else None
    eta = None if terminal or current is None else step_eta(current, now)
    return {
        "done": done, "total": total, "percent": percent,
        "completed": parts[0], "failed": parts[1], "cancelled": parts[2],
        "step": current.name if current is not None and job.type == "parent" else None,
        "step_index": step_index, "steps": step_count,
        "text": _text(job, done, total, current, step_index, step_count, terminal),
        "rate_per_s": round(rate, 3) if rate is not None else None,
        "eta_s": round(eta, 1) if eta is not None else None,
    }


def _text(job: Job, done: int, total: int, current: Job | None, index: int | None, count: int | None,
          terminal: bool) -> str:
    """What a person reads next to the bar; never ``0/0`` or ``0/None``: an unknown total is left out."""
    figures = f"{done:,}/{total:,}" if total else ""
    if job.type != "parent" or count is None:
        return figures
    if current is None or terminal:
        steps = f"{count} step{'s' if count != 1 else ''}"
        return f"{steps}: {figures}" if figures else steps if terminal else ""
    own = _known(current)
    mine = f": {_done(current):,}/{own:,}" if own else ""
    return f"step {index}/{count} {current.name}{mine}"
