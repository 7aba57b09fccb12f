"""Database factory: one peewee database per runtime, SQLite by default, PostgreSQL when scaled out."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import peewee as pw
from playhouse.db_url import connect

from quaero.errors import ConfigError

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 30000,
    "foreign_keys": 1,
    "cache_size": -32000,
    "temp_store": "memory",
}


class Database:
    """A peewee database plus the process-wide write lock that keeps SQLite writers from busy-waiting.

    SQLite lets one writer in at a time; threads of one process that collide would each sleep in SQLite's
    busy handler (1, 2, 5 ... ms). Serialising them on a Python lock first costs nothing and leaves the
    busy handler for the rare collision with another process.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        self.is_sqlite = parsed.scheme == "sqlite"
        self.is_postgres = parsed.scheme in ("postgres", "postgresql", "postgresext")
        if self.is_sqlite:
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
            if not path or path == ":memory:":
                raise ConfigError(f"database URL {url!r}: give a file path, e.g. sqlite:///data/quaero.db")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.db: pw.Database = pw.SqliteDatabase(
                path, pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE", returning_clause=True, timeout=30
            )
        elif self.is_postgres:
            self.db = connect(url)
        else:
            raise ConfigError(
                f"database URL {url!r} is not supported: use sqlite:///path/to/file.db or postgresql://user@host/db"
            )
        self._write_lock = threading.RLock() if self.is_sqlite else None

    @contextmanager
    def write(self) -> Iterator[pw.Database]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), serialised within the process."""
        if self._write_lock is None:
            with self.db.atomic():
                yield self.db
            return
        with self._write_lock, self.db.atomic():
            yield self.db

    def sql(self, query: str) -> str:
        """Rewrite ``?`` placeholders for databases that use ``%s``."""
        return query if self.is_sqlite else query.replace("?", "%s")

    def execute(self, query: str, params: tuple | list = ()) -> object:
        """Run raw SQL with ``?`` placeholders and return the cursor."""
        return self.db.execute_sql(self.sql(query), params)

    def close(self) -> None:
        """Close this thread's connection."""
        if not self.db.is_closed():
            self.db.close()
