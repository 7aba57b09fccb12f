"""The maintenance operations, on SQLite and on PostgreSQL: each does its work and says what it did.

SQLite statements that rewrite the file (``VACUUM``) cannot run inside a transaction. They go through
``Database.write_one``, which holds the writer lock of every Quaero process around the bare statement, so
no other writer is half-way through a transaction meanwhile. In WAL mode, the pages a VACUUM writes wait in
the write-ahead log until a checkpoint copies them back: ``vacuum`` checkpoints at once (TRUNCATE), which is
when the file actually shrinks.

On PostgreSQL, connections are in autocommit mode outside ``atomic()`` blocks, which is what ``VACUUM``
needs. The operations PostgreSQL does on its own or has no equivalent for report "not applicable".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from quaero.stores.fulltext import full_text_index

#: Problems of an integrity check kept in the job's result (the log says how many there were).
MAX_PROBLEMS = 20


@dataclass
class Outcome:
    """What one operation did: a sentence for the log, and figures for the job's result."""

    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True
    ok: bool = True


def not_applicable(reason: str) -> Outcome:
    return Outcome(f"not applicable: {reason}", applicable=False)


def run_operation(ctx: Any, name: str) -> dict[str, Any]:
    """Run one operation for the job ``ctx`` belongs to; its outcome with the time taken and the size of the
    database before and after."""
    database = ctx.services.database
    operation = (SQLITE if database.is_sqlite else POSTGRES)[name]
    size_before = database_size(database)
    started = time.monotonic()
    outcome = operation(ctx)
    return {"operation": name, "applicable": outcome.applicable, "ok": outcome.ok, "summary": outcome.summary,
            "seconds": round(time.monotonic() - started, 3), "size_before": size_before,
            "size_after": database_size(database), **outcome.figures}


def database_size(database: Any) -> int:
    """Bytes on disk: the SQLite file and its write-ahead log, or what PostgreSQL reports for the database."""
    if database.is_postgres:
        return database.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    path = _sqlite_path(database)
    return os.path.getsize(path) + _size_or_zero(path + "-wal")


def _sqlite_path(database: Any) -> str:
    return next(row[2] for row in database.execute("PRAGMA database_list").fetchall() if row[1] == "main")


def _size_or_zero(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _scalar(database: Any, query: str, params: tuple = ()) -> Any:
    return database.execute(query, params).fetchone()[0]


# ------------------------------------------------------------------------------------------- both databases


def prune(ctx: Any) -> Outcome:
    """Delete executions (root jobs) finished more than ``older_than_days`` ago, with all their jobs and logs."""
    services, days = ctx.services, ctx.options.older_than_days
    cutoff = time.time() - days * 86_400
    when = datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="seconds")
    roots = [row[0] for row in services.database.execute(
        "SELECT id FROM jobs WHERE parent_id IS NULL AND status IN ('completed', 'failed', 'cancelled') "
        "AND COALESCE(finished_at, updated_at) < ? ORDER BY id", (cutoff,)).fetchall()]
    jobs = logs = 0
    for root_id in roots:
        ctx.check_cancelled()
        with services.database.write():  # a tree's logs are counted and deleted together with it
            logs += _scalar(services.database, "SELECT COUNT(*) FROM job_logs WHERE job_id IN "
                                               "(SELECT id FROM jobs WHERE root_id = ?)", (root_id,))
            jobs += services.jobs.delete(root_id)
    return Outcome(f"deleted {len(roots)} execution(s) finished before {when}: {jobs} job(s), {logs} log line(s)",
                   {"executions_removed": len(roots), "jobs_removed": jobs, "logs_removed": logs, "cutoff": when})


# ------------------------------------------------------------------------------------------------- SQLite


def _checkpoint(database: Any) -> bool:
    """Copy the write-ahead log into the file and truncate it; False when a reader kept part of it."""
    busy, _, _ = database.write_one("PRAGMA wal_checkpoint(TRUNCATE)")
    return not busy


def _sqlite_vacuum(ctx: Any) -> Outcome:
    database = ctx.services.database
    pages, free = _scalar(database, "PRAGMA page_count"), _scalar(database, "PRAGMA freelist_count")
    database.write_one("VACUUM")
    complete = _checkpoint(database)
    after = _scalar(database, "PRAGMA page_count")
    summary = f"rewrote the database: {pages} pages ({free} of them free) became {after}"
    if not complete:
        summary += "; a reader kept part of the log, so the file shrinks at the next checkpoint"
    return Outcome(summary, {"pages_before": pages, "free_pages_before": free, "pages_after": after,
                             "checkpoint_complete": complete})


def _sqlite_reindex(ctx: Any) -> Outcome:
    database = ctx.services.database
    database.write_one("REINDEX")
    indexes = _scalar(database, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'")
    return Outcome(f"rebuilt {indexes} indexes", {"indexes": indexes})


def _sqlite_analyze(ctx: Any) -> Outcome:
    database = ctx.services.database
    database.write_one("ANALYZE")
    tables = _scalar(database, "SELECT COUNT(DISTINCT tbl) FROM sqlite_stat1")
    return Outcome(f"refreshed the query planner's statistics ({tables} tables with indexes)", {"tables": tables})


def _sqlite_optimize(ctx: Any) -> Outcome:
    database = ctx.services.database
    database.write_one("PRAGMA optimize")
    full_text_index(database).optimize()
    return Outcome("ran PRAGMA optimize and merged the full-text index into one b-tree")


def _sqlite_wal_checkpoint(ctx: Any) -> Outcome:
    database = ctx.services.database
    wal = _sqlite_path(database) + "-wal"
    before = _size_or_zero(wal)
    complete = _checkpoint(database)
    after = _size_or_zero(wal)
    summary = f"copied the write-ahead log into the database: {before} bytes of log, {after} left"
    if not complete:
        summary += " (a reader kept part of it; the background checkpointer finishes it)"
    return Outcome(summary, {"wal_bytes_before": before, "wal_bytes_after": after, "checkpoint_complete": complete})


def _sqlite_integrity_check(ctx: Any) -> Outcome:
    database = ctx.services.database
    problems = [row[0] for row in database.execute("PRAGMA integrity_check").fetchall() if row[0] != "ok"]
    index_problem = full_text_index(database).integrity_check()
    if index_problem:
        problems.append(index_problem)
    if not problems:
        return Outcome("ok: the database and its full-text index are intact", {"problems": []})
    return Outcome(f"{len(problems)} problem(s), the first: {problems[0]}", {"problems": problems[:MAX_PROBLEMS]},
                   ok=False)


SQLITE: dict[str, Callable[[Any], Outcome]] = {
    "prune": prune, "vacuum": _sqlite_vacuum, "reindex": _sqlite_reindex, "analyze": _sqlite_analyze,
    "optimize": _sqlite_optimize, "wal_checkpoint": _sqlite_wal_checkpoint, "integrity_check": _sqlite_integrity_check,
}


# --------------------------------------------------------------------------------------------- PostgreSQL


def _tables(ctx: Any) -> list[str]:
    return [model._meta.table_name for model in ctx.services.models.all()]


def _postgres_vacuum(ctx: Any) -> Outcome:
    ctx.services.database.execute("VACUUM")
    return Outcome("vacuumed every table: dead rows' space is reused (plain VACUUM: the files do not shrink)")


def _postgres_reindex(ctx: Any) -> Outcome:
    tables = _tables(ctx)
    for table in tables:
        ctx.services.database.execute(f'REINDEX TABLE "{table}"')
    return Outcome(f"rebuilt the indexes of {len(tables)} tables", {"tables": len(tables)})


def _postgres_analyze(ctx: Any) -> Outcome:
    ctx.services.database.execute("ANALYZE")
    return Outcome("refreshed the query planner's statistics")


def _postgres_optimize(ctx: Any) -> Outcome:
    full_text_index(ctx.services.database).optimize()
    return Outcome("moved the full-text index's pending entries into its GIN index")


SQLITE_ONLY = "PostgreSQL checkpoints its write-ahead log by itself"
NO_INTEGRITY_CHECK = ("PostgreSQL has no integrity check without the amcheck extension; data checksums, when "
                      "the cluster has them, are verified on every read")
POSTGRES: dict[str, Callable[[Any], Outcome]] = {
    "prune": prune, "vacuum": _postgres_vacuum, "reindex": _postgres_reindex, "analyze": _postgres_analyze,
    "optimize": _postgres_optimize, "wal_checkpoint": lambda ctx: not_applicable(SQLITE_ONLY),
    "integrity_check": lambda ctx: not_applicable(NO_INTEGRITY_CHECK),
}
