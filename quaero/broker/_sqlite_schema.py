"""Schema, connection set-up and SQL statements of the SQLite broker."""

from __future__ import annotations

import sqlite3
import time

from quaero.errors import ConfigError

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

# Version 1: the processes that claim, by their ``messages.owner`` stamp: host name, pid and start time, so
# that another process on the same host can tell at once that one is gone and give its messages back
# (``seen_at``, the last heartbeat in ms, lets rows of other hosts' processes be forgotten).
MIGRATIONS = {
    1: ("""
    CREATE TABLE IF NOT EXISTS owners (
        owner TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started TEXT NOT NULL,
        seen_at INTEGER NOT NULL
    )
    """,),
}
SCHEMA_VERSION = max(MIGRATIONS)

PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    # Fewer, larger checkpoints: a hot page rewritten by many commits is copied back once. Measured
    # with a 20k-message backlog, together with mmap reads, about 20 % off the cost of a claim.
    "PRAGMA wal_autocheckpoint = 10000",
    "PRAGMA journal_size_limit = 67108864",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA cache_size = -16384",
)

# A claim is one INSERT into a temporary view whose trigger deletes the acked rows, leases the batch
# and dead-letters what was received too often, then one aggregate SELECT of the leased rows. The
# sqlite3 module releases the GIL around every step (BEGIN, each statement, each returned row, COMMIT)
# and, with busy worker threads, each retake can wait long: two steps instead of twenty keep a claim
# short. A DML statement in autocommit mode takes the write lock as it starts, as BEGIN IMMEDIATE
# does, and the trigger runs inside that statement's transaction.
CLAIM_SETUP = (
    "CREATE TEMP VIEW IF NOT EXISTS claim_request AS SELECT NULL AS acks, NULL AS queue, NULL AS now, "
    "NULL AS until, NULL AS owner, NULL AS n, NULL AS max_receives, NULL AS dead_queue",
    """
    CREATE TEMP TRIGGER IF NOT EXISTS claim_request_run INSTEAD OF INSERT ON claim_request BEGIN
        DELETE FROM messages WHERE id IN (SELECT value FROM json_each(NEW.acks));
        UPDATE messages SET visible_at = NEW.until, received = received + 1, owner = NEW.owner
        WHERE id IN (SELECT id FROM messages WHERE queue = NEW.queue AND visible_at <= NEW.now
                     ORDER BY visible_at, id LIMIT NEW.n);
        UPDATE messages SET queue = NEW.dead_queue, owner = NULL, visible_at = NEW.now
        WHERE queue = NEW.queue AND visible_at = NEW.until AND owner = NEW.owner
          AND received > NEW.max_receives;
    END
    """,
)

CLAIM = "INSERT INTO claim_request VALUES (?, ?, ?, ?, ?, ?, ?, ?)"

# The rows of one claim share a lease deadline that the broker never hands out twice. One aggregate
# row rather than a row per message, for the GIL reason above.
CLAIMED = (
    "SELECT count(*), group_concat(id || ':' || received || ':' || hex(body), ',') FROM "
    "(SELECT id, received, body FROM messages WHERE queue = ? AND visible_at = ? AND owner = ? ORDER BY id)"
)

INSERT = (
    "INSERT INTO messages (queue, message_id, body, visible_at, received, enqueued_at) "
    "VALUES (?, ?, ?, ?, 0, ?)"
)

# Earliest visible_at of a queue: tells both "is anything ready" and "when is the next one due".
HEAD = "SELECT visible_at FROM messages WHERE queue = ? ORDER BY visible_at LIMIT 1"

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

PURGE = "DELETE FROM messages WHERE queue IN (SELECT value FROM json_each(?))"

ANY_OF_QUEUES = "SELECT 1 FROM messages WHERE queue IN (SELECT value FROM json_each(?)) LIMIT 1"

# A row is in flight while its lease runs; an expired lease counts as ready (or delayed) again.
STATS = "SELECT queue, owner IS NOT NULL AND visible_at > ? AS held, COUNT(*) FROM messages GROUP BY 1, 2"

FIND_ANY = "SELECT DISTINCT message_id FROM messages WHERE message_id IN (SELECT value FROM json_each(?))"
FIND_LIVE = FIND_ANY + " AND queue NOT LIKE '%.XQ'"

DEAD_PAGE = (
    "SELECT id, queue, message_id, body, enqueued_at, visible_at, received FROM messages "
    "WHERE {where} ORDER BY visible_at DESC, id DESC LIMIT ? OFFSET ?"
)

DEAD_BY_ID = (
    "SELECT id, queue, body FROM messages WHERE queue LIKE '%.XQ' AND id IN (SELECT value FROM json_each(?))"
)

RESURRECT = "UPDATE messages SET queue = ?, body = ?, visible_at = ?, received = 0, owner = NULL WHERE id = ?"

DELETE_DEAD = "DELETE FROM messages WHERE queue LIKE '%.XQ' AND id IN (SELECT value FROM json_each(?))"

# Held rows are exactly the owner's rows not visible yet: the (queue, visible_at) range limits the scan
# to them instead of the whole table, which would hold the write lock for long on a large backlog.
HEARTBEAT = "UPDATE messages SET visible_at = ? WHERE owner = ? AND queue = ? AND visible_at > ?"

OWNER_SEEN = (
    "INSERT INTO owners (owner, host, pid, started, seen_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at"
)
OWNERS = "SELECT owner, host, pid, started, seen_at FROM owners"
FORGET_OWNERS = "DELETE FROM owners WHERE owner IN (SELECT value FROM json_each(?))"
FORGET_IDLE_OWNER = (
    "DELETE FROM owners WHERE owner = ? AND NOT EXISTS (SELECT 1 FROM messages WHERE owner = ?)"
)

# The distinct queue names, one index seek each (a skip scan of messages_queue_visible).
QUEUES = """
WITH RECURSIVE queues(name) AS (
    SELECT (SELECT queue FROM messages ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT queue FROM messages WHERE queue > name ORDER BY queue LIMIT 1) FROM queues WHERE name IS NOT NULL
) SELECT name FROM queues WHERE name IS NOT NULL
"""

# The messages still held by owners that are gone, visible again now. The claim counted their delivery:
# a message that kills every process that takes it still ends in the dead letters.
RECLAIM = (
    "UPDATE messages SET visible_at = ?, owner = NULL "
    "WHERE queue = ? AND visible_at > ? AND owner IN (SELECT value FROM json_each(?))"
)


def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open a connection in autocommit mode with the broker's pragmas and make sure the schema exists."""
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
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
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.execute("BEGIN IMMEDIATE")
    try:
        migrate(conn, path)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
        raise
    for statement in CLAIM_SETUP:
        conn.execute(statement)
    return conn


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Inside a write: create the tables, or bring those of an older release up to :data:`SCHEMA_VERSION`.

    The version lives in ``PRAGMA user_version`` (0: the first release, which did not set it).

    Raises:
      ConfigError: for a file that a newer release has migrated further.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ConfigError(f"queue database {path} has schema version {version}, newer than this release knows "
                          f"({SCHEMA_VERSION}); run the newer release, or start from a new queue file")
    for statement in SCHEMA:
        conn.execute(statement)
    for number in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[number]:
            conn.execute(statement)
    if version != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
