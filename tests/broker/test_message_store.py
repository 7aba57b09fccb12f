"""The message store's public methods on a real file, read back through a connection of our own."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from dramatiq.common import current_millis

from quaero.broker import MessageStore
from quaero.broker.store import NewMessage


@pytest.fixture
def store(tmp_path: Path):
    store = MessageStore(tmp_path / "queue.db", lease_ms=1000, max_receives=2)
    yield store
    store.close()


def table(store: MessageStore) -> list[tuple]:
    """``(id, queue, received, owner is set)`` of every row, as another process sees them."""
    conn = sqlite3.connect(store.path, timeout=10)
    try:
        return conn.execute("SELECT id, queue, received, owner IS NOT NULL FROM messages ORDER BY id").fetchall()
    finally:
        conn.close()


def expire_leases(store: MessageStore) -> None:
    conn = sqlite3.connect(store.path, timeout=10)
    try:
        with conn:
            conn.execute("UPDATE messages SET visible_at = 0")
    finally:
        conn.close()


def put(store: MessageStore, count: int, queue: str = "q", delay: int = 0) -> None:
    now = current_millis()
    store.enqueue_many([NewMessage(queue, f"m{n}", f"body {n}".encode(), now + delay, now) for n in range(count)])


def test_a_claim_leases_in_order_and_writes_the_acks_waiting_before_it(store):
    put(store, 3)
    rows, more = store.claim("q", 2)
    assert [(body, received) for _, body, received in rows] == [(b"body 0", 1), (b"body 1", 1)] and more
    first, second = (row_id for row_id, _, _ in rows)
    store.ack(first)
    assert store.has_pending and len(table(store)) == 3  # not written yet: it waits for the next claim
    rows, more = store.claim("q", 2)
    assert [body for _, body, _ in rows] == [b"body 2"] and not more
    assert not store.has_pending and [row[0] for row in table(store)] == [second, rows[0][0]]


def test_nack_dead_letters_and_release_gives_back_without_counting(store):
    put(store, 2)
    (one, _, _), (two, _, _) = store.claim("q", 2)[0]
    store.nack(one, "q.XQ")
    store.release("q", [two])
    store.write_acks()
    assert table(store) == [(one, "q.XQ", 1, False), (two, "q", 0, False)]
    assert store.stats(["q", "idle"]) == {"q": {"ready": 1, "delayed": 0, "in_flight": 0, "dead": 1},
                                         "idle": {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0}}


def test_a_message_claimed_too_often_is_dead_lettered_instead(store, tmp_path):
    put(store, 1)
    other = MessageStore(tmp_path / "queue.db", lease_ms=1000, max_receives=2)  # another process's claims
    try:
        for _ in range(2):
            assert len(other.claim("q", 1)[0]) == 1
            expire_leases(store)  # the claimer died: its lease runs out
        assert store.claim("q", 1) == ([], False)
    finally:
        other.close()
    [(_, queue, received, owned)] = table(store)
    assert (queue, received, owned) == ("q.XQ", 3, False)


def test_leases_are_extended_only_for_this_process(store, tmp_path):
    put(store, 2)
    other = MessageStore(tmp_path / "queue.db", lease_ms=1000)
    try:
        [(mine, _, _)] = store.claim("q", 1)[0]
        [(theirs, _, _)] = other.claim("q", 1)[0]
        before = dict(_visible(store))
        time.sleep(0.05)
        store.extend_leases()
        after = dict(_visible(store))
        assert after[mine] > before[mine] and after[theirs] == before[theirs]
    finally:
        other.close()


def test_delayed_messages_wait_and_the_head_tells_when(store):
    put(store, 1, queue="q.DQ", delay=60_000)
    due = store.next_visible_at("q.DQ")
    assert due is not None and due > current_millis() + 50_000
    assert store.claim("q.DQ", 5) == ([], False)
    assert store.next_visible_at("q") is None
    assert store.stats()["q"]["delayed"] == 1


def test_purge_is_empty_and_wake_ups(store):
    woken: list[str] = []
    store.subscribe("q", lambda: woken.append("q"))
    put(store, 2)
    put(store, 1, queue="other")
    assert woken == ["q"] and not store.is_empty(["q"])
    store.purge(["q", "q.DQ", "q.XQ"])
    assert store.is_empty(["q", "q.DQ"]) and not store.is_empty(["other"])


def test_find_messages_and_dead_letters(store):
    put(store, 3)
    rows = store.claim("q", 3)[0]
    store.nack(rows[0][0], "q.XQ")
    store.write_acks()
    assert store.find_messages(["m0", "m1", "nope"]) == {"m0", "m1"}
    assert store.find_messages(["m0", "m1"], include_dead=False) == {"m1"}
    [letter] = store.dead_letters()
    # The bodies here are not Dramatiq messages: listed all the same, without what a body would say.
    assert (letter["id"], letter["queue"], letter["message_id"], letter["actor_name"]) == (rows[0][0], "q", "m0", None)
    assert store.requeue_dead([letter["id"]]) == 1 and store.dead_letters() == []
    assert store.delete_dead([letter["id"]]) == 0  # back on its queue: no longer a dead letter


def _visible(store: MessageStore) -> list[tuple[int, int]]:
    conn = sqlite3.connect(store.path, timeout=10)
    try:
        return conn.execute("SELECT id, visible_at FROM messages").fetchall()
    finally:
        conn.close()
