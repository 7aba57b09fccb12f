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
#: Lines kept in memory while the database cannot be written (a full disk): past this, the oldest debug and
#: info lines go first, then the oldest of any level.
MAX_BUFFERED = 20_000
MAX_RETRY_INTERVAL = 1.0  # seconds between tries while writing fails
log = logging.getLogger("quaero.job")
logger = logging.getLogger(__name__)


def normalise_level(level: str) -> str:
    """Accept ``warning`` for ``warn`` and any case."""
    level = level.lower()
    return "warn" if level == "warning" else level


class JobLogWriter:
    """Buffers job log lines and writes them in one transaction every few milliseconds.

    A crawl of thousands of pages logs several lines per page; one transaction per line would spend the
    database's write capacity on logs instead of on jobs. While writes fail (a full disk) the buffer keeps at
    most ``max_buffered`` lines, the most important ones; once writing works again one line says how many
    were dropped.
    """

    def __init__(self, database: Database, models: Models, bus: EventBus, *, flush_interval: float = 0.05,
                 keep_debug: bool = False, max_buffered: int = MAX_BUFFERED) -> None:
        self.database = database
        # Debug lines (one or more per crawled page) are kept only when the log level asks for them.
        self.keep_debug = keep_debug
        self.models = models
        self.bus = bus
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self._buffer: list[tuple[str, str, str, float]] = []
        self._dropped = 0  # lines dropped since the last successful write
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
            if len(self._buffer) > self.max_buffered:
                self._trim()
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
            # In time order, so that ids follow it within a batch (threads stamp a line before they append it).
            batch.sort(key=lambda line: line[3])
            sql = self.database.sql("INSERT INTO job_logs (job_id, level, message, timestamp) VALUES (?, ?, ?, ?)")
            try:
                with self.database.write() as db:
                    db.cursor().executemany(sql, batch)
            except Exception:
                with self._lock:
                    self._buffer[:0] = batch
                    if len(self._buffer) > self.max_buffered:
                        self._trim()
                raise
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                logger.warning("%d job log line(s) were dropped while the database could not be written "
                               "(more than %d waited in memory)", dropped, self.max_buffered)

    def _trim(self) -> None:
        """Under ``self._lock``: drop lines down to nine tenths of the limit, least important and oldest first.

        Nine tenths, not the limit: while writes keep failing, a trim runs once per tenth of the buffer
        instead of on every new line.
        """
        buffer = self._buffer
        excess = len(buffer) - self.max_buffered * 9 // 10
        if excess <= 0:
            return
        minor = [i for i, line in enumerate(buffer) if line[1] in ("debug", "info")][:excess]
        doomed = set(minor)
        if len(doomed) < excess:  # warnings and errors only, or too few others: the oldest go
            doomed.update([i for i in range(len(buffer)) if i not in doomed][:excess - len(doomed)])
        self._buffer = [line for i, line in enumerate(buffer) if i not in doomed]
        self._dropped += len(doomed)

    def _run(self) -> None:
        wait = self.flush_interval
        failing = False
        while not self._stopped.wait(wait):
            try:
                self.flush()
            except Exception:
                if not failing:  # once per outage: a full disk must not also fill the process log
                    logger.exception("could not write job logs; keeping up to %d lines in memory and retrying",
                                     self.max_buffered)
                failing = True
                wait = min(MAX_RETRY_INTERVAL, wait * 2)
            else:
                if failing:
                    logger.info("job logs are written again")
                failing = False
                wait = self.flush_interval

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.flush()
        except Exception:  # the rest of the shutdown must go on
            logger.exception("%d job log line(s) could not be written at shutdown", len(self._buffer))

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
        """Log lines of the given jobs (and, with ``descendants``, of the jobs below them), in time order
        (timestamp, then id).

        ``after_id`` tails: lines stored after the last one a reader has. ``before_id`` pages backwards:
        the ``limit`` lines stored just before it (``before_id=0`` means the newest lines). Which lines is
        decided by id (a cursor that never skips nor repeats a line), their order by time: processes write
        their lines in batches, so a line can be stored after a later one of another process. The cursor
        to go on from is the largest id (:func:`last_id`), to go back from the smallest. Pending lines are
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
        rows.sort(key=lambda row: (row.timestamp, row.id))
        return [
            {"id": row.id, "job_id": row.job_id, "level": row.level, "message": row.message,
             "timestamp": iso(row.timestamp)}
            for row in rows
        ]


def last_id(lines: list[dict[str, Any]], default: int = 0) -> int:
    """The cursor after these lines (:meth:`JobLogWriter.read`'s ``after_id``): their largest id."""
    return max((line["id"] for line in lines), default=default)


def first_id(lines: list[dict[str, Any]], default: int = 0) -> int:
    """The cursor before these lines (``before_id``): their smallest id."""
    return min((line["id"] for line in lines), default=default)
