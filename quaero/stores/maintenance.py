"""Maintenance of the database, on SQLite and on PostgreSQL: each operation does its work and says what it did.

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
from datetime import UTC, datetime
from typing import Any

from quaero.api.maintenance import OPERATIONS, DatabaseMaintenance, Outcome
from quaero.errors import QuaeroError
from quaero.stores.db import Database
from quaero.stores.fulltext import full_text_index
from quaero.stores.jobs import JobManager
from quaero.stores.models import Models

#: Problems of an integrity check kept in the result (the summary says how many there were).
MAX_PROBLEMS = 20
#: How often a checkpoint that readers held back is tried again, and the pause (growing) between tries.
CHECKPOINT_TRIES = 10
CHECKPOINT_PAUSE = 0.05
SQLITE_ONLY = "PostgreSQL checkpoints its write-ahead log by itself"
NO_INTEGRITY_CHECK = ("PostgreSQL has no integrity check without the amcheck extension; data checksums, when "
                      "the cluster has them, are verified on every read")


def not_applicable(reason: str) -> Outcome:
    """The outcome of an operation the backend has no use for."""
    return Outcome(f"not applicable: {reason}", applicable=False)


class Maintenance(DatabaseMaintenance):
    """The operations of :data:`OPERATIONS` on one database."""

    def __init__(self, database: Database, models: Models, jobs: JobManager) -> None:
        self.database = database
        self.models = models
        self.jobs = jobs

    @property
    def backend(self) -> str:
        return "postgresql" if self.database.is_postgres else "sqlite"

    def run(self, operation: str, *, older_than_days: float = 30.0,
            check_cancelled: Callable[[], None] = lambda: None) -> Outcome:
        if operation not in OPERATIONS:
            raise QuaeroError(f"unknown maintenance operation {operation!r}; known: {', '.join(OPERATIONS)}")
        if operation == "prune":
            return self.prune(older_than_days, check_cancelled)
        method: Callable[[], Outcome] = getattr(self, f"_{'postgres' if self.database.is_postgres else 'sqlite'}_"
                                                      f"{operation}")
        return method()

    def size(self) -> int:
        if self.database.is_postgres:
            return self._scalar("SELECT pg_database_size(current_database())")
        path = self._sqlite_path()
        return os.path.getsize(path) + _size_or_zero(path + "-wal")

    # ---------------------------------------------------------------------------------------- both databases
    def prune(self, days: float, check_cancelled: Callable[[], None]) -> Outcome:
        """Delete executions (root jobs) finished more than ``days`` ago, with all their jobs and logs."""
        cutoff = time.time() - days * 86_400
        when = datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="seconds")
        roots = [row[0] for row in self.database.execute(
            "SELECT id FROM jobs WHERE parent_id IS NULL AND status IN ('completed', 'failed', 'cancelled') "
            "AND COALESCE(finished_at, updated_at) < ? ORDER BY id", (cutoff,)).fetchall()]
        jobs = logs = 0
        for root_id in roots:
            check_cancelled()
            with self.database.write():  # a tree's logs are counted and deleted together with it
                logs += self._scalar("SELECT COUNT(*) FROM job_logs WHERE job_id IN "
                                     "(SELECT id FROM jobs WHERE root_id = ?)", (root_id,))
                jobs += self.jobs.delete(root_id)
        return Outcome(f"deleted {len(roots)} execution(s) finished before {when}: {jobs} job(s), {logs} log "
                       f"line(s)", {"executions_removed": len(roots), "jobs_removed": jobs, "logs_removed": logs,
                                    "cutoff": when})

    # ------------------------------------------------------------------------------------------------ SQLite
    def _checkpoint(self, tries: int = CHECKPOINT_TRIES) -> bool:
        """Copy the write-ahead log into the file and truncate it; False when readers kept part of it.

        A reader in the middle of a query (another thread's, another process's, the background PASSIVE
        checkpointer) keeps the log's frames it may still read: try again for a moment, as it finishes.
        """
        for attempt in range(tries):
            row = self.database.write_one("PRAGMA wal_checkpoint(TRUNCATE)")
            if row is not None and not row[0]:
                return True
            time.sleep(CHECKPOINT_PAUSE * (attempt + 1))
        return False

    def _sqlite_vacuum(self) -> Outcome:
        pages, free = self._scalar("PRAGMA page_count"), self._scalar("PRAGMA freelist_count")
        self.database.write_one("VACUUM")
        complete = self._checkpoint()
        after = self._scalar("PRAGMA page_count")
        summary = f"rewrote the database: {pages} pages ({free} of them free) became {after}"
        if not complete:
            summary += "; a reader kept part of the log, so the file shrinks at the next checkpoint"
        return Outcome(summary, {"pages_before": pages, "free_pages_before": free, "pages_after": after,
                                 "checkpoint_complete": complete})

    def _sqlite_reindex(self) -> Outcome:
        self.database.write_one("REINDEX")
        indexes = self._scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'")
        return Outcome(f"rebuilt {indexes} indexes", {"indexes": indexes})

    def _sqlite_analyze(self) -> Outcome:
        self.database.write_one("ANALYZE")
        tables = self._scalar("SELECT COUNT(DISTINCT tbl) FROM sqlite_stat1")
        return Outcome(f"refreshed the query planner's statistics ({tables} tables with indexes)", {"tables": tables})

    def _sqlite_optimize(self) -> Outcome:
        self.database.write_one("PRAGMA optimize")
        full_text_index(self.database).optimize()
        return Outcome("ran PRAGMA optimize and merged the full-text index into one b-tree")

    def _sqlite_wal_checkpoint(self) -> Outcome:
        wal = self._sqlite_path() + "-wal"
        before = _size_or_zero(wal)
        complete = self._checkpoint()
        after = _size_or_zero(wal)
        summary = f"copied the write-ahead log into the database: {before} bytes of log, {after} left"
        if not complete:
            summary += " (a reader kept part of it; the background checkpointer finishes it)"
        return Outcome(summary, {"wal_bytes_before": before, "wal_bytes_after": after,
                                 "checkpoint_complete": complete})

    def _sqlite_integrity_check(self) -> Outcome:
        problems = [row[0] for row in self.database.execute("PRAGMA integrity_check").fetchall() if row[0] != "ok"]
        index_problem = full_text_index(self.database).integrity_check()
        if index_problem:
            problems.append(index_problem)
        if not problems:
            return Outcome("ok: the database and its full-text index are intact", {"problems": []})
        return Outcome(f"{len(problems)} problem(s), the first: {problems[0]}",
                       {"problems": problems[:MAX_PROBLEMS]}, ok=False)

    # -------------------------------------------------------------------------------------------- PostgreSQL
    def _postgres_vacuum(self) -> Outcome:
        self.database.execute("VACUUM")
        return Outcome("vacuumed every table: dead rows' space is reused (plain VACUUM: the files do not shrink)")

    def _postgres_reindex(self) -> Outcome:
        tables = [model._meta.table_name for model in self.models.all()]
        for table in tables:
            self.database.execute(f'REINDEX TABLE "{table}"')
        return Outcome(f"rebuilt the indexes of {len(tables)} tables", {"tables": len(tables)})

    def _postgres_analyze(self) -> Outcome:
        self.database.execute("ANALYZE")
        return Outcome("refreshed the query planner's statistics")

    def _postgres_optimize(self) -> Outcome:
        full_text_index(self.database).optimize()
        return Outcome("moved the full-text index's pending entries into its GIN index")

    def _postgres_wal_checkpoint(self) -> Outcome:
        return not_applicable(SQLITE_ONLY)

    def _postgres_integrity_check(self) -> Outcome:
        return not_applicable(NO_INTEGRITY_CHECK)

    # ----------------------------------------------------------------------------------------------- helpers
    def _sqlite_path(self) -> str:
        return next(row[2] for row in self.database.execute("PRAGMA database_list").fetchall() if row[1] == "main")

    def _scalar(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        return self.database.execute(query, params).fetchone()[0]


def _size_or_zero(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
