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

from peewee import SQL, fn

from quaero.api.jobs import ChildSpec, JobView
from quaero.stores.db import Database
from quaero.errors import Conflict, NotFound
from quaero.stores.events import JOB_STATUS_CHANGE, EventBus, iso
from quaero.stores.logs import LEVELS, normalise_level
from quaero.stores.jsonutil import dumps
from quaero.stores.models import JOB_STATUSES, TERMINAL_STATUSES, Job, Models

ALLOWED = {
    "running": ("pending", "running"),
    "completed": ("running",),
    "failed": ("pending", "running"),
    "cancelled": ("pending", "running"),
    "pending": ("running",),
}
COUNT_COLUMNS = ", ".join(f"count_{status}" for status in JOB_STATUSES)
JOB_FIELDS = tuple(Job._meta.sorted_field_names)
JOB_COLUMNS = ", ".join(JOB_FIELDS)
_BATCH = 400
# The distinct job types, one index seek each (a skip scan of the (type, id) index) instead of reading
# every row's entry as SELECT DISTINCT does. Plain SQL that SQLite and PostgreSQL both run as written.
JOB_TYPES = """WITH RECURSIVE t(type) AS (
    SELECT MIN(type) FROM jobs
    UNION ALL SELECT (SELECT MIN(type) FROM jobs WHERE type > t.type) FROM t WHERE t.type IS NOT NULL
) SELECT type FROM t WHERE type IS NOT NULL LIMIT ?"""


def new_job_id() -> str:
    """A time-ordered id, so sorting by id is sorting by creation."""
    return f"job_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def first_id_at(stamp: float) -> str:
    """The smallest id a job created at ``stamp`` can have: ids compare as their creation times do."""
    return f"job_{int(stamp * 1000):012x}"


@dataclass(frozen=True, slots=True)
class Counts:
    """A parent's direct children by status."""

    pending: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, job: Job) -> Counts:
        """The counts stored on a parent's row."""
        return cls(job.count_pending, job.count_running, job.count_completed, job.count_failed,
                   job.count_cancelled)

    @property
    def total(self) -> int:
        return self.pending + self.running + self.completed + self.failed + self.cancelled

    @property
    def active(self) -> int:
        return self.pending + self.running

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "pending": self.pending, "running": self.running,
                "completed": self.completed, "failed": self.failed, "cancelled": self.cancelled}

    @property
    def progress_text(self) -> str:
        """The seed's progress text."""
        text = f"{self.pending} pending, {self.running} running, {self.completed} completed, {self.failed} failed"
        return text + (f", {self.cancelled} cancelled" if self.cancelled else "")


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a listing of jobs narrows to; ``None`` matches any value."""

    status: str | None = None
    type: str | None = None
    parent_id: str | None = None
    definition_id: str | None = None

    def conditions(self, model: type[Job]) -> list[Any]:
        """The filter as peewee expressions on ``model``'s columns."""
        return [getattr(model, name) == value for name in ("status", "type", "parent_id", "definition_id")
                if (value := getattr(self, name)) is not None]

    @property
    def children_only(self) -> bool:
        """Whether the filter asks only for a parent's children (with one status or all of them)."""
        return self.parent_id is not None and self.type is None and self.definition_id is None


@dataclass(frozen=True, slots=True)
class Transition:
    """What one status change did."""

    job_id: str
    job_type: str
    parent_id: str | None
    old: str
    new: str
    row: dict[str, Any] | None = None


class JobManager:
    """Job CRUD, status transitions, logs lookups and child statistics."""

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
        rows = []
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

    # ---------------------------------------------------------------- reading
    def get(self, job_id: str) -> Job:
        """The job, or :class:`NotFound`."""
        job = self.find(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job

    def find(self, job_id: str) -> Job | None:
        """The job, or ``None`` (one plain SELECT: the monitor and processor call this constantly)."""
        row = self.database.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self.models.Job(**dict(zip(JOB_FIELDS, row))) if row else None

    def counts(self, job_id: str) -> Counts:
        """The stored child counts of a parent."""
        row = self.database.execute(f"SELECT {COUNT_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return Counts(*row)

    def recount(self, job_id: str) -> Counts:
        """Count a parent's children from the rows themselves (the slow, authoritative way)."""
        rows = self.database.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE parent_id = ? GROUP BY status", (job_id,)
        ).fetchall()
        found = dict(rows)
        return Counts(*(found.get(status, 0) for status in JOB_STATUSES))

    def children(self, job_id: str, *, status: str | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        """Direct children, oldest first."""
        Job_ = self.models.Job
        query = Job_.select().where(Job_.parent_id == job_id)
        if status:
            query = query.where(Job_.status == status)
        return list(query.order_by(Job_.id).limit(limit).offset(offset))

    def listing(self, where: JobFilter, *, limit: int = 50, offset: int = 0,
                before: str | None = None) -> tuple[list[Job], int]:
        """Jobs newest first, and how many match ``where`` in all.

        ``before`` (a job id: the last one of the previous page) pages by key, as fast on the last page as
        on the first, where a deep ``offset`` walks every row it skips.
        """
        Job_ = self.models.Job
        conditions = where.conditions(Job_)
        if before is not None:
            conditions.append(Job_.id < before)
        query = Job_.select().where(*conditions) if conditions else Job_.select()
        items = list(query.order_by(Job_.id.desc()).limit(limit).offset(offset))
        return items, self._total(where)

    def _total(self, where: JobFilter) -> int:
        """How many jobs match: a parent's stored counts answer "its children (with this status)" without
        counting rows, and a plain ``COUNT(*)`` (not peewee's wrapped count) lets SQLite count the smallest
        index, or the rows of one index range."""
        if not where.children_only:
            Job_ = self.models.Job
            conditions = where.conditions(Job_)
            counted = Job_.select(fn.COUNT(SQL("*")))
            return (counted.where(*conditions) if conditions else counted).scalar()
        row = self.database.execute(f"SELECT {COUNT_COLUMNS} FROM jobs WHERE id = ?", (where.parent_id,)).fetchone()
        if row is None:
            return 0
        counts = Counts(*row)
        return getattr(counts, where.status) if where.status else counts.total

    def count_logs(self, job_id: str, *, descendants: bool = False, level: str | None = None) -> int:
        """How many log lines a job has (with its descendants' lines, as the log reader gives them)."""
        JobLog, Job_ = self.models.JobLog, self.models.Job
        scope = JobLog.job_id == job_id
        if descendants:
            below = Job_.select(Job_.id).where((Job_.parent_id == job_id) | (Job_.root_id == job_id))
            scope = scope | JobLog.job_id.in_(below)
        query = JobLog.select().where(scope)
        if level:
            query = query.where(JobLog.level.in_(LEVELS[LEVELS.index(normalise_level(level)):]))
        return query.count()

    def census(self) -> list[tuple[str, str, int]]:
        """(status, type, how many) for every pair stored, read from the (status, type) index alone."""
        return self.database.execute("SELECT status, type, COUNT(*) FROM jobs GROUP BY status, type").fetchall()

    def durations(self, *, since: float, bounds: Sequence[float], limit: int = 10_000) -> list[tuple]:
        """How long the finished jobs created since ``since`` ran, by type and status.

        Rows of (type, status, count, seconds in all, then how many ran at most each of ``bounds``). At most
        the ``limit`` newest jobs are read, through the primary key, so the cost is bounded however many
        jobs are stored.
        """
        within = ", ".join("SUM(CASE WHEN took <= ? THEN 1 ELSE 0 END)" for _ in bounds)
        sql = (f"SELECT type, status, COUNT(*), SUM(took), {within} FROM ("
               "SELECT type, status, finished_at - started_at AS took FROM jobs WHERE id >= ? "
               "AND finished_at IS NOT NULL AND started_at IS NOT NULL ORDER BY id DESC LIMIT ?) AS recent "
               "GROUP BY type, status")
        return self.database.execute(sql, (*bounds, first_id_at(since), limit)).fetchall()

    def tree(self, root_id: str) -> list[Job]:
        """An execution's root and every job below it, oldest first."""
        Job_ = self.models.Job
        return list(Job_.select().where((Job_.root_id == root_id) | (Job_.id == root_id)).order_by(Job_.id))

    def running_parent_ids(self) -> list[str]:
        """Ids of the step parents and executions that are running (what the monitor watches)."""
        rows = self.database.execute("SELECT id FROM jobs WHERE type IN ('step', 'parent') AND status = 'running'")
        return [row[0] for row in rows.fetchall()]

    def cancelled_among(self, job_ids: Sequence[str]) -> list[str]:
        """Which of these jobs are cancelled (asked every quarter second for the running ones)."""
        found: list[str] = []
        for start in range(0, len(job_ids), _BATCH):
            chunk = list(job_ids[start:start + _BATCH])
            marks = ", ".join("?" * len(chunk))
            found += [row[0] for row in self.database.execute(
                f"SELECT id FROM jobs WHERE id IN ({marks}) AND status = 'cancelled'", chunk).fetchall()]
        return found

    def stale_pending(self, *, older_than: float, limit: int = 1000) -> list[tuple[str, str]]:
        """(id, type) of child jobs pending and untouched for ``older_than`` seconds, oldest first."""
        return self.database.execute(
            "SELECT id, type FROM jobs WHERE status = 'pending' AND type NOT IN ('parent', 'step') "
            "AND updated_at < ? ORDER BY id LIMIT ?", (time.time() - older_than, limit)).fetchall()

    def has_running_execution(self, definition_id: str) -> bool:
        """Whether an execution of the definition is pending or running."""
        Job_ = self.models.Job
        return Job_.select().where(Job_.type == "parent", Job_.definition_id == definition_id,
                                   Job_.status.in_(("pending", "running"))).exists()

    def executions(self, *, definition_id: str | None = None, statuses: Sequence[str] = (),
                   limit: int = 20) -> list[Job]:
        """Executions (root jobs) newest first, of one definition and in one of ``statuses`` when given.

        Read in id order from the (definition_id, id) index for a definition, else from (type, id).
        """
        Job_ = self.models.Job
        query = Job_.select().where(Job_.type == "parent")
        if definition_id is not None:
            query = query.where(Job_.definition_id == definition_id)
        if statuses:
            query = query.where(Job_.status.in_(tuple(statuses)))
        return list(query.order_by(Job_.id.desc()).limit(limit))

    def child_ids(self, job_id: str) -> list[str]:
        """The ids of a job's direct children, oldest first (from the (parent_id, id) index alone)."""
        rows = self.database.execute("SELECT id FROM jobs WHERE parent_id = ? ORDER BY id", (job_id,)).fetchall()
        return [row[0] for row in rows]

    def types(self, limit: int = 50) -> list[str]:
        """The job types stored (at most ``limit`` of them), sorted."""
        return sorted(row[0] for row in self.database.execute(JOB_TYPES, (limit,)).fetchall())

    def running_roots(self) -> list[Job]:
        """Executions (root jobs) that are not finished."""
        Job_ = self.models.Job
        return list(Job_.select().where(Job_.type == "parent", Job_.status.in_(("pending", "running"))))

    # ---------------------------------------------------------------- transitions
    def transition(
        self,
        job_id: str,
        new: str,
        *,
        allowed_from: Iterable[str] | None = None,
        error: str | None = None,
        publish: bool = True,
    ) -> Transition | None:
        """Move a job to ``new`` if its current state allows it; ``None`` when it does not.

        One conditional ``UPDATE ... RETURNING``; a trigger moves the job between its parent's counts in
        the same statement. This runs twice for every job, so it stays one statement.
        """
        allowed = tuple(allowed_from) if allowed_from is not None else ALLOWED[new]
        stamp = time.time()
        sets = ["previous_status = status", "status = ?", "updated_at = ?"]
        params: list[Any] = [new, stamp]
        if new == "running":
            sets += ["started_at = COALESCE(started_at, ?)", "attempts = attempts + 1"]
            params.append(stamp)
        if new in TERMINAL_STATUSES:
            sets.append("finished_at = ?")
            params.append(stamp)
        if error is not None:
            sets.append("error_message = ?")
            params.append(error)
        elif new == "completed":
            sets.append("error_message = NULL")  # an earlier attempt's error no longer describes the job
        marks = ", ".join("?" * len(allowed))
        sql = (f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status IN ({marks}) "
               f"RETURNING {JOB_COLUMNS}")
        row = self.database.write_one(sql, (*params, job_id, *allowed))
        if row is None:
            return None
        job = dict(zip(JOB_FIELDS, row))
        result = Transition(job_id, job["type"], job["parent_id"], job["previous_status"], new, job)
        if publish:
            self.publish_status(result)
        return result

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
        with self.database.write():
            job = self.get(job_id)
            data = {**job.data, **values}
            self.database.execute("UPDATE jobs SET payload = ?, updated_at = ? WHERE id = ?",
                                  (dumps(data), time.time(), job_id))
        return self.get(job_id)

    def merge_result(self, job_id: str, figures: dict[str, Any]) -> None:
        """Merge figures into a job's result (``payload.result``), which the API and the job page show."""
        with self.database.write():
            job = self.get(job_id)
            data = {**job.data, "result": {**job.data.get("result", {}), **figures}}
            self.database.execute("UPDATE jobs SET payload = ?, updated_at = ? WHERE id = ?",
                                  (dumps(data), time.time(), job_id))

    def brief(self, job_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """(status, error message) of each of these jobs that exists."""
        found: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(job_ids), _BATCH):
            chunk = list(job_ids[start:start + _BATCH])
            marks = ", ".join("?" * len(chunk))
            for job_id, status, error in self.database.execute(
                    f"SELECT id, status, error_message FROM jobs WHERE id IN ({marks})", chunk).fetchall():
                found[job_id] = (status, error)
        return found

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

    def _descendants(self, job_id: str, *, unfinished_only: bool) -> list[tuple[str, str]]:
        """(id, status) of every job below ``job_id``, level by level; only pending and running ones when
        ``unfinished_only`` (a finished job's subtree is finished too)."""
        where = " AND status IN ('pending', 'running')" if unfinished_only else ""
        found: list[tuple[str, str]] = []
        level = [job_id]
        while level:
            rows = []
            for start in range(0, len(level), _BATCH):
                chunk = level[start:start + _BATCH]
                marks = ", ".join("?" * len(chunk))
                rows += self.database.execute(
                    f"SELECT id, status FROM jobs WHERE parent_id IN ({marks}){where}", chunk).fetchall()
            found += [(row[0], row[1]) for row in rows]
            level = [row[0] for row in rows]
        return found

    def _in_chunks(self, ids: list[str], sql: str, params: tuple = ()) -> None:
        """Run ``sql`` (with ``{marks}`` for the id placeholders) over ``ids`` in batches."""
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
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


def job_view(job: Job) -> JobView:
    """A stored job as the plugin API's read-only :class:`~quaero.api.JobView`."""
    data = job.data
    return JobView(
        id=job.id, type=job.type, name=job.name, status=job.status, parent_id=job.parent_id, root_id=job.root_id,
        definition_id=job.definition_id, depth=job.depth, attempts=job.attempts, config=dict(data.get("config", {})),
        item_ref=data.get("item_ref"), result=dict(data.get("result", {})), error_message=job.error_message,
        result_count=job.result_count, progress_current=job.progress_current, progress_total=job.progress_total,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at)
