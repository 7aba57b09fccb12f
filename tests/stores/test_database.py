"""The database's write transactions on both backends: a failed COMMIT is rolled back, never left open."""

from __future__ import annotations

import sqlite3

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
