"""Messages held by a process that was killed come back at once on the same host (SQLite and Redis brokers),
not when their lease lapses; other hosts' leases lapse as before; old queue files are migrated."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dramatiq
import pytest
from dramatiq.common import current_millis
from support import need_service

from quaero.broker import MessageStore, SQLiteBroker, inspector_for
from quaero.broker.store import NewMessage

ROOT = Path(__file__).resolve().parents[2]

# Claims two of the messages with a lease of a minute, says so, and waits to be killed.
HOLDER = """
    import sys, time
    from quaero.broker import MessageStore
    store = MessageStore(sys.argv[1], lease_ms=60_000)
    store.start_heartbeat()
    rows, _ = store.claim("q", 2)
    print(",".join(str(row[0]) for row in rows), flush=True)
    time.sleep(120)
"""


def holder(*args: object) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), *map(str, args)],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)


def put(store: MessageStore, count: int) -> None:
    now = current_millis()
    store.enqueue_many([NewMessage("q", f"m{n}", f"body {n}".encode(), now, now) for n in range(count)])


def test_a_killed_processes_messages_come_back_at_once_not_after_its_lease(tmp_path):
    store = MessageStore(tmp_path / "queue.db", lease_ms=60_000)
    try:
        put(store, 3)
        child, claimed = holder(store.path)
        try:
            assert len(claimed.split(",")) == 2
            assert store.reclaim_abandoned() == 0  # alive: its leases hold
            assert [row[1] for row in store.claim("q", 10)[0]] == [b"body 2"]
        finally:
            kill(child)
        # Before: nothing until the minute-long lease ran out.
        assert store.reclaim_abandoned() == 2
        assert sorted(row[1] for row in store.claim("q", 10)[0]) == [b"body 0", b"body 1"]
        conn = sqlite3.connect(store.path)
        try:
            # The dead process is forgotten; this one is named, with its host, pid and start time.
            [(pid, started)] = conn.execute("SELECT pid, started FROM owners").fetchall()
            assert pid == os.getpid() and started
        finally:
            conn.close()
    finally:
        store.close()


def test_another_hosts_leases_lapse_as_before_and_its_old_rows_are_forgotten(tmp_path):
    store = MessageStore(tmp_path / "queue.db", lease_ms=1000)
    try:
        put(store, 1)
        now = current_millis()
        conn = sqlite3.connect(store.path)
        with conn:
            conn.execute("UPDATE messages SET owner = 'far', visible_at = ?", (now + 60_000,))
            conn.execute("INSERT INTO owners VALUES ('far', 'another-host', 1, 'x:1', ?)", (now,))
            conn.execute("INSERT INTO owners VALUES ('old', 'another-host', 2, 'x:2', ?)", (now - 60_000,))
        assert store.reclaim_abandoned() == 0
        assert store.claim("q", 1)[0] == []  # still leased to the other host
        others = conn.execute("SELECT owner FROM owners WHERE owner <> ?", (store.owner,)).fetchall()
        assert others == [("far",)]
        conn.close()
    finally:
        store.close()


def test_a_queue_file_of_the_first_release_is_migrated_and_keeps_its_messages(tmp_path):
    path = tmp_path / "queue.db"
    conn = sqlite3.connect(path)
    with conn:  # the schema as the first release made it (user_version 0, no owners)
        conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, message_id TEXT NOT NULL, "
                     "body BLOB NOT NULL, visible_at INTEGER NOT NULL, received INTEGER NOT NULL DEFAULT 0, "
                     "enqueued_at INTEGER NOT NULL, owner TEXT)")
        conn.execute("INSERT INTO messages (queue, message_id, body, visible_at, enqueued_at) "
                     "VALUES ('q', 'm0', x'6f6c64', 0, 0)")
    store = MessageStore(path)
    try:
        assert [row[1] for row in store.claim("q", 5)[0]] == [b"old"]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM owners").fetchone()[0] == 1
    finally:
        store.close()
    with conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(Exception, match="schema version 99, newer than this release knows"):
        MessageStore(path)


def test_a_restarted_sqlite_worker_gets_the_killed_ones_messages_within_a_second(tmp_path):
    broker = SQLiteBroker(tmp_path / "queue.db", lease_ms=60_000)
    try:
        got: list[int] = []
        dramatiq.actor(lambda n: got.append(n), actor_name="job", broker=broker, queue_name="q", max_retries=0)
        store = broker.store
        for n in range(2):
            broker.enqueue(dramatiq.Message(queue_name="q", actor_name="job", args=(n,), kwargs={}, options={}))
        child, _ = holder(store.path)
        kill(child)
        started = time.monotonic()
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
        worker.start()  # its consumer's first claim reclaims what the dead process held
        try:
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sorted(got) == [0, 1] and time.monotonic() - started < 5
        finally:
            worker.stop(5000)
    finally:
        broker.close()


REDIS_HOLDER = """
    import sys, time
    from dramatiq.brokers.redis import RedisBroker
    from quaero.broker import inspector_for
    broker = RedisBroker(url=sys.argv[1], namespace=sys.argv[2])
    broker.declare_queue("q")
    inspector_for(broker)  # names this process's worker id
    consumer = broker.consume("q", prefetch=2, timeout=1000)
    held = [next(consumer) for _ in range(2)]
    print(",".join(m.message_id for m in held), flush=True)
    time.sleep(120)
"""


def test_a_killed_redis_workers_messages_come_back_at_once_not_after_the_heartbeat_timeout(tmp_path):
    need_service("Redis", "127.0.0.1", 6379)
    from dramatiq.brokers.redis import RedisBroker

    url, namespace = "redis://127.0.0.1:6379/13", f"quaero-reclaim-{os.getpid()}"
    broker = RedisBroker(url=url, namespace=namespace)
    broker.declare_queue("q")
    inspector = inspector_for(broker)
    try:
        sent = [broker.enqueue(dramatiq.Message(queue_name="q", actor_name="job", args=(n,), kwargs={}, options={}))
                for n in range(2)]
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(REDIS_HOLDER), url, namespace],
                                 stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert child.stdout is not None
        held = child.stdout.readline().strip().split(",")
        assert sorted(held) == sorted(m.message_id for m in sent)
        assert inspector.reclaim_abandoned() == 0
        kill(child)
        # Before: the messages stayed in the dead worker's acks set for its 60 s heartbeat timeout, then
        # until one command in a thousand ran the broker's maintenance.
        assert inspector.reclaim_abandoned() == 2
        consumer = broker.consume("q", prefetch=2, timeout=1000)
        got = [next(consumer), next(consumer)]
        assert sorted(m.message_id for m in got if m is not None) == sorted(held)
        assert inspector.reclaim_abandoned() == 0
    finally:
        broker.flush_all()
        broker.client.delete(f"{namespace}:__quaero_owners__", f"{namespace}:__heartbeats__")
        broker.close()
