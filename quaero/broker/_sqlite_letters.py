"""The dead letters of the message store: listed, put back on their queue, deleted.

A part of :class:`quaero.broker.store.MessageStore` kept in its own module; it runs its statements
through the store's read and transaction functions, so it shares the store's connection and locks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from dramatiq.common import q_name, xq_name

from . import _sqlite_schema as sql
from .inspection import DeadLetter, dead_letter, fresh_body

Read = Callable[[str, Sequence[Any]], list[tuple]]
Write = Callable[[Callable[[sqlite3.Connection, int], Any]], Any]


class DeadLetterQueries:
    """The dead-letter statements of one store."""

    def __init__(self, read: Read, write: Write) -> None:
        self._read = read
        self._write = write

    def page(self, queue: str | None, limit: int, offset: int) -> list[DeadLetter]:
        """Dead letters newest first, of one queue or of all."""
        where, params = ("queue = ?", (xq_name(queue),)) if queue else ("queue LIKE '%.XQ'", ())
        rows = self._read(sql.DEAD_PAGE.format(where=where), (*params, limit, offset))
        return [dead_letter(row_id, q_name(queue_name), body, dead_at, message_id=message_id,
                            enqueued_at=enqueued_at, received=received)
                for row_id, queue_name, message_id, body, enqueued_at, dead_at, received in rows]

    def requeue(self, ids: Sequence[int]) -> tuple[int, set[str]]:
        """Move dead letters back to their queues as new; returns how many moved and to which queues."""
        queues: set[str] = set()

        def requeue(conn: sqlite3.Connection, now: int) -> int:
            rows = conn.execute(sql.DEAD_BY_ID, (json.dumps(list(ids)),)).fetchall()
            for row_id, queue_name, body in rows:
                base = q_name(queue_name)
                # An undecodable body stays as it is: the consumer dead-letters it again on delivery.
                conn.execute(sql.RESURRECT, (base, fresh_body(body, base) or body, now, row_id))
                queues.add(base)
            return len(rows)

        return self._write(requeue), queues

    def delete(self, ids: Sequence[int]) -> int:
        """Delete dead letters by row id; returns how many were deleted."""
        return self._write(lambda conn, now: conn.execute(sql.DELETE_DEAD, (json.dumps(list(ids)),)).rowcount)
