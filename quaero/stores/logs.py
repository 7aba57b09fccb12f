"""Job logs: every line goes to the process log at once and to ``job_logs`` in batched writes, redacted."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from quaero.errors import QuaeroError
from quaero.stores.db import Database
from quaero.stores.events import JOB_LOG, EventBus, iso
from quaero.stores.models import Models
from quaero.stores.redaction import process_redactor

LEVELS = ("debug", "info", "warn", "error")
_PY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
log = logging.getLogger("quaero.job")


def normalise_level(level: str) -> str:
    """Accept ``warning`` for ``warn`` and any case."""
    level = level.lower()
    return "warn" if level == "warning" else level


class JobLogWriter:
    """Buffers job log lines and writes them in one transaction every few milliseconds.

    A crawl of thousands of pages logs several lines per page; one transaction per line would spend the
    database's write capacity on logs instead of on jobs.
    """

    def __init__(self, database: Database, models: Models, bus: EventBus, *, flush_interval: float = 0.05,
                 keep_debug: bool = False) -> None:
        self.database = database
        # Debug lines (one or more per crawled page) are kept only when the log level asks for them.
        self.keep_debug = keep_debug
        self.models = models
        self.bus = bus
        self.flush_interval = flush_interval
        self._buffer: list[tuple[str, str, str, float]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="quaero-job-logs", daemon=True)
        self._thread.start()

    def write(self, job_id: str, level: str, message: str, **metadata: Any) -> None:
        """Record one line for ``job_id`` and publish it as a ``job_log`` event."""
        level = normalise_level(level)
        if level not in _PY_LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
        if level == "debug" and not self.keep_debug:
            return
        stamp = time.time()
        # Redacted once, here: the line is logged, stored and published as it is now.
        redactor = process_redactor()
        message = redactor.redact(message)
        metadata = redactor.redact_data(metadata) if metadata else metadata
        log.log(_PY_LEVELS[level], "[%s] %s", job_id, message)
        with self._lock:
            self._buffer.append((job_id, level, message, stamp))
        # The seed's payload always has ``metadata``: ``{}`` for a line that carries none.
        self.bus.publish(JOB_LOG, {"job_id": job_id, "level": level, "message": message, "timestamp": iso(stamp),
                                   "metadata": metadata})
        if self._thread is None:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered now.

        One flush at a time: a reader that flushes while the background thread is writing waits for that
        write, so it never reads the table with a line missing. A failed write keeps its lines buffered.
        """
        with self._flushing:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return
            sql = self.database.sql("INSERT INTO job_logs (job_id, level, message, timestamp) VALUES (?, ?, ?, ?)")
            try:
                with self.database.write() as db:
                    db.cursor().executemany(sql, batch)
            except Exception:
                with self._lock:
                    self._buffer[:0] = batch
                raise

    def _run(self) -> None:
        while not self._stopped.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:
                logging.getLogger(__name__).exception("could not write job logs; retrying")

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def read(
        self,
        job_ids: list[str],
        *,
        after_id: int = 0,
        before_id: int | None = None,
        level: str | None = None,
        limit: int = 500,
        descendants: bool = False,
    ) -> list[dict[str, Any]]:
        """Log lines of the given jobs (and, with ``descendants``, of the jobs below them), oldest first.

        ``after_id`` tails: lines newer than the last one a reader has. ``before_id`` pages backwards:
        the ``limit`` lines just before it (``before_id=0`` means the newest lines). Pending lines are
        flushed first so a reader sees what was logged a moment ago.
        """
        self.flush()
        JobLog, Job = self.models.JobLog, self.models.Job
        jobs = JobLog.job_id.in_(job_ids)
        if descendants:
            below = Job.select(Job.id).where(Job.parent_id.in_(job_ids) | Job.root_id.in_(job_ids))
            jobs = jobs | JobLog.job_id.in_(below)
        query = JobLog.select().where(jobs, JobLog.id > after_id)
        if level:
            if normalise_level(level) not in LEVELS:
                raise QuaeroError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
            wanted = LEVELS[LEVELS.index(normalise_level(level)):]
            query = query.where(JobLog.level.in_(wanted))
        if before_id is None:
            rows = list(query.order_by(JobLog.id).limit(limit))
        else:
            if before_id:
                query = query.where(JobLog.id < before_id)
            rows = list(query.order_by(JobLog.id.desc()).limit(limit))[::-1]
        return [
            {"id": row.id, "job_id": row.job_id, "level": row.level, "message": row.message,
             "timestamp": iso(row.timestamp)}
            for row in rows
        ]
