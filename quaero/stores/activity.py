"""ActivityStore: what the system has been doing lately, the figures the dashboard shows.

Executions by status, the running executions, the latest failures and the jobs finished per minute over
the last hour: read-only queries, each bounded by an index however many jobs are stored, on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from quaero.stores.db import Database
from quaero.stores.jobs import first_id_at
from quaero.stores.models import JOB_STATUSES, Job, Models


@dataclass(frozen=True, slots=True)
class Throughput:
    """Jobs finished in each minute of a window, oldest minute first."""

    values: tuple[int, ...]

    @property
    def total(self) -> int:
        """Jobs finished in the whole window."""
        return sum(self.values)

    @property
    def peak(self) -> int:
        """The most jobs finished in one minute of the window (the chart's scale)."""
        return max(self.values, default=0)

    def as_dict(self) -> dict[str, object]:
        """The figures as the dashboard's chart takes them."""
        return {"values": list(self.values), "total": self.total, "peak": self.peak}


class ActivityStore:
    """The dashboard's figures over one database."""

    def __init__(self, database: Database, models: Models, *, job_timeout: float) -> None:
        self.database = database
        self.models = models
        self.job_timeout = job_timeout
        # The minute a finish falls in. SQLite's CAST truncates, which is the floor here (the difference is
        # never negative); PostgreSQL's rounds, which would put the last half minute in the next bucket.
        self._minute = ("FLOOR((finished_at - ?) / 60)" if database.is_postgres
                        else "CAST((finished_at - ?) / 60 AS INTEGER)")

    def executions_by_status(self) -> dict[str, int]:
        """How many executions (root jobs) there are in each status, every status present."""
        rows = self.database.execute("SELECT status, COUNT(*) FROM jobs WHERE type = 'parent' GROUP BY status")
        found = dict(rows.fetchall())
        return {status: found.get(status, 0) for status in JOB_STATUSES}

    def running_executions(self, limit: int = 20) -> list[Job]:
        """Executions not finished yet (pending or running), newest first."""
        Job_ = self.models.Job
        query = Job_.select().where(Job_.type == "parent", Job_.status.in_(("pending", "running")))
        return list(query.order_by(Job_.id.desc()).limit(limit))

    def recent_failures(self, limit: int = 10) -> list[Job]:
        """Failed executions, the last to finish first."""
        Job_ = self.models.Job
        query = Job_.select().where(Job_.type == "parent", Job_.status == "failed")
        return list(query.order_by(Job_.finished_at.desc()).limit(limit))

    def throughput(self, minutes: int = 60, *, now: float | None = None) -> Throughput:
        """Jobs of every kind finished per minute over the last ``minutes`` minutes, oldest minute first.

        Only jobs created since ``job_timeout`` before the window can have finished in it, and ids are
        time-ordered: the id index bounds the scan to them instead of reading the whole table.
        """
        start = (time.time() if now is None else now) - minutes * 60
        oldest = first_id_at(start - self.job_timeout)
        rows = self.database.execute(
            f"SELECT {self._minute}, COUNT(*) FROM jobs WHERE id >= ? AND finished_at >= ? GROUP BY 1",
            (start, oldest, start)).fetchall()
        per_minute = [0] * minutes
        for bucket, count in rows:
            if 0 <= bucket < minutes:  # a job finished after ``now`` (a clock a little ahead) is left out
                per_minute[int(bucket)] = count
        return Throughput(tuple(per_minute))
