"""The event bus: the seed's six events, delivered in-process and relayed across processes.

Subscribers run on the publishing thread and must return quickly (hand work to a queue). A worker in
another process (``quaero worker``) writes its events to an *outbox* table; the server's *relay* tails it
and republishes them locally, so subscribers see every event wherever the work ran. On the embedded
default the outbox is its own SQLite file (``events.db``), so event traffic never contends with job writes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from quaero.stores.db import Database
from quaero.stores.jsonutil import dumps, loads

log = logging.getLogger(__name__)

JOB_PROGRESS = "job_progress"
TASK_PROGRESS = "task_progress"
JOB_LOG = "job_log"
JOB_STATUS_CHANGE = "job_status_change"
RESULT_SAVED = "result_saved"
JOB_SPAWN = "job_spawn"
LOOKBACK_IDS = 1000
EVENT_TYPES = (JOB_PROGRESS, TASK_PROGRESS, JOB_LOG, JOB_STATUS_CHANGE, RESULT_SAVED, JOB_SPAWN)


def iso(ts: float | None = None) -> str:
    """An epoch timestamp as the seed's ISO 8601 UTC form."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One event: a type from :data:`EVENT_TYPES` and its payload (the seed's fields)."""

    type: str
    payload: dict[str, Any]
    _text: list[str] = field(default_factory=list, compare=False, repr=False)

    def as_message(self) -> dict[str, Any]:
        """The WebSocket form: ``{"type": ..., "payload": ...}``."""
        return {"type": self.type, "payload": self.payload}

    def as_json(self) -> str:
        """:meth:`as_message` as JSON text, encoded once however many clients receive the event."""
        if not self._text:
            self._text.append(dumps(self.as_message()))
        return self._text[0]


Subscriber = Callable[[Event], None]


@dataclass
class _Subscription:
    callback: Subscriber
    types: frozenset[str] | None


class EventBus:
    """Publish/subscribe within a process, with an optional outbox to reach other processes."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.Lock()
        self.outbox: EventOutbox | None = None

    def subscribe(self, callback: Subscriber, types: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``callback`` for every event (or only ``types``); returns a function that unsubscribes."""
        subscription = _Subscription(callback, frozenset(types) if types is not None else None)
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]

        def unsubscribe() -> None:
            with self._lock:
                self._subscriptions = [s for s in self._subscriptions if s is not subscription]

        return unsubscribe

    def publish(self, type: str, payload: dict[str, Any]) -> None:
        """Deliver an event to local subscribers and, when this process has an outbox, to the server."""
        event = Event(type, payload)
        self.deliver(event)
        if self.outbox is not None:
            self.outbox.put(event)

    def deliver(self, event: Event) -> None:
        """Deliver to local subscribers only (the relay uses this for events from other processes)."""
        for subscription in self._subscriptions:
            if subscription.types is None or event.type in subscription.types:
                try:
                    subscription.callback(event)
                except Exception:
                    log.exception("event subscriber %r failed on %s", subscription.callback, event.type)


def _events_table(database: Database) -> None:
    autoinc = "INTEGER PRIMARY KEY AUTOINCREMENT" if database.is_sqlite else "BIGSERIAL PRIMARY KEY"
    with database.schema():  # the server and its workers start at once
        database.execute(
            f"CREATE TABLE IF NOT EXISTS events (id {autoinc}, origin TEXT NOT NULL, type TEXT NOT NULL, "
            "payload TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)"
        )
        database.execute("CREATE INDEX IF NOT EXISTS events_created ON events (created_at)")


@dataclass
class EventOutbox:
    """Buffers a worker process's events and writes them in batches for the server's relay."""

    database: Database
    flush_interval: float = 0.005
    origin: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        _events_table(self.database)
        self._buffer: list[Event] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quaero-event-outbox", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        with self._lock:
            self._buffer.append(event)
        self._wake.set()

    def flush(self) -> None:
        """Write what is buffered now."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return
        stamp = time.time()
        rows = [(self.origin, e.type, dumps(e.payload), stamp) for e in batch]
        sql = self.database.sql("INSERT INTO events (origin, type, payload, created_at) VALUES (?, ?, ?, ?)")
        with self.database.write() as db:
            db.cursor().executemany(sql, rows)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            time.sleep(self.flush_interval)  # gather a batch
            try:
                self.flush()
            except Exception:
                log.exception("could not write events to the outbox; retrying")
                time.sleep(0.5)

    def close(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()
        self.database.close()


class EventRelay:
    """Tails the outbox and republishes other processes' events on the local bus."""

    def __init__(self, database: Database, bus: EventBus, *, keep_seconds: float = 120.0) -> None:
        self.database = database
        self.bus = bus
        self.keep_seconds = keep_seconds
        _events_table(database)
        row = database.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        self._last_id = row[0]
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quaero-event-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poll(self) -> int:
        """Deliver the events written since the last poll; returns how many."""
        if self.database.is_sqlite:
            # One writer at a time: ids become visible in order, so "after the last id" misses nothing.
            since = self._last_id
        else:
            # Concurrent transactions can commit a lower id after a higher one: look back a little and
            # skip what was already delivered.
            since = max(0, self._last_id - LOOKBACK_IDS)
        rows = self.database.execute(
            "SELECT id, type, payload FROM events WHERE id > ? ORDER BY id LIMIT 5000", (since,)
        ).fetchall()
        delivered = 0
        for row_id, type_, payload in rows:
            if row_id in self._seen:
                continue
            self._remember(row_id)
            self._last_id = max(self._last_id, row_id)
            self.bus.deliver(Event(type_, loads(payload)))
            delivered += 1
        return delivered

    def _remember(self, row_id: int) -> None:
        if self.database.is_sqlite:
            return
        self._seen.add(row_id)
        self._seen_order.append(row_id)
        if len(self._seen_order) > 4 * LOOKBACK_IDS:
            self._seen.discard(self._seen_order.popleft())

    def _run(self) -> None:
        last_prune = time.monotonic()
        version = None
        idle = 0
        while not self._stopped.is_set():
            try:
                if self.database.is_sqlite:
                    # data_version changes only when another connection commits: a few µs to ask.
                    current = self.database.execute("PRAGMA data_version").fetchone()[0]
                    if current == version:
                        idle += 1
                        self._stopped.wait(0.002 if idle < 500 else 0.02)
                        continue
                    version = current
                idle = 0
                delivered = self.poll()
                if not self.database.is_sqlite and not delivered:
                    self._stopped.wait(0.01)
                if time.monotonic() - last_prune > 10:
                    last_prune = time.monotonic()
                    with self.database.write():
                        self.database.execute(
                            "DELETE FROM events WHERE created_at < ?", (time.time() - self.keep_seconds,)
                        )
            except Exception:
                log.exception("event relay failed; retrying")
                self._stopped.wait(1.0)

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.database.close()
