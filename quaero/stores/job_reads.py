"""Reading jobs: lookups, children, listings and counts that the monitor, the API and the pages ask for.

:class:`JobReads` is the read half of :class:`~quaero.stores.jobs.JobManager`; every query here names the
index it reads (the jobs table is the busiest one, and a listing of 100,000 jobs must not sort them).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from peewee import SQL, fn

from quaero.api.jobs import JobView
from quaero.api.outcomes import OUTCOMES
from quaero.errors import NotFound
from quaero.stores.db import Database
from quaero.stores.jsonutil import loads
from quaero.stores.logs import LEVELS, normalise_level
from quaero.stores.models import JOB_STATUSES, Job, Models
from quaero.stores.timeline import Buckets, Span, child_buckets, child_spans

COUNT_COLUMNS = ", ".join(f"count_{status}" for status in JOB_STATUSES)
JOB_FIELDS = tuple(Job._meta.sorted_field_names)
JOB_COLUMNS = ", ".join(JOB_FIELDS)
ID_BATCH = 400  # ids per IN (...) list: well under every backend's parameter limit
# The distinct job types, one index seek each (a skip scan of the (type, id) index) instead of reading
# every row's entry as SELECT DISTINCT does. Plain SQL that SQLite and PostgreSQL both run as written.
JOB_TYPES = """WITH RECURSIVE t(type) AS (
    SELECT MIN(type) FROM jobs
    UNION ALL SELECT (SELECT MIN(type) FROM jobs WHERE type > t.type) FROM t WHERE t.type IS NOT NULL
) SELECT type FROM t WHERE type IS NOT NULL LIMIT ?"""


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

    def conditions(self, model: builtins.type[Job]) -> list[Any]:
        """The filter as peewee expressions on ``model``'s columns."""
        return [getattr(model, name) == value for name in ("status", "type", "parent_id", "definition_id")
                if (value := getattr(self, name)) is not None]

    @property
    def children_only(self) -> bool:
        """Whether the filter asks only for a parent's children (with one status or all of them)."""
        return self.parent_id is not None and self.type is None and self.definition_id is None


class JobReads:
    """The read queries of the jobs table."""

    database: Database
    models: Models

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

    def children(self, job_id: str, *, status: str | None = None, limit: int = 100, offset: int = 0,
                 outcome: str | None = None) -> list[Job]:
        """Direct children, oldest first; ``outcome`` a kind (``skipped``: any reason) or ``skipped:robots``."""
        Job_ = self.models.Job
        query = Job_.select().where(Job_.parent_id == job_id)
        if status:
            query = query.where(Job_.status == status)
        if outcome:
            query = query.where(_outcome_matches(Job_, outcome))
        return list(query.order_by(Job_.id).limit(limit).offset(offset))

    def outcome_counts(self, job_id: str, *, descendants: bool = False) -> dict[str, int]:
        """A parent's children by outcome (``{"saved": 3, "skipped:robots": 1}``; those without one left
        out), in one grouped query that reads the (parent_id, outcome) index alone.

        ``descendants`` (an execution): every job below it but its steps, through the root_id index."""
        if descendants:
            rows = self.database.execute(
                "SELECT outcome, COUNT(*) FROM jobs WHERE root_id = ? AND outcome IS NOT NULL "
                "AND type NOT IN ('step', 'parent') GROUP BY outcome", (job_id,)).fetchall()
        else:
            rows = self.database.execute(
                "SELECT outcome, COUNT(*) FROM jobs WHERE parent_id = ? AND outcome IS NOT NULL GROUP BY outcome",
                (job_id,)).fetchall()
        return {outcome: count for outcome, count in sorted(rows, key=_outcome_order)}

    def count_children(self, job_id: str, *, status: str | None = None, outcome: str | None = None) -> int:
        """How many children have this status and outcome (either may be ``None``: any)."""
        if outcome is None:
            counts = self.counts(job_id)
            return getattr(counts, status) if status else counts.total
        Job_ = self.models.Job
        query = Job_.select(fn.COUNT(SQL("*"))).where(Job_.parent_id == job_id, _outcome_matches(Job_, outcome))
        if status:
            query = query.where(Job_.status == status)
        return query.scalar()

    def waiting_counts(self, job_ids: Sequence[str]) -> dict[str, int]:
        """How many running children of each of these jobs wait (``ctx.waiting``); jobs with none left out.

        Reads the running children only, through the (parent_id, status) index."""
        found: dict[str, int] = {}
        for start in range(0, len(job_ids), ID_BATCH):
            chunk = list(job_ids[start:start + ID_BATCH])
            marks = ", ".join("?" * len(chunk))
            found.update(self.database.execute(
                f"SELECT parent_id, COUNT(*) FROM jobs WHERE parent_id IN ({marks}) AND status = 'running' "
                "AND waiting IS NOT NULL GROUP BY parent_id", chunk).fetchall())
        return found

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
        for start in range(0, len(job_ids), ID_BATCH):
            chunk = list(job_ids[start:start + ID_BATCH])
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

    def steps_of(self, root_ids: Sequence[str]) -> dict[str, list[Job]]:
        """The step jobs of each of these executions, oldest first: a few rows each, read from the
        (parent_id, id) index (what an execution's progress is computed from)."""
        found: dict[str, list[Job]] = {root_id: [] for root_id in root_ids}
        ids = list(found)
        for start in range(0, len(ids), ID_BATCH):
            chunk = ids[start:start + ID_BATCH]
            marks = ", ".join("?" * len(chunk))
            for row in self.database.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE parent_id IN ({marks}) "
                                             "AND type = 'step' ORDER BY parent_id, created_at, id", chunk).fetchall():
                job = self.models.Job(**dict(zip(JOB_FIELDS, row)))
                found[str(job.parent_id)].append(job)
        return found

    def child_spans(self, parent_id: str, *, limit: int) -> list[Span]:
        """When each of a parent's first ``limit`` children was created, started and finished (its timeline)."""
        return child_spans(self.database, parent_id, limit=limit)

    def child_buckets(self, parent_id: str, *, start: float, width: float, count: int) -> Buckets:
        """A parent's children started and finished per bucket of time, in one aggregate query."""
        return child_buckets(self.database, parent_id, start=start, width=width, count=count)

    def types(self, limit: int = 50) -> list[str]:
        """The job types stored (at most ``limit`` of them), sorted."""
        return sorted(row[0] for row in self.database.execute(JOB_TYPES, (limit,)).fetchall())

    def running_roots(self) -> list[Job]:
        """Executions (root jobs) that are not finished."""
        Job_ = self.models.Job
        return list(Job_.select().where(Job_.type == "parent", Job_.status.in_(("pending", "running"))))

    def brief(self, job_ids: Sequence[str]) -> dict[str, tuple[str, str | None, int]]:
        """(status, error message, attempts) of each of these jobs that exists."""
        found: dict[str, tuple[str, str | None, int]] = {}
        for start in range(0, len(job_ids), ID_BATCH):
            chunk = list(job_ids[start:start + ID_BATCH])
            marks = ", ".join("?" * len(chunk))
            for job_id, status, error, attempts in self.database.execute(
                    f"SELECT id, status, error_message, attempts FROM jobs WHERE id IN ({marks})", chunk).fetchall():
                found[job_id] = (status, error, int(attempts or 0))
        return found


def _outcome_matches(model: builtins.type[Job], outcome: str) -> Any:
    """``skipped`` matches every ``skipped:<reason>`` too; ``skipped:robots`` only itself."""
    if ":" in outcome:
        return model.outcome == outcome
    return (model.outcome == outcome) | model.outcome.startswith(outcome + ":")


def _outcome_order(row: tuple[str, int]) -> tuple[int, str]:
    kind = row[0].partition(":")[0]
    return (OUTCOMES.index(kind) if kind in OUTCOMES else len(OUTCOMES), row[0])


def job_view(job: Job) -> JobView:
    """A stored job as the plugin API's read-only :class:`~quaero.api.JobView`."""
    return job_view_of(job.__data__)


def job_view_of(row: Mapping[str, Any]) -> JobView:
    """A job's columns (a ``RETURNING`` row, say) as a :class:`~quaero.api.JobView`, without building a model
    instance: the processor makes one for every job it runs."""
    data = loads(row["payload"])
    return JobView(
        id=row["id"], type=row["type"], name=row["name"], status=row["status"], parent_id=row["parent_id"],
        root_id=row["root_id"], definition_id=row["definition_id"], depth=row["depth"], attempts=row["attempts"],
        config=data.get("config", {}), item_ref=data.get("item_ref"), result=data.get("result", {}),
        error_message=row["error_message"], result_count=row["result_count"],
        progress_current=row["progress_current"], progress_total=row["progress_total"],
        outcome=row.get("outcome"), waiting=row.get("waiting"), created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"])
