"""Database factory: one peewee database per runtime, SQLite by default, PostgreSQL when scaled out."""

from __future__ import annotations

import os
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
    # No checkpoint inside a writer's commit (it would hold the writer lock for an fsync); a background
    # thread of every process checkpoints instead, beside the writers (see Database._checkpoint_loop).
    "wal_autocheckpoint": 0,
}
CHECKPOINT_EVERY = 0.5  # seconds


try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None


class _WriterLock:
    """Serialises SQLite writers: threads on a Python lock, processes on ``flock`` of a lock file.

    SQLite lets one writer in at a time, and a writer that finds the database locked sleeps in SQLite's
    busy handler for 1, 2, 5, 10 ... ms before it looks again, whereas a transaction here lasts about
    0.1 ms. Queueing on these locks instead hands the database over the moment it is free.
    """

    def __init__(self, path: str) -> None:
        self._thread_lock = threading.RLock()
        self._local = threading.local()
        self._path = path + ".lock"
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if fcntl is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own descriptor
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth == 0:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
        if self._local.depth == 0 and self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


class _Marker:
    """Stands on peewee's transaction stack during a write, so nested atomic() blocks use savepoints."""


class Database:
    """A peewee database plus a writer lock that keeps SQLite writers from busy-waiting."""

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
        self._write_lock = _WriterLock(path) if self.is_sqlite else None
        self._checkpointer: threading.Thread | None = None
        self._closed = threading.Event()
        if self.is_sqlite:
            self._path = path
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="quaero-checkpoint",
                                                  daemon=True)
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        import sqlite3

        connection = sqlite3.connect(self._path, timeout=30, check_same_thread=False)
        try:
            while not self._closed.wait(CHECKPOINT_EVERY):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or the file went away; the next round tries again
        finally:
            connection.close()

    @contextmanager
    def write(self) -> Iterator[pw.Database]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), serialised within the process."""
        if self._write_lock is None:
            with self.db.atomic():
                yield self.db
            return
        with self._write_lock:
            if self.db.in_transaction():  # nested: peewee makes it a savepoint
                with self.db.atomic():
                    yield self.db
                return
            # The outermost write is a plain BEGIN IMMEDIATE / COMMIT: it runs twice per job.
            connection = self.db.connection()
            connection.execute("BEGIN IMMEDIATE")
            self.db.push_transaction(_Marker)
            try:
                yield self.db
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            else:
                connection.execute("COMMIT")
            finally:
                self.db.pop_transaction()

    def sql(self, query: str) -> str:
        """Rewrite ``?`` placeholders for databases that use ``%s``."""
        return query if self.is_sqlite else query.replace("?", "%s")

    def execute(self, query: str, params: tuple | list = ()) -> object:
        """Run raw SQL with ``?`` placeholders and return the cursor."""
        return self.db.execute_sql(self.sql(query), params)

    def close(self) -> None:
        """Close this thread's connection (and stop the checkpointer)."""
        self._closed.set()
        if not self.db.is_closed():
            self.db.close()
