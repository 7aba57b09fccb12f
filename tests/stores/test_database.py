"""The database's write transactions on both backends: a failed COMMIT is rolled back, never left open."""

from __future__ import annotations

import sqlite3
import time

import peewee as pw
import pytest


def test_a_commit_that_fails_is_rolled_back_and_the_next_write_works(stores):
    database = stores.database
    database.execute("CREATE TABLE owners_t (id INTEGER PRIMARY KEY)")
    # Checked at COMMIT, not at the INSERT: the way to make a commit fail on purpose on either backend.
    database.execute("CREATE TABLE pets_t (id INTEGER PRIMARY KEY, owner INTEGER "
                     "REFERENCES owners_t (id) DEFERRABLE INITIALLY DEFERRED)")
    ran = []
    with pytest.raises((pw.IntegrityError, sqlite3.IntegrityError)):  # the SQLite path runs its COMMIT raw
        with database.write():
            database.execute("INSERT INTO pets_t (id, owner) VALUES (1, 42)")
            database.after_commit(lambda: ran.append("after"))
    assert ran == []  # what was to follow the commit did not run
    if database.is_sqlite:
        # Before the fix the transaction stayed open here, and the next BEGIN failed.
        assert not database.db.connection().in_transaction
    with database.write():
        database.execute("INSERT INTO owners_t (id) VALUES (42)")
        database.execute("INSERT INTO pets_t (id, owner) VALUES (2, 42)")
    assert database.execute("SELECT id FROM pets_t").fetchall() == [(2,)]


def test_a_postgresql_schema_made_already_is_not_made_again(postgres_url):
    """A start finds the schema it would make recorded, and runs no DDL: even IF NOT EXISTS statements lock
    their tables, and a server starting beside workers that write deadlocked with them."""
    from quaero.stores.db import Database
    from quaero.stores.models import bind_models

    database = Database(postgres_url)
    try:
        bind_models(database.db)
        database.execute("DROP INDEX documents_tags")  # what a second start would make again, if it ran DDL
        database.db.commit()
        bind_models(database.db)
        assert database.execute("SELECT to_regclass('documents_tags')").fetchone()[0] is None
        with database.write():
            database.execute("UPDATE quaero_schema SET digest = 'an older release'")
        bind_models(database.db)  # another release's schema: made again
        assert database.execute("SELECT to_regclass('documents_tags')").fetchone()[0] == "documents_tags"
    finally:
        database.close()


def test_a_writer_that_never_pauses_does_not_grow_the_write_ahead_log_without_end(tmp_path, monkeypatch):
    from quaero.stores import db

    limit = 1024 * 1024
    monkeypatch.setitem(db.SQLITE_PRAGMAS, "journal_size_limit", limit)
    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 0.05)
    database = db.Database(f"sqlite:///{tmp_path / 'busy.db'}")
    wal = tmp_path / "busy.db-wal"
    try:
        database.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)")
        written, peak, row = 0, 0, b"x" * 50_000
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline or written < 60 * limit:  # back to back, as a bulk load writes
            with database.write():
                database.execute("INSERT INTO blobs (body) VALUES (?)", (row,))
                database.execute("DELETE FROM blobs WHERE id < (SELECT MAX(id) - 20 FROM blobs)")
            written += len(row)
            peak = max(peak, wal.stat().st_size)
        # Before, the log held every write (it never started over); now it starts over every few MB.
        assert peak < written / 4, (peak, written)
    finally:
        database.close()
