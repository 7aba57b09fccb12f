"""Plain-data views of models, shared by the REST API, the pages and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from quaero.stores.events import iso
from quaero.stores.job_reads import JobReads
from quaero.stores.jobs import Counts, JobFilter, JobManager
from quaero.stores.models import Job
from quaero.stores.progress import progress_of


def job_dict(job: Job, steps: Sequence[Job] | None = None, *, waiting: int = 0) -> dict[str, Any]:
    """A job as JSON-ready data, with its children's counts, the seed's progress text and its ``progress``
    (:func:`~quaero.stores.progress.progress_of`; an execution's needs its ``steps``: see :func:`job_dicts`).

    ``waiting``: how many of its running children wait (:meth:`JobReads.waiting_counts`); they are
    counted as ``waiting``, apart from ``running``. ``outcome`` is what the job came to (``saved``,
    ``skipped:robots``, ...), ``waiting`` (a text) why it waits while it runs.
    """
    stored = Counts.of(job)
    waiting = min(waiting, stored.running)
    counts = {**stored.as_dict(), "running": stored.running - waiting, "waiting": waiting}
    text = stored.progress_text if stored.total else ""
    if waiting:
        text = text.replace(f"{stored.running} running", f"{stored.running - waiting} running, {waiting} waiting")
    return {
        "id": job.id, "parent_id": job.parent_id, "root_id": job.root_id, "definition_id": job.definition_id,
        "type": job.type, "name": job.name, "phase": job.phase, "status": job.status,
        "error_message": job.error_message, "progress_current": job.progress_current,
        "progress_total": job.progress_total, "depth": job.depth, "attempts": job.attempts,
        "discovered_by": job.discovered_by, "result_count": job.result_count,
        "outcome": job.outcome, "waiting": job.waiting,
        "counts": counts, "progress_text": text,
        "progress": progress_of(job, steps),
        "payload": job.data,
        "created_at": iso(job.created_at), "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at) if job.started_at else None,
        "finished_at": iso(job.finished_at) if job.finished_at else None,
    }


def job_dicts(jobs: JobReads, items: Iterable[Job]) -> list[dict[str, Any]]:
    """:func:`job_dict` of each job: an execution's progress from its steps and the waiting children of
    each, one query each for all of them."""
    items = list(items)
    steps = jobs.steps_of([job.id for job in items if job.type == "parent"])
    waiting = jobs.waiting_counts([job.id for job in items if job.count_running]) if items else {}
    return [job_dict(job, steps.get(job.id), waiting=waiting.get(job.id, 0)) for job in items]


def page(items: list[Any], total: int, limit: int, offset: int, cursor: Any = None) -> dict[str, Any]:
    """One page of a list, the same shape for every list: ``next`` is the cursor of the following page
    (``None`` on the last one, or where a list pages by offset only)."""
    return {"items": items, "total": total, "limit": limit, "offset": offset, "next": cursor}


def job_page(jobs: JobManager, where: JobFilter, *, limit: int, offset: int = 0,
             before: str | None = None) -> dict[str, Any]:
    """One page of jobs, newest first, as ``GET /api/jobs`` and ``quaero jobs --json`` give it.

    A full page's last id is ``next``, the ``before`` of the following page; a shorter page is the last.
    """
    items, total = jobs.listing(where, limit=limit, offset=offset, before=before)
    cursor = items[-1].id if len(items) == limit else None
    return page(job_dicts(jobs, items), total, limit, offset, cursor)
