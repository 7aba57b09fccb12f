"""Schema, connection set-up and SQL statements of the SQLite broker."""

from __future__ import annotations

import os
import sqlite3
import time

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body BLOB NOT NULL,
        visible_at INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 0,
        enqueued_at INTEGER NOT NULL,
        owner TEXT
    )
    """,
    # The implicit rowid makes this index (queue, visible_at, id): the claim's ORDER BY is free.
    "CREATE INDEX IF NOT EXISTS messages_queue_visible ON messages (queue, visible_at)",
    "CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id)",
)

INSERT = (
    "INSERT INTO messages (queue, message_id, body, visible_at, received, enqueued_at) "
    "VALUES (?, ?, ?, ?, 0, ?)"
)

# Earliest visible_at of a queue: tells both "is anything ready" and "when is the next one due".
HEAD = "SELECT visible_at FROM messages WHERE queue = ? ORDER BY visible_at LIMIT 1"

# The claim is an UPDATE and then one aggregate SELECT rather than UPDATE ... RETURNING: the sqlite3
# module releases and retakes the GIL at every step, once per returned row, and with busy worker
# threads each retake can wait long. The claimed rows are found by their lease deadline, which the
# broker keeps unique per claim.
CLAIM = (
    "UPDATE messages SET visible_at = ?, received = received + 1, owner = ? "
    "WHERE id IN (SELECT id FROM messages WHERE queue = ? AND visible_at <= ? "
    "ORDER BY visible_at, id LIMIT ?)"
)

CLAIMED = (
    "SELECT group_concat(id || ':' || received || ':' || hex(body), ',') FROM "
    "(SELECT id, received, body FROM messages WHERE queue = ? AND visible_at = ? AND owner = ? ORDER BY id)"
)

# Id lists travel as one JSON parameter so that each statement is prepared once, whatever the count.
ACK = "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))"

DEAD_LETTER = (
    "UPDATE messages SET queue = ?, owner = NULL, visible_at = ? "
    "WHERE id IN (SELECT value FROM json_each(?))"
)

REQUEUE = (
    "UPDATE messages SET visible_at = ?, owner = NULL, received = MAX(received - 1, 0) "
    "WHERE owner = ? AND id IN (SELECT value FROM json_each(?))"
)

# Held rows are exactly the owner's rows not visible yet; the (queue, visible_at) range keeps the scan
# to those instead of the whole table.
HEARTBEAT = "UPDATE messages SET visible_at = ? WHERE owner = ? AND queue = ? AND visible_at > ?"


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open a connection in autocommit mode with the broker's pragmas and make sure the schema exists."""
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        # Switching to WAL needs a moment without other writers; another process creating the
        # same file at the same time can make it fail once, so retry within the busy timeout.
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    conn.execute("PRAGMA synchronous = NORMAL")
    if os.environ.get("TUNE"):
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA mmap_size = 268435456")
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA:
            conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return conn
