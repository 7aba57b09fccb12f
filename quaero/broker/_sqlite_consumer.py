"""The consumer of the SQLite broker: leases batches of one queue's messages and hands them out.

It works through the public methods of :class:`~quaero.broker.store.MessageStore` only.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.common import current_millis, xq_name
from dramatiq.errors import DecodeError
from dramatiq.message import Message

from .store import ACK_FLUSH_DELAY_S, Claimed, MessageStore

logger = logging.getLogger(__name__)

BUSY_POLL_S = 0.002  # data_version polling while messages flowed recently
IDLE_POLL_S = 0.04
BUSY_WINDOW_S = 1.0
RECHECK_MS = 100  # look at the queue at least this often, whatever data_version says
RATE_WINDOW_S = 0.1


class SQLiteMessageProxy(MessageProxy):
    """A delivered message that remembers its row and how many times it was received."""

    def __init__(self, message: Message, row_id: int, received: int) -> None:
        super().__init__(message)
        self.row_id = row_id
        self.received = received


class SQLiteConsumer(Consumer):
    """Leases messages of one queue in batches and hands them out one by one.

    It holds at most ``prefetch`` unacked messages and claims again as soon as one is acked. While
    messages go through quickly (``prefetch`` acks or more within 100 ms) it may hold ``lookahead``
    more, and claims once a quarter of that is free, so that one transaction leases many messages: the
    worker threads keep the GIL while they have work, so a claim made only when their queue ran low
    would mostly finish after it ran dry (measured: 11-12k instead of 15-17k msg/s with 8 threads).
    Slow messages get neither, so no process holds on to them while another one idles.
    """

    def __init__(self, store: MessageStore, queue_name: str, prefetch: int, timeout: int, lookahead: int) -> None:
        self.store = store
        self.queue_name = queue_name
        self.dead_queue = xq_name(queue_name)
        self.prefetch = max(1, prefetch)
        self.lookahead = max(0, lookahead)
        self.timeout = timeout
        self._cv = threading.Condition(threading.Lock())
        self._seq = 0  # bumped on every wake-up so that a waiter never misses one
        self._wake_below = -1  # acks wake the consumer thread once this few messages are outstanding
        self._new_messages = True
        self._cache: deque[Claimed] = deque()
        self._outstanding: set[int] = set()  # leased here and not acked: cached or handed out
        self._backlog = False  # the last claim came back full: more messages are probably waiting
        self._data_version: int | None = None
        self._next_due = 0
        self._last_check = 0
        self._last_busy = 0.0
        self._acked = 0  # a rate estimate only: an increment lost between threads does not matter
        self._rate_since = time.monotonic()
        self._rate_acked = 0
        self._fast = False
        self._closed = False
        store.subscribe(queue_name, self.wake)

    def wake(self) -> None:
        """New messages may be visible: look at once (the store calls this on this process's writes)."""
        with self._cv:
            self._new_messages = True
            self._seq += 1
            self._cv.notify()

    def _release(self, row_id: int) -> None:
        # Worker threads come here; waking the consumer thread only once a batch is free spares a
        # thread switch per message.
        self._outstanding.discard(row_id)
        self._acked += 1
        if len(self._outstanding) <= self._wake_below:
            with self._cv:
                self._seq += 1
                self._cv.notify()

    def ack(self, message: MessageProxy) -> None:
        """Delete the message's row with the next claim or idle flush."""
        self.store.ack(message.row_id)
        self._release(message.row_id)

    def nack(self, message: MessageProxy) -> None:
        """Move the message to the dead-letter queue with the next claim or idle flush."""
        self.store.nack(message.row_id, self.dead_queue)
        self._release(message.row_id)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Make leased but unprocessed messages visible again at once, without counting the delivery."""
        row_ids = [message.row_id for message in messages]
        if row_ids:
            self.store.release(self.queue_name, row_ids)
            self._outstanding.difference_update(row_ids)

    def __next__(self) -> MessageProxy | None:
        """Return the next leased message, or None after ``timeout`` ms without one."""
        deadline = time.monotonic() + self.timeout / 1000
        while True:
            if self._cache:
                row_id, body, received = self._cache.popleft()
                try:
                    return SQLiteMessageProxy(Message.decode(body), row_id, received)
                except DecodeError:
                    logger.error("Dead-lettering undecodable message row %d of %r.", row_id, self.queue_name)
                    self.store.nack(row_id, self.dead_queue)
                    self._release(row_id)
                    continue
            seq = self._seq
            limit = self._lease_limit()
            batch = max(1, limit // 4) if self._fast else 1
            self._wake_below = limit - batch
            if limit - len(self._outstanding) >= batch:
                if self._poll(limit):
                    continue
            else:
                self.store.write_acks(force=False)
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return None
            wait = BUSY_POLL_S if now - self._last_busy < BUSY_WINDOW_S else IDLE_POLL_S
            if self.store.has_pending:
                wait = min(wait, ACK_FLUSH_DELAY_S)
            with self._cv:
                if self._seq == seq:
                    self._cv.wait(min(wait, remaining))

    def _lease_limit(self) -> int:
        now = time.monotonic()
        if now - self._rate_since >= RATE_WINDOW_S:
            self._fast = self._acked - self._rate_acked >= self.prefetch
            self._rate_since, self._rate_acked = now, self._acked
        return self.prefetch + self.lookahead if self._fast else self.prefetch

    def _poll(self, limit: int) -> bool:
        """Claim messages into the cache if some may be visible; return whether to look again at once."""
        store = self.store
        if not self._backlog:
            # The cheap checks first: a local enqueue, another connection's commit, a due eta, or time.
            now = current_millis()
            version = store.data_version()
            if not (self._new_messages or version != self._data_version
                    or now >= self._next_due or now - self._last_check >= RECHECK_MS):
                store.write_acks(force=False)
                return False
            self._new_messages = False
            self._data_version = version
            self._last_check = now
            head = store.next_visible_at(self.queue_name)
            if head is None or head > now:
                self._next_due = head if head is not None else now + RECHECK_MS
                store.write_acks(force=False)
                return False
        rows, self._backlog = store.claim(self.queue_name, limit - len(self._outstanding))
        if rows:
            self._outstanding.update([row[0] for row in rows])
            self._cache.extend(rows)
            self._last_busy = time.monotonic()
        return bool(rows) or self._backlog

    def close(self) -> None:
        """Give back leased messages not handed out yet and write pending acks."""
        if self._closed:
            return
        self._closed = True
        self.store.unsubscribe(self.queue_name, self.wake)
        cached = [row[0] for row in self._cache]
        self._cache.clear()
        try:
            self.store.release(self.queue_name, cached)
            self.store.write_acks()
        except sqlite3.Error:
            logger.exception("Could not release the consumer of %r cleanly; its leases will expire.",
                             self.queue_name)
