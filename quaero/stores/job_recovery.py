"""The writes and reads of job recovery: failed jobs reset to run again, their step and execution reopened,
and the jobs a filter matches for a bulk action.

Every write here runs inside the caller's write transaction (:class:`~quaero.engine.recovery.JobRecovery`
holds it), so a re-run is all or nothing: children reset, step reopened and execution reopened together.
The status trigger moves each reset child between its step's counts, and each reopened step between its
execution's, in the same statements.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from peewee import SQL, fn

from quaero.stores.job_reads import ID_BATCH, JobFilter
from quaero.stores.jobs import JobManager
from quaero.stores.jsonutil import dumps
from quaero.stores.models import Job

#: What a finished job may go back to pending from.
RERUNNABLE = ("failed", "cancelled")
#: Payload keys that describe one run's outcome, dropped when the job runs again.
RUN_KEYS = ("result", "outcome")


class JobResets:
    """Reset jobs to run again and reopen their parents; list what a bulk filter matches."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self.database = jobs.database

    # ---------------------------------------------------------------- reads
    def children_ids(self, parent_id: str, statuses: tuple[str, ...]) -> list[str]:
        """The ids of a parent's direct children in one of ``statuses``, oldest first."""
        marks = ", ".join("?" * len(statuses))
        rows = self.database.execute(
            f"SELECT id FROM jobs WHERE parent_id = ? AND status IN ({marks}) ORDER BY id",
            (parent_id, *statuses)).fetchall()
        return [row[0] for row in rows]

    def matching_ids(self, where: JobFilter, *, limit: int) -> list[str]:
        """The ids of the jobs ``where`` matches, newest first (as the listing shows them), at most ``limit``."""
        Job_ = self.jobs.models.Job
        conditions = where.conditions(Job_)
        query = Job_.select(Job_.id)
        if conditions:
            query = query.where(*conditions)
        rows: list[tuple[str]] = list(cast(Any, query.order_by(Job_.id.desc()).limit(limit).tuples()))
        return [row[0] for row in rows]

    def by_status(self, where: JobFilter) -> dict[str, int]:
        """How many jobs ``where`` matches, by status (only the statuses that have some)."""
        Job_ = self.jobs.models.Job
        conditions = where.conditions(Job_)
        query = Job_.select(Job_.status, fn.COUNT(SQL("*")))
        if conditions:
            query = query.where(*conditions)
        rows: list[tuple[str, int]] = list(cast(Any, query.group_by(Job_.status).tuples()))
        return dict(rows)

    def find_many(self, job_ids: list[str]) -> dict[str, Job]:
        """These jobs by id (the ones that exist)."""
        Job_ = self.jobs.models.Job
        found: dict[str, Job] = {}
        for start in range(0, len(job_ids), ID_BATCH):
            for job in Job_.select().where(Job_.id.in_(job_ids[start:start + ID_BATCH])):
                found[job.id] = job
        return found

    # ---------------------------------------------------------------- writes (inside a write transaction)
    def reset(self, job: Job, *, ancestors: tuple[str, ...]) -> int | None:
        """Put a failed or cancelled job back to pending as if new: no attempts, error, progress, times or
        results; a new message generation (returned), so that any message sent for it before does nothing.
        Its result count is taken off ``ancestors`` (its step and execution), which count its new results
        when it saves them again. ``None`` when the job was no longer failed or cancelled."""
        payload = {key: value for key, value in job.data.items() if key not in RUN_KEYS}
        marks = ", ".join("?" * len(RERUNNABLE))
        rows = self.database.execute(
            "UPDATE jobs SET previous_status = status, status = 'pending', attempts = 0, error_message = NULL, "
            "started_at = NULL, finished_at = NULL, progress_current = 0, progress_total = 0, result_count = 0, "
            f"generation = generation + 1, payload = ?, updated_at = ? WHERE id = ? AND status IN ({marks}) "
            "RETURNING generation", (dumps(payload), time.time(), job.id, *RERUNNABLE)).fetchall()
        if not rows:
            return None
        if job.result_count:
            for ancestor in ancestors:
                self.database.execute("UPDATE jobs SET result_count = result_count - ? WHERE id = ?",
                                      (job.result_count, ancestor))
        return int(rows[0][0])

    def reopen(self, job_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> str | None:
        """Put a finished step or execution back to running, its payload changed by ``change``; returns the
        status it had (``None`` when it was not finished). Its start time stays: it is when it first ran."""
        job = self.jobs.get(job_id)
        if not job.is_terminal:
            return None
        rows = self.database.execute(
            "UPDATE jobs SET previous_status = status, status = 'running', finished_at = NULL, error_message = NULL, "
            "payload = ?, updated_at = ? WHERE id = ? AND status IN ('completed', 'failed', 'cancelled') "
            "RETURNING previous_status", (dumps(change(job.data)), time.time(), job_id)).fetchall()
        return rows[0][0] if rows else None
