"""A Dramatiq broker on one SQLite file, shared by every process that opens it.

Each message is a row of ``messages``; its ``queue`` is ``q``, ``q.DQ`` (delayed: ``visible_at`` is the
eta) or ``q.XQ`` (dead letters, kept until deleted). A consumer claims a batch by moving the rows'
``visible_at`` one lease ahead and stamping them with its process's ``owner``; a heartbeat keeps pushing the
lease while the work runs, so a process that dies simply lets its leases lapse and the rows come back to
the other consumers. Delivery is at least once: a message acked in memory but not yet flushed when the
process is killed runs again. Writers of all processes queue on an ``flock`` of ``<file>-writer.lock``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from dramatiq.broker import Broker, Consumer
from dramatiq.common import current_millis, dq_name, q_name, xq_name
from dramatiq.errors import DecodeError, QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from . import _sqlite_schema as sql
from ._sqlite_consumer import ACK_FLUSH_DELAY_S, SQLiteConsumer, SQLiteMessageProxy

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: writers then queue in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

__all__ = ["SQLiteBroker", "SQLiteConsumer", "SQLiteMessageProxy"]

logger = logging.getLogger(__name__)

#: Connections inherited through fork(): the child keeps them referenced and never closes them, because
#: closing SQLite handles that another process also uses can disturb that process's locks.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []


class SQLiteBroker(Broker):
    """A Dramatiq broker storing its queues in one SQLite file (WAL), safe across threads and processes.

    Parameters:
      path: the database file; created with its parent folder if missing.
      middleware: as for :class:`dramatiq.Broker`.
      lease_ms: how long a claimed message stays invisible to others without a heartbeat.
      max_receives: deliveries after which a message is dead-lettered instead of delivered again.
      busy_timeout_ms: how long a statement waits for another process's write lock.
      lookahead: messages a consumer may hold beyond Dramatiq's prefetch while its messages go through
        quickly (see :class:`SQLiteConsumer`); None means three times the prefetch, at most 256; 0 none.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "queue.db",
        *,
        middleware: Optional[list[Middleware]] = None,
        lease_ms: int = 30000,
        max_receives: int = 5,
        busy_timeout_ms: int = 10000,
        lookahead: Optional[int] = None,
    ) -> None:
        super().__init__(middleware=middleware)
        self.path = os.fspath(path)
        self.lease_ms = int(lease_ms)
        self.max_receives = int(max_receives)
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.lookahead = lookahead
        self.queues: set[str] = set()
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._reset_process_state()
        self._db()

    # -- connection and per-process state -------------------------------------------------------------

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the connection; every statement runs under it
        self._conn: Optional[sqlite3.Connection] = None
        self._lock_fd: Optional[int] = None
        #: Identifies this process's claims; a forked child gets its own so it never extends the parent's.
        self.owner = uuid.uuid4().hex
        self._pending_lock = threading.Lock()
        self._acks: list[int] = []
        self._nacks: list[tuple[int, str, int]] = []
        self._pending_since = 0.0
        self._last_lease = 0
        self._consumers: dict[str, set[SQLiteConsumer]] = defaultdict(set)
        self._consumed_queues: set[str] = set()
        self._heartbeat: Optional[threading.Thread] = None
        self._heartbeat_stop = threading.Event()

    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            if self._conn is not None:
                _INHERITED_CONNECTIONS.append(self._conn)
            self._reset_process_state()
        conn = self._conn
        if conn is None:
            with self._lock:
                if self._conn is None:
                    self._conn = sql.connect(self.path, self.busy_timeout_ms)
                    if fcntl is not None and self.path != ":memory:" and not self.path.startswith("file:"):
                        self._lock_fd = os.open(self.path + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
                conn = self._conn
        return conn

    def _lock_writes(self) -> None:
        """Queue for the write lock across processes; the caller holds ``self._lock``.

        SQLite's busy handler sleeps 1, 2, 5, 10 ... ms between tries while a claim lasts a fraction of a
        millisecond; a blocking ``flock`` hands the database over the moment the other process is done.
        """
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def _unlock_writes(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _read(self, query: str, params: tuple = ()) -> list[tuple]:
        conn = self._db()
        with self._lock:
            return conn.execute(query, params).fetchall()

    def _write(self, work: Callable[[sqlite3.Connection, int], Any], *, flush: bool = False) -> Any:
        """Run ``work(conn, now)`` inside ``BEGIN IMMEDIATE``; with ``flush``, apply pending acks first."""
        conn = self._db()
        with self._lock:
            acks, nacks = self._take_pending() if flush else ([], [])
            self._lock_writes()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    now = current_millis()
                    self._apply_pending(conn, acks, nacks)
                    result = work(conn, now)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except BaseException:
                self._restore_pending(acks, nacks)
                raise
            finally:
                self._unlock_writes()

    # -- pending acks and nacks -----------------------------------------------------------------------

    def _add_pending(self, row_id: int, dead_queue: Optional[str]) -> None:
        with self._pending_lock:
            if not self._acks and not self._nacks:
                self._pending_since = time.monotonic()
            if dead_queue is None:
                self._acks.append(row_id)
            else:
                self._nacks.append((row_id, dead_queue, current_millis()))

    def _take_pending(self) -> tuple[list[int], list[tuple[int, str, int]]]:
        with self._pending_lock:
            acks, nacks = self._acks, self._nacks
            self._acks, self._nacks = [], []
            return acks, nacks

    def _restore_pending(self, acks: list[int], nacks: list[tuple[int, str, int]]) -> None:
        if acks or nacks:
            with self._pending_lock:
                self._acks[:0] = acks
                self._nacks[:0] = nacks
                self._pending_since = time.monotonic()

    @staticmethod
    def _apply_pending(conn: sqlite3.Connection, acks: list[int], nacks: list[tuple[int, str, int]]) -> None:
        if acks:
            conn.execute(sql.ACK, (json.dumps(acks),))
        for row_id, dead_queue, failed_at in nacks:
            conn.execute(sql.DEAD_LETTER, (dead_queue, failed_at, f"[{row_id}]"))

    def _write_nacks(self, conn: sqlite3.Connection, nacks: list[tuple[int, str, int]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._apply_pending(conn, [], nacks)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _flush_pending(self, *, force: bool = True) -> None:
        """Write pending acks and nacks; unless ``force``, only once the oldest has waited a little."""
        if not self._acks and not self._nacks:
            return
        if not force and time.monotonic() - self._pending_since < ACK_FLUSH_DELAY_S:
            return
        self._write(lambda conn, now: None, flush=True)

    # -- claiming, leases and wake-ups ----------------------------------------------------------------

    def _lease_until(self, now: int) -> int:
        """A lease deadline later than any given before by this process: it names one claim's rows."""
        until = max(now + self.lease_ms, self._last_lease + 1)
        self._last_lease = until
        return until

    def _claim(self, queue_name: str, limit: int) -> tuple[list[tuple[int, bytes, int]], bool]:
        """Lease up to ``limit`` visible messages, writing pending acks on the way.

        Returns the leased rows ``(id, body, received)`` and whether more are probably waiting.
        """
        conn = self._db()
        with self._lock:
            acks, nacks = self._take_pending()
            self._lock_writes()
            try:
                if nacks:
                    self._write_nacks(conn, nacks)
                    nacks = []
                now = current_millis()
                until = self._lease_until(now)
                conn.execute(sql.CLAIM, (json.dumps(acks), queue_name, now, until, self.owner, limit,
                                         self.max_receives, xq_name(queue_name)))
            except BaseException:
                self._restore_pending(acks, nacks)
                raise
            finally:
                self._unlock_writes()
            count, text = conn.execute(sql.CLAIMED, (queue_name, until, self.owner)).fetchone()
        rows = []
        if count:
            for item in text.split(","):
                row_id, received, body = item.split(":")
                rows.append((int(row_id), bytes.fromhex(body), int(received)))
        return rows, count >= limit

    def _head(self, queue_name: str) -> Optional[int]:
        rows = self._read(sql.HEAD, (queue_name,))
        return rows[0][0] if rows else None

    def _data_version(self) -> int:
        return self._read("PRAGMA data_version")[0][0]

    def _requeue(self, queue_name: str, row_ids: list[int]) -> None:
        if row_ids:
            self._write(lambda conn, now: conn.execute(sql.REQUEUE, (now, self.owner, json.dumps(row_ids))))
            self._notify(queue_name)

    def _notify(self, queue_name: str) -> None:
        for consumer in list(self._consumers.get(queue_name, ())):
            consumer._wake(new_messages=True)

    def extend_leases(self) -> None:
        """Push the lease of every message this process holds one lease ahead (the heartbeat's work)."""
        queues = list(self._consumed_queues)

        def extend(conn: sqlite3.Connection, now: int) -> None:
            # Per consumed queue rather than over the whole table, which would hold the write lock for
            # long on a large backlog.
            for queue_name in queues:
                conn.execute(sql.HEARTBEAT, (self._lease_until(now), self.owner, queue_name, now))

        if queues:
            self._write(extend, flush=True)

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_ms / 3000):
            try:
                self.extend_leases()
            except Exception:
                logger.exception("SQLite broker heartbeat failed; retrying in %d ms.", self.lease_ms // 3)

    def _start_heartbeat(self) -> None:
        self._db()
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat_stop = stop = threading.Event()
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, args=(stop,), name="sqlite-broker-heartbeat", daemon=True
            )
            self._heartbeat.start()

    # -- the Broker interface -------------------------------------------------------------------------

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        """Return a consumer leasing up to ``prefetch`` messages of ``queue_name`` at a time."""
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)
        self._start_heartbeat()
        lookahead = min(3 * prefetch, 256) if self.lookahead is None else self.lookahead
        consumer = SQLiteConsumer(self, queue_name, prefetch, timeout, lookahead)
        self._consumers[queue_name].add(consumer)
        self._consumed_queues.add(queue_name)
        return consumer

    def declare_queue(self, queue_name: str) -> None:
        """Declare a queue and its delay queue; idempotent."""
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues.add(queue_name)
            self.emit_after("declare_queue", queue_name)
            delayed_name = dq_name(queue_name)
            self.delay_queues.add(delayed_name)
            self.emit_after("declare_delay_queue", delayed_name)

    def get_declared_queues(self) -> set[str]:
        """Return the names of the queues declared on this broker."""
        return set(self.queues)

    def _prepare(self, message: Message, delay: Optional[int], now: int) -> tuple[Message, tuple]:
        queue_name, visible_at = message.queue_name, now
        if delay is not None:
            queue_name = dq_name(queue_name)
            visible_at = now + delay
            message = message.copy(queue_name=queue_name, options={"eta": visible_at})
        return message, (queue_name, message.message_id, message.encode(), visible_at, now)

    def enqueue(self, message: Message, *, delay: Optional[int] = None) -> Message:
        """Store a message, on its delay queue with ``options["eta"]`` when ``delay`` (ms) is given."""
        message, row = self._prepare(message, delay, current_millis())
        self.emit_before("enqueue", message, delay)
        conn = self._db()
        with self._lock:
            self._lock_writes()
            try:
                conn.execute(sql.INSERT, row)
            finally:
                self._unlock_writes()
        self._notify(row[0])
        self.emit_after("enqueue", message, delay)
        return message

    def enqueue_many(self, messages: Iterable[Message], *, delay: Optional[int] = None) -> list[Message]:
        """Store many messages in one transaction (fan-out); middleware sees each one as in ``enqueue``."""
        now = current_millis()
        prepared = [self._prepare(message, delay, now) for message in messages]
        for message, _ in prepared:
            self.emit_before("enqueue", message, delay)
        if prepared:
            self._write(lambda conn, now: conn.executemany(sql.INSERT, [row for _, row in prepared]))
        for queue_name in {row[0] for _, row in prepared}:
            self._notify(queue_name)
        for message, _ in prepared:
            self.emit_after("enqueue", message, delay)
        return [message for message, _ in prepared]

    def flush(self, queue_name: str) -> None:
        """Drop every message of a queue: ready, delayed, in flight and dead-lettered."""
        base = q_name(queue_name)
        names = json.dumps([base, dq_name(base), xq_name(base)])
        self._write(lambda conn, now: conn.execute(
            "DELETE FROM messages WHERE queue IN (SELECT value FROM json_each(?))", (names,)))

    def flush_all(self) -> None:
        """Drop every message of every declared queue, dead letters included."""
        for queue_name in list(self.queues):
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: Optional[int] = None, interval: int = 5) -> None:
        """Wait until ``queue_name`` and its delay queue hold no message, acks written (``timeout`` in ms).

        Raises:
          QueueJoinTimeout: when ``timeout`` elapses first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        names = (q_name(queue_name), dq_name(queue_name))
        while True:
            self._flush_pending()
            if not self._read("SELECT 1 FROM messages WHERE queue IN (?, ?) LIMIT 1", names):
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(interval / 1000)

    def close(self) -> None:
        """Stop the heartbeat, write pending acks and close this process's connection."""
        self._heartbeat_stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(timeout=5)
        self._heartbeat = None
        if self._pid != os.getpid() or self._conn is None:
            return
        try:
            self._flush_pending()
        except sqlite3.Error:
            logger.exception("Could not write pending acks on close; those messages will run again.")
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- inspection and dead letters (used by the REST API) -------------------------------------------

    def queue_stats(self) -> dict[str, dict[str, int]]:
        """Count messages per queue: ``ready``, ``delayed``, ``in_flight`` (leased) and ``dead``."""
        rows = self._read(
            "SELECT queue, owner IS NOT NULL AND visible_at > ? AS held, COUNT(*) FROM messages GROUP BY 1, 2",
            (current_millis(),),
        )
        stats = {name: {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0} for name in self.queues}
        for queue, held, count in rows:
            entry = stats.setdefault(q_name(queue), {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0})
            if queue.endswith(".XQ"):
                entry["dead"] += count
            elif held:
                entry["in_flight"] += count
            elif queue.endswith(".DQ"):
                entry["delayed"] += count
            else:
                entry["ready"] += count
        return stats

    def dead_letters(self, queue: Optional[str] = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """List dead-lettered messages, newest first, of one queue or of all."""
        where, params = ("queue = ?", (xq_name(queue),)) if queue else ("queue LIKE '%.XQ'", ())
        rows = self._read(
            "SELECT id, queue, message_id, body, enqueued_at, visible_at, received FROM messages "
            f"WHERE {where} ORDER BY visible_at DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        letters = []
        for row_id, queue_name, message_id, body, enqueued_at, dead_at, received in rows:
            letter: dict[str, Any] = {
                "id": row_id, "queue": q_name(queue_name), "message_id": message_id,
                "enqueued_at": enqueued_at, "dead_at": dead_at, "received": received,
            }
            try:
                message = Message.decode(body)
                letter.update(actor_name=message.actor_name, args=list(message.args), kwargs=message.kwargs,
                              options=message.options, message_timestamp=message.message_timestamp)
            except DecodeError:
                letter.update(actor_name=None, args=None, kwargs=None, options=None, message_timestamp=None)
            letters.append(letter)
        return letters

    def requeue_dead(self, ids: list[int]) -> int:
        """Put dead letters back on their queue as new (eta and retry count reset); return how many moved."""
        queues: set[str] = set()

        def requeue(conn: sqlite3.Connection, now: int) -> int:
            rows = conn.execute(
                "SELECT id, queue, body FROM messages WHERE queue LIKE '%.XQ' "
                "AND id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),)).fetchall()
            for row_id, queue_name, body in rows:
                base = q_name(queue_name)
                try:
                    message = Message.decode(body)
                    message = message.copy(queue_name=base)
                    message.options.pop("eta", None)
                    message.options.pop("retries", None)
                    body = message.encode()
                except DecodeError:
                    pass  # kept as is: the consumer dead-letters it again on delivery
                conn.execute(
                    "UPDATE messages SET queue = ?, body = ?, visible_at = ?, received = 0, owner = NULL "
                    "WHERE id = ?", (base, body, now, row_id))
                queues.add(base)
            return len(rows)

        moved = self._write(requeue)
        for queue_name in queues:
            self._notify(queue_name)
        return moved

    def delete_dead(self, ids: list[int]) -> int:
        """Delete dead letters by row id; return how many were deleted."""
        return self._write(lambda conn, now: conn.execute(
            "DELETE FROM messages WHERE queue LIKE '%.XQ' AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),)).rowcount)

    def has_message(self, message_id: str, *, include_dead: bool = False) -> bool:
        """Tell whether a message is waiting, delayed or in flight (or dead, with ``include_dead``)."""
        query = "SELECT 1 FROM messages WHERE message_id = ?"
        if not include_dead:
            query += " AND queue NOT LIKE '%.XQ'"
        return bool(self._read(query + " LIMIT 1", (message_id,)))
