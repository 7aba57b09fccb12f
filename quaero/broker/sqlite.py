"""The Dramatiq broker of the embedded SQLite message store, and its queue inspector.

:class:`SQLiteBroker` turns Dramatiq's calls (declare, enqueue with a delay, consume, join, flush) into
calls of :class:`~quaero.broker.store.MessageStore`; its consumer claims, acks and releases rows through
the same public methods. The store's docstring describes the design.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence

from dramatiq.broker import Broker, Consumer
from dramatiq.common import current_millis, dq_name, q_name, xq_name
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from ._sqlite_consumer import SQLiteConsumer, SQLiteMessageProxy
from .inspection import DeadLetter, QueueInspector, QueueStats
from .store import MessageStore, NewMessage

__all__ = ["SQLiteBroker", "SQLiteConsumer", "SQLiteInspector", "SQLiteMessageProxy"]


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
        middleware: list[Middleware] | None = None,
        lease_ms: int = 30000,
        max_receives: int = 5,
        busy_timeout_ms: int = 10000,
        lookahead: int | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        self.store = MessageStore(path, lease_ms=lease_ms, max_receives=max_receives,
                                  busy_timeout_ms=busy_timeout_ms)
        self.lookahead = lookahead
        self.queues: set[str] = set()

    @property
    def path(self) -> str:
        """The store's database file."""
        return self.store.path

    @property
    def lease_ms(self) -> int:
        """How long a claim lasts without a heartbeat."""
        return self.store.lease_ms

    @property
    def owner(self) -> str:
        """The stamp of this process's claims in the store."""
        return self.store.owner

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        """Return a consumer leasing up to ``prefetch`` messages of ``queue_name`` at a time."""
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)
        self.store.start_heartbeat()
        lookahead = min(3 * prefetch, 256) if self.lookahead is None else self.lookahead
        return SQLiteConsumer(self.store, queue_name, prefetch, timeout, lookahead)

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

    @staticmethod
    def _prepare(message: Message, delay: int | None, now: int) -> tuple[Message, NewMessage]:
        # A delayed message waits in the table (on q.DQ, visible at its eta), not in a worker's memory.
        queue_name, visible_at = message.queue_name, now
        if delay is not None:
            queue_name = dq_name(queue_name)
            visible_at = now + delay
            message = message.copy(queue_name=queue_name, options={"eta": visible_at})
        return message, NewMessage(queue_name, message.message_id, message.encode(), visible_at, now)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        """Store a message, on its delay queue with ``options["eta"]`` when ``delay`` (ms) is given."""
        message, row = self._prepare(message, delay, current_millis())
        self.emit_before("enqueue", message, delay)
        self.store.enqueue(row)
        self.emit_after("enqueue", message, delay)
        return message

    def enqueue_many(self, messages: Iterable[Message], *, delay: int | None = None) -> list[Message]:
        """Store many messages in one transaction (fan-out); middleware sees each one as in ``enqueue``."""
        messages = list(messages)
        if len(messages) == 1:
            # One statement without an explicit transaction costs less than BEGIN ... COMMIT.
            return [self.enqueue(messages[0], delay=delay)]
        now = current_millis()
        prepared = [self._prepare(message, delay, now) for message in messages]
        for message, _ in prepared:
            self.emit_before("enqueue", message, delay)
        self.store.enqueue_many([row for _, row in prepared])
        for message, _ in prepared:
            self.emit_after("enqueue", message, delay)
        return [message for message, _ in prepared]

    def flush(self, queue_name: str) -> None:
        """Drop every message of a queue: ready, delayed, in flight and dead-lettered."""
        base = q_name(queue_name)
        self.store.purge([base, dq_name(base), xq_name(base)])

    def flush_all(self) -> None:
        """Drop every message of every declared queue, dead letters included."""
        for queue_name in list(self.queues):
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None, interval: int = 5) -> None:
        """Wait until ``queue_name`` and its delay queue hold no message, acks written (``timeout`` in ms).

        Raises:
          QueueJoinTimeout: when ``timeout`` elapses first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        names = (q_name(queue_name), dq_name(queue_name))
        while not self.store.is_empty(names):
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(interval / 1000)

    def close(self) -> None:
        """Stop the heartbeat, write pending acks and close this process's connection."""
        self.store.close()


class SQLiteInspector(QueueInspector):
    """The SQLite store answers everything: counts, messages by id, dead letters, batched enqueues."""

    can_find_messages = True
    supports_dead_letters = True
    broker: SQLiteBroker

    def stats(self) -> dict[str, QueueStats]:
        """Counts of every queue in the store (the declared ones listed even when empty)."""
        return self.broker.store.stats(self.broker.get_declared_queues())

    def find_messages(self, message_ids: Iterable[str], *, include_dead: bool = True) -> set[str]:
        """One indexed query for all of ``message_ids``."""
        return self.broker.store.find_messages(message_ids, include_dead=include_dead)

    def dead_letters(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters newest first, of one queue or of all."""
        return self.broker.store.dead_letters(queue, limit, offset)

    def requeue_dead(self, ids: Sequence[int]) -> int:
        """Move dead letters back to their queues as new messages, in one transaction."""
        return self.broker.store.requeue_dead(ids)

    def delete_dead(self, ids: Sequence[int]) -> int:
        """Delete dead letters in one transaction."""
        return self.broker.store.delete_dead(ids)

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """One transaction for all of them."""
        return self.broker.enqueue_many(messages)

    def reclaim_abandoned(self) -> int:
        """The store's owners of this host that are gone give their messages back."""
        return self.broker.store.reclaim_abandoned()

