"""Rate limits shared by every thread, process and machine: a sliding 60-second log in the database.

Each admitted request is a row of ``rate_limit_events`` (bucket hash, time, tokens). Admitting one is a
write transaction that drops the bucket's rows older than the window, sums what is left and either adds
the request or says how long until enough of the window has passed. The limits also hold pro rata over
the last second (600 a minute is at most 10 in any second), so a minute's worth never goes out in one
burst that a provider would refuse; the transaction is serialised per
bucket (SQLite's ``BEGIN IMMEDIATE``, a transaction-scoped advisory lock on PostgreSQL), so two processes
never both take the last slot. On PostgreSQL the database's clock is used, so machines whose clocks
differ still share one window.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from quaero.api.outbound import RATE_WINDOW, RateReservation
from quaero.stores.db import Database

#: The short span over which a minute's limit also holds, pro rata (at least one request).
PACE_SPAN = 1.0

_TABLE = ("CREATE TABLE IF NOT EXISTS rate_limit_events (id {serial}, bucket VARCHAR(64) NOT NULL, "
          "at DOUBLE PRECISION NOT NULL, tokens INTEGER NOT NULL)")
_INDEX = "CREATE INDEX IF NOT EXISTS rate_limit_events_bucket ON rate_limit_events (bucket, at)"


def bucket_key(bucket: str) -> str:
    """What is stored for a bucket's name: a hash, so a name that holds a key never reaches the database."""
    return hashlib.sha256(bucket.encode()).hexdigest()


@dataclass(frozen=True)
class Admission:
    """What one try gave: the request's row when it was admitted, else the seconds to wait."""

    event_id: int | None
    wait: float


class StoredReservation(RateReservation):
    """A request's row in the log; settling it rewrites the row's tokens."""

    def __init__(self, limits: RateLimits, event_id: int, tokens: int) -> None:
        self._limits = limits
        self._id = event_id
        self._tokens = tokens

    @property
    def tokens(self) -> int:
        return self._tokens

    def settle(self, tokens: int) -> None:
        tokens = max(0, int(tokens))
        if tokens != self._tokens:
            self._limits.database.write_one("UPDATE rate_limit_events SET tokens = ? WHERE id = ?",
                                            (tokens, self._id))
            self._tokens = tokens

    def __repr__(self) -> str:
        return f"RateReservation(id={self._id}, tokens={self._tokens})"


class RateLimits:
    """Admits requests to buckets within their requests and tokens per minute."""

    def __init__(self, database: Database, *, pace: bool = True) -> None:
        self.database = database
        #: Whether the limits also hold pro rata over the last second (off only to test the minute alone).
        self.pace = pace
        self._ready = False

    def _prepare(self) -> None:
        if self._ready:
            return
        serial = "SERIAL PRIMARY KEY" if self.database.is_postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        with self.database.schema():
            self.database.execute(_TABLE.format(serial=serial))
            self.database.execute(_INDEX)
        self._ready = True

    def try_admit(self, bucket: str, *, requests_per_minute: int | None, tokens_per_minute: int | None,
                  tokens: int = 0) -> Admission:
        """Admit one request of ``tokens`` now if it fits, else say how long until it would.

        A request larger than ``tokens_per_minute`` by itself is admitted once the window is empty, so it
        is slow rather than never sent.
        """
        self._prepare()
        key = bucket_key(bucket)
        database = self.database
        with database.write():
            if database.is_postgres:
                database.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
                now = float(database.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())").fetchone()[0])
            else:
                now = time.time()
            start = now - RATE_WINDOW
            database.execute("DELETE FROM rate_limit_events WHERE bucket = ? AND at <= ?", (key, start))
            window = database.execute("SELECT at, tokens FROM rate_limit_events WHERE bucket = ? ORDER BY at",
                                      (key,)).fetchall()
            wait = _wait(window, now, requests_per_minute, tokens_per_minute, tokens, pace=self.pace)
            if wait > 0:
                return Admission(None, wait)
            row = database.execute("INSERT INTO rate_limit_events (bucket, at, tokens) VALUES (?, ?, ?) "
                                   "RETURNING id", (key, now, tokens)).fetchone()
            return Admission(int(row[0]), 0.0)

    def reservation(self, event_id: int, tokens: int) -> StoredReservation:
        """The reservation of an admitted request."""
        return StoredReservation(self, event_id, tokens)


def _wait(window: list[tuple[float, int]], now: float, requests_per_minute: int | None,
          tokens_per_minute: int | None, tokens: int, *, pace: bool = True) -> float:
    """Seconds until one more request of ``tokens`` fits ``window`` (the requests of the last minute,
    oldest first), or 0 when it fits now.

    The limits hold over the minute and, pro rata, over the last second: a provider counts a minute's
    limit over shorter spans too, so a minute's worth sent in a burst would be refused there.
    """
    minute = _span_wait(window, now, RATE_WINDOW, requests_per_minute, tokens_per_minute, tokens)
    if not pace:
        return minute
    second = [row for row in window if row[0] > now - PACE_SPAN]
    return max(minute, _span_wait(second, now, PACE_SPAN, _pro_rata(requests_per_minute), _pro_rata(tokens_per_minute),
                          tokens))


def _pro_rata(per_minute: int | None) -> int | None:
    return None if per_minute is None else max(1, math.ceil(per_minute * PACE_SPAN / RATE_WINDOW))


def _span_wait(window: list[tuple[float, int]], now: float, span: float, max_requests: int | None,
               max_tokens: int | None, tokens: int) -> float:
    """Seconds until one more request of ``tokens`` fits the requests of the last ``span`` seconds."""
    waits = [0.0]
    if max_requests is not None and len(window) + 1 > max_requests:
        # Enough of the oldest must leave the span that one more fits.
        leaving = len(window) + 1 - max_requests
        waits.append(window[leaving - 1][0] + span - now)
    if max_tokens is not None and window:
        used = sum(row[1] for row in window)
        excess = used + tokens - max_tokens
        if excess > 0:
            freed = 0
            for at, spent in window:
                freed += spent
                if freed >= excess or freed >= used:
                    waits.append(at + span - now)
                    break
    return max(waits)
