"""The reads behind a job's timeline: a few children's start and end, or all of them counted per time bucket.

A step of 10,000 children is never loaded row by row: up to ``limit`` children are read as spans, and past
that one aggregate query counts how many started and finished in each bucket of time (which also gives the
step's rate over time).
"""

from __future__ import annotations

from dataclasses import dataclass

from quaero.stores.db import Database


@dataclass(frozen=True, slots=True)
class Span:
    """When one job was created, started and finished (``None`` for what has not happened yet)."""

    id: str
    name: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class Buckets:
    """How many children started and finished in each of ``count`` buckets of ``width`` seconds from ``start``."""

    start: float
    width: float
    started: tuple[int, ...]
    finished: tuple[int, ...]


def child_spans(database: Database, parent_id: str, *, limit: int) -> list[Span]:
    """The first ``limit`` children of a parent, oldest first (from the (parent_id, id) index)."""
    rows = database.execute(
        "SELECT id, name, status, created_at, started_at, finished_at FROM jobs WHERE parent_id = ? "
        "ORDER BY id LIMIT ?", (parent_id, limit)).fetchall()
    return [Span(*row) for row in rows]


def child_buckets(database: Database, parent_id: str, *, start: float, width: float, count: int) -> Buckets:
    """Children of a parent started and finished per bucket: one aggregate query, however many there are.

    A time before ``start`` counts in the first bucket and one after the last bucket in the last.
    """
    # CAST truncates on SQLite and rounds on PostgreSQL: FLOOR first where it rounds.
    bucket = ("CAST(({column} - ?) / ? AS INTEGER)" if database.is_sqlite
              else "CAST(FLOOR(({column} - ?) / ?) AS INTEGER)")
    sql = (f"SELECT kind, b, COUNT(*) FROM ("
           f"SELECT 's' AS kind, {bucket.format(column='started_at')} AS b FROM jobs "
           "WHERE parent_id = ? AND started_at IS NOT NULL "
           f"UNION ALL SELECT 'f' AS kind, {bucket.format(column='finished_at')} AS b FROM jobs "
           "WHERE parent_id = ? AND finished_at IS NOT NULL) AS t GROUP BY kind, b")
    started, finished = [0] * count, [0] * count
    for kind, index, number in database.execute(sql, (start, width, parent_id, start, width, parent_id)).fetchall():
        slot = min(max(int(index), 0), count - 1)
        (started if kind == "s" else finished)[slot] += number
    return Buckets(start, width, tuple(started), tuple(finished))
