"""Database factory: one peewee database per runtime, SQLite by default, PostgreSQL when scaled out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import peewee as pw
from playhouse.db_url import connect

from quaero.api.database import Cursor
from quaero.errors import ConfigError
from quaero.stores.writerlock import WriterLock

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
    # After a checkpoint lets the WAL start over, cut the file back to 64 MB: a burst of writes (a big
    # crawl, a bulk delete) must not leave hundreds of megabytes of WAL behind for good.
    "journal_size_limit": 64 * 1024 * 1024,
    # Reads through the page cache shared by every process instead of copying each page in: searches that
    # score tens of thousands of index rows run faster and steadier under load.
    "mmap_size": 256 * 1024 * 1024,
}
CHECKPOINT_EVERY = 0.5  # seconds
#: The PostgreSQL advisory lock of every start-up DDL (bind_models takes it too): processes that start at
#: once (``quaero serve`` and its workers) would otherwise race on CREATE ... IF NOT EXISTS, which is not
#: safe against a concurrent CREATE of the same name there.
SCHEMA_LOCK = 20261128


class DBCursor(Cursor, Protocol):
    """The DB-API cursor :meth:`Database.execute` returns: the plugin API's :class:`Cursor` and its columns."""

    description: Sequence[Any] | None


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
                raise ConfigError(f"database URL {url!r}: give a file path, e.g. sqlite:///data/quaero.stores.db")
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
        self._write_lock = WriterLock(path + ".lock") if self.is_sqlite else None
        self._local = threading.local()
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
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            while not self._closed.wait(CHECKPOINT_EVERY):
                try:
                    frames = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
                    # A write starts the WAL over only if, when it began, every frame had been copied; a
                    # writer that never pauses (a bulk load) always begins with its last commit's frames
                    # not copied yet, and the WAL grew to 9.4 GB that way. Past the size limit, writers
                    # wait while the checkpoint copies what they added since the round above (a fraction
                    # of a second's writes): the next write then starts the WAL over.
                    if frames * page_size > SQLITE_PRAGMAS["journal_size_limit"]:
                        assert self._write_lock is not None
                        with self._write_lock:
                            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or the file went away; the next round tries again
        finally:
            connection.close()

    @contextmanager
    def write(self) -> Iterator[pw.Database]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), serialised within the process.

        Nested writes become savepoints. Work registered with :meth:`after_commit` inside it runs once the
        outermost write has committed, and not at all when the block that registered it rolled back.
        """
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            local.after = []
        mark = len(local.after)
        local.depth = depth + 1
        try:
            with self._transaction():
                yield self.db
        except BaseException:
            del local.after[mark:]  # this block's work was rolled back: so is what was to follow it
            raise
        finally:
            local.depth = depth
        if depth == 0:
            callbacks, local.after = local.after, []
            for callback in callbacks:
                callback()

    @contextmanager
    def schema(self) -> Iterator[pw.Database]:
        """A write transaction for creating tables and indexes, one process at a time on PostgreSQL too."""
        with self.write() as db:
            if self.is_postgres:
                self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            yield db

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current write transaction commits (at once outside of one)."""
        if getattr(self._local, "depth", 0):
            self._local.after.append(callback)
        else:
            callback()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._write_lock is None:
            with self.db.atomic():
                yield
            return
        with self._write_lock:
            if self.db.in_transaction():  # nested: peewee makes it a savepoint
                with self.db.atomic():
                    yield
                return
            # The outermost write is a plain BEGIN IMMEDIATE / COMMIT: it runs twice per job.
            connection = self.db.connection()
            connection.execute("BEGIN IMMEDIATE")
            self.db.push_transaction(_Marker)
            try:
                yield
                # A COMMIT can fail too (a deferred constraint, a full disk, an I/O error): SQLite then
                # leaves the transaction open, and every later BEGIN on this connection would fail.
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            finally:
                self.db.pop_transaction()

    def write_one(self, query: str, params: tuple | list = ()) -> tuple | None:
        """Run one writing statement on its own (atomic by itself) and return its first row, if any.

        Inside :meth:`write` it joins that transaction; otherwise it is its own, without the extra
        BEGIN and COMMIT round trips.
        """
        if self._write_lock is None or self.db.in_transaction():
            with self.write():
                cursor = self.execute(query, params)
                rows = cursor.fetchall() if cursor.description else []
        else:
            with self._write_lock:
                # fetchall, not fetchone: the statement must run to its end to commit.
                rows = self.db.connection().execute(query, params).fetchall()
        return rows[0] if rows else None

    def sql(self, query: str) -> str:
        """Rewrite ``?`` placeholders for databases that use ``%s``."""
        return query if self.is_sqlite else query.replace("?", "%s")

    def execute(self, query: str, params: tuple | list = ()) -> DBCursor:
        """Run raw SQL with ``?`` placeholders and return the cursor."""
        return self.db.execute_sql(self.sql(query), params)

    def close(self) -> None:
        """Close this thread's connection (and stop the checkpointer)."""
        self._closed.set()
        if not self.db.is_closed():
            self.db.close()
