"""The consumer of the SQLite broker: leases batches of one queue's messages and hands them out."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Iterable, Optional

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.common import current_millis, xq_name
from dramatiq.errors import DecodeError
from dramatiq.message import Message

if TYPE_CHECKING:
    from .sqlite import SQLiteBroker

logger = logging.getLogger(__name__)

BUSY_POLL_S = 0.002  # data_version polling while messages flowed recently
IDLE_POLL_S = 0.04
BUSY_WINDOW_S = 1.0
RECHECK_MS = 100  # look at the queue at least this often, whatever data_version says
ACK_FLUSH_DELAY_S = 0.002  # an idle process deletes acked rows after this long
RATE_WINDOW_S = 0.1


class SQLiteMessageProxy(MessageProxy):
    """A delivered message that remembers its row and how many times it was received."""

    def __init__(self, message: Message, row_id: int, received: int) -> None:
        super().__init__(message)
        self.row_id = row_id
        self.received = received


class SQLiteConsumer(Consumer):
    """Leases messages of one queue in batches and hands them out one by one.

    At most ``prefetch`` messages are handed out and not yet acked. While messages are acked quickly
    (``prefetch`` or more within 100 ms), up to ``lookahead`` more are leased ahead into a local cache:
    the worker threads keep the GIL while they have work, so a consumer thread that claimed only when a
    slot freed would mostly get to run once they had all gone idle, and they would then wait out the
    whole claim. Slow messages get no lookahead, so other processes are not kept from them.
    """

    _HANDALL = bool(__import__("os").environ.get("HANDALL"))

    def __init__(self, broker: SQLiteBroker, queue_name: str, prefetch: int, timeout: int, lookahead: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.dead_queue = xq_name(queue_name)
        self.prefetch = max(1, prefetch)
        self.lookahead = max(0, lookahead)
        self.timeout = timeout
        self._cv = threading.Condition(threading.Lock())
        self._seq = 0  # bumped on every wake-up so that a waiter never misses one
        self._new_messages = True
        self._cache: deque[tuple[int, bytes, int]] = deque()
        self._outstanding: set[int] = set()  # leased here and not acked: cached or handed out
        self._backlog = False  # the last claim came back full: more messages are probably waiting
        self._data_version: Optional[int] = None
        self._next_due = 0
        self._last_check = 0
        self._last_busy = 0.0
        self._acked = 0
        self._rate_since = time.monotonic()
        self._rate_acked = 0
        self._fast = False
        self._closed = False

    def _wake(self, *, new_messages: bool) -> None:
        with self._cv:
            if new_messages:
                self._new_messages = True
            self._seq += 1
            self._cv.notify()

    def _release(self, row_id: int) -> None:
        with self._cv:
            self._outstanding.discard(row_id)
            self._acked += 1
            self._seq += 1
            self._cv.notify()

    def ack(self, message: MessageProxy) -> None:
        """Delete the message's row with the next claim or idle flush."""
        self.broker._add_pending(message.row_id, None)
        self._release(message.row_id)

    def nack(self, message: MessageProxy) -> None:
        """Move the message to the dead-letter queue with the next claim or idle flush."""
        self.broker._add_pending(message.row_id, self.dead_queue)
        self._release(message.row_id)

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Make leased but unprocessed messages visible again at once, without counting the delivery."""
        row_ids = [message.row_id for message in messages]
        if row_ids:
            self.broker._requeue(self.queue_name, row_ids)
            with self._cv:
                self._outstanding.difference_update(row_ids)

    def __next__(self) -> Optional[MessageProxy]:
        deadline = time.monotonic() + self.timeout / 1000
        while True:
            if self._cache and len(self._outstanding) - len(self._cache) < (self.prefetch if not self._HANDALL or not self._fast else self.prefetch + self.lookahead // 2):
                row_id, body, received = self._cache.popleft()
                try:
                    return SQLiteMessageProxy(Message.decode(body), row_id, received)
                except DecodeError:
                    logger.error("Dead-lettering undecodable message row %d of %r.", row_id, self.queue_name)
                    self.broker._add_pending(row_id, self.dead_queue)
                    self._release(row_id)
                    continue
            seq = self._seq
            if len(self._cache) <= (self.prefetch if self._fast and self.lookahead > self.prefetch else 0) and self._poll():
                continue
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return None
            wait = BUSY_POLL_S if now - self._last_busy < BUSY_WINDOW_S else IDLE_POLL_S
            if self.broker._acks or self.broker._nacks:
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

    def _poll(self) -> bool:
        """Claim messages into the cache if some may be visible; return whether to look again at once."""
        broker = self.broker
        free = self._lease_limit() - len(self._outstanding)
        if free <= 0:
            broker._flush_pending(force=False)
            return False
        if not self._backlog:
            # The cheap checks first: a local enqueue, another connection's commit, a due eta, or time.
            now = current_millis()
            version = broker._data_version()
            if not (self._new_messages or version != self._data_version
                    or now >= self._next_due or now - self._last_check >= RECHECK_MS):
                broker._flush_pending(force=False)
                return False
            self._new_messages = False
            self._data_version = version
            self._last_check = now
            head = broker._head(self.queue_name)
            if head is None or head > now:
                self._next_due = head if head is not None else now + RECHECK_MS
                broker._flush_pending(force=False)
                return False
        rows, self._backlog = broker._claim(self.queue_name, free)
        if rows:
            with self._cv:
                self._outstanding.update(row[0] for row in rows)
            self._cache.extend(rows)
            self._last_busy = time.monotonic()
        return bool(rows) or self._backlog

    def close(self) -> None:
        """Give back leased messages not handed out yet and write pending acks."""
        if self._closed:
            return
        self._closed = True
        self.broker._consumers[self.queue_name].discard(self)
        cached = [row[0] for row in self._cache]
        self._cache.clear()
        try:
            self.broker._requeue(self.queue_name, cached)
            self.broker._flush_pending()
        except sqlite3.Error:
            logger.exception("Could not release the consumer of %r cleanly; its leases will expire.",
                             self.queue_name)
