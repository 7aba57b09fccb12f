"""The message store of the embedded broker: one SQLite file, shared by every process that opens it.

Each message is a row of ``messages``; its ``queue`` is ``q``, ``q.DQ`` (delayed: ``visible_at`` is the
eta) or ``q.XQ`` (dead letters, kept until deleted). A claim moves a batch of rows' ``visible_at`` one
lease ahead and stamps them with this process's :attr:`MessageStore.owner`; a heartbeat keeps pushing
the lease while the work runs, so a process that dies simply lets its leases lapse and the rows come
back to the other processes; a process on the same host gives them back at once when it sees that their
owner is gone (:meth:`MessageStore.reclaim_abandoned`; each owner's host name, pid and start time are
kept in ``owners``). Acks and nacks wait in memory and are written inside the next claim's
transaction (or after :data:`ACK_FLUSH_DELAY_S` when idle): delivery is at least once, and a message
acked but not yet written when the process is killed runs again. Writers of all processes queue on an
``flock`` of ``<file>-writer.lock``.

The store knows rows, queues and leases, not Dramatiq's brokers and consumers: :mod:`quaero.broker.sqlite`
adapts it to them, using only the public methods below.
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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dramatiq.common import current_millis, q_name, xq_name

from quaero.api.processes import ProcessIdentity, this_process

from . import _sqlite_schema as sql
from ._sqlite_letters import DeadLetterQueries
from .inspection import DeadLetter, QueueStats

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: writers then queue in SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

__all__ = ["ACK_FLUSH_DELAY_S", "Claimed", "MessageStore", "NewMessage"]

logger = logging.getLogger(__name__)

ACK_FLUSH_DELAY_S = 0.002  # an idle process writes its acks after this long

#: Connections inherited through fork(): the child keeps them referenced and never closes them, because
#: closing SQLite handles that another process also uses can disturb that process's locks.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []

#: A claimed row: ``(row id, body, times received)``. A plain tuple: a consumer holds hundreds of them.
Claimed = tuple[int, bytes, int]


class NewMessage(NamedTuple):
    """A row to store: the queue it waits on, its message id, its encoded body and its times (ms)."""

    queue: str
    message_id: str
    body: bytes
    visible_at: int
    enqueued_at: int


class MessageStore:
    """The rows of every queue in one SQLite file (WAL), safe across threads and processes.

    Parameters:
      path: the database file; created with its parent folder if missing.
      lease_ms: how long a claimed message stays invisible to others without a heartbeat.
      max_receives: claims after which a message is dead-lettered instead of handed out again.
      busy_timeout_ms: how long a statement waits for another process's write lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, lease_ms: int = 30000, max_receives: int = 5,
                 busy_timeout_ms: int = 10000) -> None:
        self.path = os.fspath(path)
        self.lease_ms = int(lease_ms)
        self.max_receives = int(max_receives)
        self.busy_timeout_ms = int(busy_timeout_ms)
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._letters = DeadLetterQueries(self._read, self._write)
        self._reset_process_state()
        self.connection()

    # -- connection and per-process state -------------------------------------------------------------

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the connection; every statement runs under it
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        # Identifies this process's claims; a forked child gets its own so it never extends the parent's.
        self._owner = uuid.uuid4().hex
        self._registered = False  # whether ``owners`` names this process (done before its first claim)
        self._pending_lock = threading.Lock()
        self._acks: list[int] = []
        self._nacks: list[tuple[int, str, int]] = []
        self._pending_since = 0.0
        self._last_lease = 0
        self._subscribers: dict[str, set[Callable[[], None]]] = defaultdict(set)
        self._claimed_queues: set[str] = set()
        self._heartbeat: threading.Thread | None = None
        self._heartbeat_stop = threading.Event()

    def connection(self) -> sqlite3.Connection:
        """This process's connection: opened on first use, and again in a forked child."""
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

    @property
    def owner(self) -> str:
        """The stamp of this process's claims (a forked child has its own)."""
        self.connection()
        return self._owner

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

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        conn = self.connection()
        with self._lock:
            return conn.execute(query, params).fetchall()

    def _write(self, work: Callable[[sqlite3.Connection, int], Any], *, with_acks: bool = False) -> Any:
        """Run ``work(conn, now)`` inside ``BEGIN IMMEDIATE``; ``with_acks`` writes pending acks first."""
        conn = self.connection()
        with self._lock:
            acks, nacks = self._take_pending() if with_acks else ([], [])
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

    # -- wake-ups -------------------------------------------------------------------------------------

    def subscribe(self, queue_name: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this process makes messages of ``queue_name`` visible.

        Other processes' writes show up in :meth:`data_version` instead.
        """
        self.connection()  # a forked child drops its parent's subscribers first
        self._subscribers[queue_name].add(callback)

    def unsubscribe(self, queue_name: str, callback: Callable[[], None]) -> None:
        """Stop calling ``callback`` for ``queue_name``."""
        self._subscribers[queue_name].discard(callback)

    def notify(self, queue_name: str) -> None:
        """Wake this process's subscribers of ``queue_name``."""
        for callback in list(self._subscribers.get(queue_name, ())):
            callback()

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: it changes when another connection commits (a few µs)."""
        return self._read("PRAGMA data_version")[0][0]

    def next_visible_at(self, queue_name: str) -> int | None:
        """When the earliest message of ``queue_name`` is (or was) visible, in ms; None when it is empty."""
        rows = self._read(sql.HEAD, (queue_name,))
        return rows[0][0] if rows else None

    # -- storing --------------------------------------------------------------------------------------

    def enqueue(self, message: NewMessage) -> None:
        """Store one message (a single statement: no explicit transaction) and wake its queue's subscribers."""
        conn = self.connection()
        with self._lock:
            self._lock_writes()
            try:
                conn.execute(sql.INSERT, message)
            finally:
                self._unlock_writes()
        self.notify(message.queue)

    def enqueue_many(self, messages: Sequence[NewMessage]) -> None:
        """Store many messages in one transaction and wake their queues' subscribers."""
        if not messages:
            return
        self._write(lambda conn, now: conn.executemany(sql.INSERT, messages))
        for queue_name in {message.queue for message in messages}:
            self.notify(queue_name)

    def purge(self, queue_names: Iterable[str]) -> None:
        """Delete every message of these queues (exact names: ``q``, ``q.DQ``, ``q.XQ``), in flight or not."""
        names = json.dumps(list(queue_names))
        self._write(lambda conn, now: conn.execute(sql.PURGE, (names,)))

    def is_empty(self, queue_names: Iterable[str]) -> bool:
        """Tell whether these queues (exact names) hold no message, pending acks written first."""
        self.write_acks()
        return not self._read(sql.ANY_OF_QUEUES, (json.dumps(list(queue_names)),))

    # -- claims, acks and leases ----------------------------------------------------------------------

    def _lease_until(self, now: int) -> int:
        """A lease deadline later than any given before by this process: it names one claim's rows."""
        until = max(now + self.lease_ms, self._last_lease + 1)
        self._last_lease = until
        return until

    def claim(self, queue_name: str, limit: int) -> tuple[list[Claimed], bool]:
        """Lease up to ``limit`` visible messages of ``queue_name``, writing pending acks in the same transaction.

        A message claimed more than ``max_receives`` times goes to the dead letters instead of being returned.
        Returns the leased rows and whether more are probably waiting (the batch came back full).
        """
        conn = self.connection()
        self._claimed_queues.add(queue_name)
        if not self._registered:
            self._register()
        with self._lock:
            acks, nacks = self._take_pending()
            self._lock_writes()
            try:
                if nacks:
                    self._write_nacks(conn, nacks)
                    nacks = []
                now = current_millis()
                until = self._lease_until(now)
                conn.execute(sql.CLAIM, (json.dumps(acks), queue_name, now, until, self._owner, limit,
                                         self.max_receives, xq_name(queue_name)))
            except BaseException:
                self._restore_pending(acks, nacks)
                raise
            finally:
                self._unlock_writes()
            count, text = conn.execute(sql.CLAIMED, (queue_name, until, self._owner)).fetchone()
        rows = []
        if count:
            for item in text.split(","):
                row_id, received, body = item.split(":")
                rows.append((int(row_id), bytes.fromhex(body), int(received)))
        return rows, count >= limit

    def ack(self, row_id: int) -> None:
        """Delete a claimed row, with the next claim or :meth:`write_acks`."""
        with self._pending_lock:
            if not self._acks and not self._nacks:
                self._pending_since = time.monotonic()
            self._acks.append(row_id)

    def nack(self, row_id: int, dead_queue: str) -> None:
        """Move a claimed row to ``dead_queue`` (``q.XQ``), with the next claim or :meth:`write_acks`."""
        with self._pending_lock:
            if not self._acks and not self._nacks:
                self._pending_since = time.monotonic()
            self._nacks.append((row_id, dead_queue, current_millis()))

    @property
    def has_pending(self) -> bool:
        """Whether acks or nacks wait in memory to be written."""
        return bool(self._acks or self._nacks)

    def write_acks(self, *, force: bool = True) -> None:
        """Write pending acks and nacks; unless ``force``, only once the oldest has waited a little."""
        if not self._acks and not self._nacks:
            return
        if not force and time.monotonic() - self._pending_since < ACK_FLUSH_DELAY_S:
            return
        self._write(lambda conn, now: None, with_acks=True)

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
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT leaves it open
                conn.execute("ROLLBACK")
            raise

    def release(self, queue_name: str, row_ids: Sequence[int]) -> None:
        """Make rows this process claimed but did not process visible again now, the claim not counted."""
        if row_ids:
            self._write(lambda conn, now: conn.execute(sql.REQUEUE, (now, self._owner, json.dumps(list(row_ids)))))
            self.notify(queue_name)

    def extend_leases(self) -> None:
        """Push the lease of every row this process holds one lease ahead (the heartbeat's work)."""
        queues = list(self._claimed_queues)

        def extend(conn: sqlite3.Connection, now: int) -> None:
            # Per claimed queue rather than over the whole table, which would hold the write lock for
            # long on a large backlog.
            for queue_name in queues:
                conn.execute(sql.HEARTBEAT, (self._lease_until(now), self._owner, queue_name, now))
            self._seen(conn, now)

        if queues:
            self._write(extend, with_acks=True)

    # -- owners ---------------------------------------------------------------------------------------

    def _seen(self, conn: sqlite3.Connection, now: int) -> None:
        me = this_process()
        conn.execute(sql.OWNER_SEEN, (self._owner, me.host, me.pid, me.started, now))

    def _register(self) -> None:
        """Name this process in ``owners`` (host, pid, start time) before it claims anything."""
        self._write(self._seen)
        self._registered = True

    def reclaim_abandoned(self) -> int:
        """Make visible at once the messages held by processes of this host that are gone; returns how many.

        A process is gone when its pid no longer exists or belongs to a process started at another time
        (:mod:`quaero.api.processes`). Other hosts' processes cannot be told dead: their leases lapse as
        before, and their ``owners`` rows are forgotten once they have not been seen for ten leases.
        """
        me = this_process()
        now = current_millis()
        dead, stale = [], []
        for owner, host, pid, started, seen_at in self._read(sql.OWNERS):
            if owner == self._owner:
                continue
            if host == me.host and ProcessIdentity(host, pid, started).is_gone():
                dead.append(owner)
            elif host != me.host and seen_at < now - 10 * self.lease_ms:
                stale.append(owner)
        if not dead and not stale:
            return 0

        def reclaim(conn: sqlite3.Connection, now: int) -> tuple[int, list[str]]:
            moved, queues = 0, [row[0] for row in conn.execute(sql.QUEUES)]
            if dead:
                owners = json.dumps(dead)
                for queue_name in queues:
                    moved += conn.execute(sql.RECLAIM, (now, queue_name, now, owners)).rowcount
            conn.execute(sql.FORGET_OWNERS, (json.dumps(dead + stale),))
            return moved, queues

        moved, queues = self._write(reclaim)
        if moved:
            logger.info("Gave back %d message(s) held by %d process(es) of this host that are gone.",
                        moved, len(dead))
            for queue_name in queues:
                self.notify(queue_name)
        return moved

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_ms / 3000):
            try:
                self.extend_leases()
            except Exception:
                logger.exception("SQLite broker heartbeat failed; retrying in %d ms.", self.lease_ms // 3)

    def start_heartbeat(self) -> None:
        """Extend this process's leases every third of a lease from a daemon thread (idempotent).

        The first call names this process in ``owners`` and gives back at once what processes of this host
        that are gone still hold: a restarted server does not wait for its dead workers' leases.
        """
        self.connection()
        if not self._registered:
            self._register()
            self.reclaim_abandoned()
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat_stop = stop = threading.Event()
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, args=(stop,), name="sqlite-broker-heartbeat", daemon=True
            )
            self._heartbeat.start()

    # -- inspection and dead letters ------------------------------------------------------------------

    def stats(self, queue_names: Iterable[str] = ()) -> dict[str, QueueStats]:
        """Count messages per queue (``queue_names`` listed even when empty): ready, delayed, in flight, dead."""
        rows = self._read(sql.STATS, (current_millis(),))
        stats = {name: _zero() for name in queue_names}
        for queue, held, count in rows:
            entry = stats.setdefault(q_name(queue), _zero())
            if queue.endswith(".XQ"):
                entry["dead"] += count
            elif held:
                entry["in_flight"] += count
            elif queue.endswith(".DQ"):
                entry["delayed"] += count
            else:
                entry["ready"] += count
        return stats

    def find_messages(self, message_ids: Iterable[str], *, include_dead: bool = True) -> set[str]:
        """The ids among ``message_ids`` of messages waiting, delayed or in flight (or dead, with ``include_dead``)."""
        query = sql.FIND_ANY if include_dead else sql.FIND_LIVE
        return {row[0] for row in self._read(query, (json.dumps(list(message_ids)),))}

    def has_message(self, message_id: str, *, include_dead: bool = True) -> bool:
        """Tell whether a message is waiting, delayed or in flight (or dead, with ``include_dead``)."""
        return bool(self.find_messages([message_id], include_dead=include_dead))

    def dead_letters(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters newest first, of one queue (its base name) or of all."""
        return self._letters.page(queue, limit, offset)

    def requeue_dead(self, ids: Sequence[int]) -> int:
        """Put dead letters back on their queue as new (eta and retry count reset); return how many moved."""
        moved, queues = self._letters.requeue(ids)
        for queue_name in queues:
            self.notify(queue_name)
        return moved

    def delete_dead(self, ids: Sequence[int]) -> int:
        """Delete dead letters by row id; return how many were deleted."""
        return self._letters.delete(ids)

    # -- closing --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the heartbeat, write pending acks and close this process's connection."""
        self._heartbeat_stop.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join(timeout=5)
        self._heartbeat = None
        if self._pid != os.getpid() or self._conn is None:
            return
        try:
            self.write_acks()
            if self._registered:
                # Holding nothing, this process need not be named any more; holding something (a job that
                # outlived the shutdown's grace), it stays named so that others take it once it is gone.
                self._write(lambda conn, now: conn.execute(sql.FORGET_IDLE_OWNER, (self._owner, self._owner)))
        except sqlite3.Error:
            logger.exception("Could not write pending acks on close; those messages will run again.")
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _zero() -> QueueStats:
    return {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0}
