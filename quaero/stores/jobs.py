"""JobManager: job CRUD, enforced status transitions, child counts and cancellation.

Every transition is one conditional write: a job moves only from a state the table below allows, so a
finished job never runs again and a redelivered message for it does nothing. The parent's per-status
child counts change in the same transaction, which is what lets the monitor judge a parent of 10,000
children by reading one row.

    pending  → running | cancelled | failed
    running  → completed | failed | cancelled | pending (retry) | running (taken over after a crash)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from quaero.api.jobs import ChildSpec
from quaero.errors import Conflict
from quaero.stores.db import Database
from quaero.stores.events import JOB_STATUS_CHANGE, EventBus, iso
from quaero.stores.job_reads import (
    COUNT_COLUMNS,
    ID_BATCH,
    JOB_COLUMNS,
    JOB_FIELDS,
    Counts,
    JobFilter,
    JobReads,
    first_id_at,
    job_view,
)
from quaero.stores.jsonutil import dumps
from quaero.stores.models import TERMINAL_STATUSES, Job, Models
from quaero.stores.redaction import redact

__all__ = ["ALLOWED", "ChildSpec", "Counts", "JobFilter", "JobManager", "Transition", "first_id_at", "job_view",
           "new_job_id"]

ALLOWED = {
    "running": ("pending", "running"),
    "completed": ("running",),
    "failed": ("pending", "running"),
    "cancelled": ("pending", "running"),
    "pending": ("running",),
}

def new_job_id() -> str:
    """A time-ordered id, so sorting by id is sorting by creation."""
    return f"job_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Transition:
    """What one status change did."""

    job_id: str
    job_type: str
    parent_id: str | None
    old: str
    new: str
    row: dict[str, Any] | None = None


class JobManager(JobReads):
    """Job CRUD, status transitions, child statistics and cancellation (its reads: :class:`JobReads`)."""

    def __init__(self, database: Database, models: Models, bus: EventBus) -> None:
        self.database = database
        self.models = models
        self.bus = bus
        self._for_update = "" if database.is_sqlite else " FOR UPDATE"
        #: Called inside every deletion's transaction with the deleted ids (plugins' ``jobs_deleted``).
        self.deletion_listeners: list[Callable[[list[str]], None]] = []

    # ---------------------------------------------------------------- creation
    def create_job(
        self,
        type: str,
        name: str,
        *,
        parent: Job | None = None,
        payload: dict[str, Any] | None = None,
        phase: str = "execution",
        definition_id: str | None = None,
        depth: int | None = None,
    ) -> Job:
        """Create one job (pending), linked to ``parent`` when given, and count it on the parent."""
        job_id = new_job_id()
        stamp = time.time()
        fields = dict(
            id=job_id, type=type, name=name, phase=phase, payload=dumps(payload or {}),
            parent_id=parent.id if parent else None,
            root_id=(parent.root_id or parent.id) if parent else job_id,
            definition_id=definition_id if definition_id is not None else (parent.definition_id if parent else None),
            depth=depth if depth is not None else (parent.depth if parent else 0),
            created_at=stamp, updated_at=stamp,
        )
        with self.database.write():
            self.models.Job.insert(**fields).execute()
            if parent is not None:
                self._bump_parent(parent.id, pending=1)
        return self.get(job_id)

    def create_children(
        self, parent: Job, specs: Sequence[ChildSpec], *, depth: int, discovered_by: str | None = None
    ) -> list[str]:
        """Create many pending children of ``parent`` in one transaction; returns their ids in order."""
        if not specs:
            return []
        stamp = time.time()
        root_id = parent.root_id or parent.id
        rows: list[dict[str, Any]] = []
        for spec in specs:
            payload: dict[str, Any] = {"config": spec.config}
            if spec.item_ref is not None:
                payload["item_ref"] = spec.item_ref
            rows.append(dict(
                id=new_job_id(), parent_id=parent.id, root_id=root_id, definition_id=parent.definition_id,
                discovered_by=discovered_by, type=spec.type, name=spec.name, phase="execution",
                payload=dumps(payload), depth=depth, created_at=stamp, updated_at=stamp,
            ))
        columns = list(rows[0])
        sql = self.database.sql(f"INSERT INTO jobs ({', '.join(columns)}, status, attempts, progress_current, "
                                f"progress_total, {COUNT_COLUMNS}, result_count) VALUES "
                                f"({', '.join('?' * len(columns))}, 'pending', 0, 0, 0, 0, 0, 0, 0, 0, 0)")
        with self.database.write() as db:
            db.cursor().executemany(sql, [tuple(row.values()) for row in rows])
            self._bump_parent(parent.id, pending=len(rows))
        return [row["id"] for row in rows]

    def _bump_parent(self, parent_id: str, **deltas: int) -> None:
        sets = ", ".join(f"count_{status} = count_{status} + ?" for status in deltas)
        self.database.execute(
            f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ?", (*deltas.values(), time.time(), parent_id)
        )

    # ---------------------------------------------------------------- transitions
    def transition(
        self,
        job_id: str,
        new: str,
        *,
        allowed_from: Iterable[str] | None = None,
        error: str | None = None,
        publish: bool = True,
        generation: int | None = None,
        outcome: str | None = None,
    ) -> Transition | None:
        """Move a job to ``new`` if its current state allows it; ``None`` when it does not.

        One conditional ``UPDATE ... RETURNING``; a trigger moves the job between its parent's counts in
        the same statement. This runs twice for every job, so it stays one statement. ``generation``: only
        if the job's message generation is this one (a message sent before :meth:`supersede` does nothing).
        ``outcome`` (:mod:`quaero.api.outcomes`) is stored with the change; a failed job's is ``failed``
        unless a ``failed:<reason>`` is given, and a job sent back to pending loses its outcome. Every
        transition ends a wait (``waiting``): the job is doing something else now.
        """
        allowed = tuple(allowed_from) if allowed_from is not None else ALLOWED[new]
        stamp = time.time()
        sets = ["previous_status = status", "status = ?", "updated_at = ?", "waiting = NULL"]
        params: list[Any] = [new, stamp]
        if new == "failed":
            outcome = outcome if outcome is not None and outcome.startswith("failed") else "failed"
        if outcome is not None:
            sets.append("outcome = ?")
            params.append(outcome)
        elif new == "pending":
            sets.append("outcome = NULL")
        if new == "running":
            sets += ["started_at = COALESCE(started_at, ?)", "attempts = attempts + 1"]
            params.append(stamp)
        if new in TERMINAL_STATUSES:
            sets.append("finished_at = ?")
            params.append(stamp)
        if error is not None:
            sets.append("error_message = ?")
            params.append(redact(error))  # shown by the API and the pages: no secret in it
        elif new == "completed":
            sets.append("error_message = NULL")  # an earlier attempt's error no longer describes the job
        marks = ", ".join("?" * len(allowed))
        fence = "" if generation is None else " AND generation = ?"
        sql = (f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status IN ({marks}){fence} "
               f"RETURNING {JOB_COLUMNS}")
        row = self.database.write_one(sql, (*params, job_id, *allowed, *(() if generation is None else (generation,))))
        if row is None:
            return None
        job = dict(zip(JOB_FIELDS, row))
        result = Transition(job_id, job["type"], job["parent_id"], job["previous_status"], new, job)
        if publish:
            self.publish_status(result)
        return result

    def supersede(self, job_id: str, *, older_than: float) -> int | None:
        """Give a pending job untouched for ``older_than`` seconds a new message generation; returns it, or
        None when the job has moved meanwhile. Its messages sent before do nothing from now on."""
        stamp = time.time()
        row = self.database.write_one(
            "UPDATE jobs SET generation = generation + 1, updated_at = ? WHERE id = ? AND status = 'pending' "
            "AND updated_at < ? RETURNING generation", (stamp, job_id, stamp - older_than))
        return row[0] if row else None

    def publish_status(self, change: Transition) -> None:
        """Send the seed's ``job_status_change`` event for a transition."""
        self.bus.publish(JOB_STATUS_CHANGE, {
            "job_id": change.job_id, "parent_id": change.parent_id, "status": change.new,
            "previous_status": change.old, "job_type": change.job_type, "timestamp": iso(),
        })

    def set_progress(self, job_id: str, current: int, total: int) -> None:
        """Record a job's own progress counter."""
        with self.database.write():
            self.database.execute(
                "UPDATE jobs SET progress_current = ?, progress_total = ?, updated_at = ? WHERE id = ?",
                (current, total, time.time(), job_id),
            )

    def set_waiting(self, job_id: str, reason: str | None) -> None:
        """Say why a running job waits (``None``: it works again); a job that finished meanwhile keeps none."""
        self.database.write_one("UPDATE jobs SET waiting = ? WHERE id = ? AND status = 'running'",
                                (reason[:200] if reason else None, job_id))

    def add_results(self, *job_ids: str, count: int = 1) -> None:
        """Add to jobs' result counts (a step's and its execution's: what ``job_progress`` reports).

        Give the ids child first: rows are locked in that order, the order the status trigger locks a
        child and then its parent, so concurrent writers on PostgreSQL never wait on each other in a circle.
        """
        with self.database.write():
            for job_id in job_ids:
                self.database.execute("UPDATE jobs SET result_count = result_count + ? WHERE id = ?", (count, job_id))

    def update_payload(self, job_id: str, **values: Any) -> Job:
        """Merge ``values`` into a job's payload."""
        self._rewrite_payload(job_id, lambda data: {**data, **values})
        return self.get(job_id)

    def merge_result(self, job_id: str, figures: dict[str, Any]) -> None:
        """Merge figures into a job's result (``payload.result``), which the API and the job page show."""
        self._rewrite_payload(job_id, lambda data: {**data, "result": {**data.get("result", {}), **figures}})

    def _rewrite_payload(self, job_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Read a job's payload, change it and write it back, in one write transaction."""
        with self.database.write():
            data = change(self.get(job_id).data)
            self.database.execute("UPDATE jobs SET payload = ?, updated_at = ? WHERE id = ?",
                                  (dumps(data), time.time(), job_id))

    # ---------------------------------------------------------------- cancellation and deletion
    def cancel(self, job_id: str, *, reason: str = "cancelled", include_self: bool = True) -> list[str]:
        """Cancel a job and every unfinished descendant; returns the ids that were running.

        Pending descendants are cancelled at once (their messages will do nothing); the running ones are
        returned so their workers can be told to stop. ``include_self=False`` cancels only the descendants.
        """
        job = self.get(job_id)
        if include_self and job.is_terminal:
            return []
        stamp = time.time()
        with self.database.write():
            doomed = self._descendants(job.id, unfinished_only=True)
            if include_self:
                doomed.insert(0, (job.id, job.status))
            running = [jid for jid, status in doomed if status == "running"]
            # The status trigger moves every cancelled job between its parent's counts.
            self._in_chunks(
                [jid for jid, _ in doomed],
                "UPDATE jobs SET previous_status = status, status = 'cancelled', "
                "error_message = COALESCE(error_message, ?), updated_at = ?, finished_at = ? "
                "WHERE id IN ({marks}) AND status IN ('pending', 'running')",
                (reason, stamp, stamp),
            )
        if include_self:
            self.publish_status(Transition(job.id, job.type, job.parent_id, job.status, "cancelled"))
        return [jid for jid in running if jid != job.id]

    def cancel_pending(self, job_id: str, *, reason: str) -> int:
        """Cancel every descendant of ``job_id`` that has not started; returns how many. Running ones go on."""
        stamp = time.time()
        with self.database.write():
            doomed = [jid for jid, status in self._descendants(job_id, unfinished_only=True) if status == "pending"]
            self._in_chunks(
                doomed,
                "UPDATE jobs SET previous_status = status, status = 'cancelled', "
                "error_message = COALESCE(error_message, ?), updated_at = ?, finished_at = ? "
                "WHERE id IN ({marks}) AND status = 'pending'",
                (reason, stamp, stamp),
            )
        return len(doomed)

    def _descendants(self, job_id: str, *, unfinished_only: bool) -> list[tuple[str, str]]:
        """(id, status) of every job below ``job_id``, level by level; only pending and running ones when
        ``unfinished_only`` (a finished job's subtree is finished too)."""
        where = " AND status IN ('pending', 'running')" if unfinished_only else ""
        found: list[tuple[str, str]] = []
        level = [job_id]
        while level:
            rows = []
            for start in range(0, len(level), ID_BATCH):
                chunk = level[start:start + ID_BATCH]
                marks = ", ".join("?" * len(chunk))
                rows += self.database.execute(
                    f"SELECT id, status FROM jobs WHERE parent_id IN ({marks}){where}", chunk).fetchall()
            found += [(row[0], row[1]) for row in rows]
            level = [row[0] for row in rows]
        return found

    def _in_chunks(self, ids: list[str], sql: str, params: tuple = ()) -> None:
        """Run ``sql`` (with ``{marks}`` for the id placeholders) over ``ids`` in batches."""
        for start in range(0, len(ids), ID_BATCH):
            chunk = ids[start:start + ID_BATCH]
            self.database.execute(sql.format(marks=", ".join("?" * len(chunk))), (*params, *chunk))

    def _store_counts(self, job_id: str, counts: Counts) -> None:
        self.database.execute(
            "UPDATE jobs SET count_pending = ?, count_running = ?, count_completed = ?, count_failed = ?, "
            "count_cancelled = ? WHERE id = ?",
            (counts.pending, counts.running, counts.completed, counts.failed, counts.cancelled, job_id),
        )

    def delete(self, job_id: str) -> int:
        """Delete a finished job with its descendants and logs; returns how many jobs were removed."""
        job = self.get(job_id)
        if not job.is_terminal:
            raise Conflict(f"job {job_id} is {job.status}; cancel it before deleting it")
        with self.database.write():
            ids = [job_id, *(jid for jid, _ in self._descendants(job_id, unfinished_only=False))]
            self._in_chunks(ids, "DELETE FROM job_logs WHERE job_id IN ({marks})")
            self._in_chunks(ids, "DELETE FROM jobs WHERE id IN ({marks})")
            for listener in self.deletion_listeners:
                listener(ids)
            if job.parent_id:
                self._store_counts(job.parent_id, self.recount(job.parent_id))
        return len(ids)

    def reset_for_rerun(self, job_id: str) -> Transition | None:
        """Put a failed or cancelled job back to pending (used when a dead letter is requeued)."""
        return self.transition(job_id, "pending", allowed_from=("failed", "cancelled"))
