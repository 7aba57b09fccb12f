"""The embedded SQLite broker, on real files, with real Dramatiq workers and real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.middleware import Middleware

from quaero.broker import SQLiteBroker, inspector_for, make_broker

ROOT = Path(__file__).resolve().parents[2]
JOIN_MS = 30_000


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def make(db_path: Path):
    """Build brokers on the test's file and close them afterwards."""
    brokers: list[SQLiteBroker] = []

    def build(**options) -> SQLiteBroker:
        broker = SQLiteBroker(db_path, **options)
        brokers.append(broker)
        return broker

    yield build
    for broker in brokers:
        broker.close()


@pytest.fixture
def broker(make) -> SQLiteBroker:
    return make()


def rows(path: Path, where: str = "1", params: tuple = ()) -> list[sqlite3.Row]:
    """Read the broker's table from a connection of our own, as another process would."""
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM messages WHERE {where} ORDER BY id", params).fetchall()
    finally:
        conn.close()


def execute(path: Path, statement: str, params: tuple = ()) -> None:
    """Change the broker's table from a connection of our own."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def spawn(path: Path, *args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(path), *map(str, args)], env=env, cwd=ROOT)


# -- delivery -----------------------------------------------------------------------------------------


def test_round_trip_with_a_real_worker(broker, start_worker, db_path):
    seen: list[int] = []
    lock = threading.Lock()

    def collect(n: int) -> None:
        with lock:
            seen.append(n)

    actor = dramatiq.actor(collect, broker=broker, queue_name="round")
    start_worker(broker)
    for n in range(50):
        actor.send(n)
    broker.join("round", timeout=JOIN_MS)
    assert sorted(seen) == list(range(50))
    assert rows(db_path) == []


def test_acks_are_written_by_an_idle_consumer_without_join(broker, start_worker, db_path):
    done = threading.Event()
    actor = dramatiq.actor(lambda: done.set(), actor_name="once", broker=broker, queue_name="idle")
    start_worker(broker)
    actor.send()
    assert done.wait(20)
    assert wait_for(lambda: rows(db_path) == [], timeout=5)


def test_enqueue_many_is_one_batch_with_middleware_signals_per_message(make, db_path):
    class Count(Middleware):
        def __init__(self) -> None:
            self.before = self.after = 0

        def before_enqueue(self, broker, message, delay):
            self.before += 1

        def after_enqueue(self, broker, message, delay):
            self.after += 1

    counter = Count()
    broker = make(middleware=[counter])
    actor = dramatiq.actor(lambda n: None, actor_name="fan", broker=broker, queue_name="fan")
    sent = broker.enqueue_many(actor.message(n) for n in range(1000))
    assert len(sent) == 1000
    assert (counter.before, counter.after) == (1000, 1000)
    assert inspector_for(broker).stats()["fan"] == {"ready": 1000, "delayed": 0, "in_flight": 0, "dead": 0}
    assert inspector_for(broker).has_message(sent[0].message_id)
    assert not inspector_for(broker).has_message("no-such-id")


def test_consuming_an_undeclared_queue_fails(broker):
    with pytest.raises(QueueNotFound):
        broker.consume("nowhere")


def test_delayed_message_waits_in_the_table_until_its_eta(broker, start_worker, db_path):
    ran_at: list[int] = []
    actor = dramatiq.actor(lambda: ran_at.append(int(time.time() * 1000)), actor_name="later",
                           broker=broker, queue_name="delayed")
    start_worker(broker)
    message = actor.send_with_options(delay=1500)
    eta = message.options["eta"]
    assert message.queue_name == "delayed.DQ"

    time.sleep(0.7)
    assert ran_at == []
    # Nobody holds it: it waits in the table, not in a worker's memory.
    [row] = rows(db_path)
    assert (row["queue"], row["visible_at"], row["owner"], row["received"]) == ("delayed.DQ", eta, None, 0)
    assert inspector_for(broker).stats()["delayed"] == {"ready": 0, "delayed": 1, "in_flight": 0, "dead": 0}

    broker.join("delayed", timeout=JOIN_MS)
    assert len(ran_at) == 1 and ran_at[0] >= eta


def test_retries_with_backoff_end_processed(broker, start_worker, db_path):
    calls: list[float] = []

    def flaky() -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("not yet")

    actor = dramatiq.actor(flaky, broker=broker, queue_name="retry", max_retries=5, min_backoff=100,
                           max_backoff=200)
    start_worker(broker)
    actor.send()
    broker.join("retry", timeout=JOIN_MS)
    assert len(calls) == 3
    assert all(later - earlier >= 0.09 for earlier, later in zip(calls, calls[1:]))
    assert inspector_for(broker).dead_letters() == [] and rows(db_path) == []


def test_failed_message_is_dead_lettered_listed_and_requeued(broker, start_worker):
    healthy = threading.Event()
    done = threading.Event()

    def fragile(n: int, *, tag: str) -> None:
        if not healthy.is_set():
            raise ValueError("broken")
        done.set()

    actor = dramatiq.actor(fragile, broker=broker, queue_name="fragile", max_retries=0)
    start_worker(broker)
    sent = actor.send(7, tag="x")
    assert wait_for(lambda: inspector_for(broker).stats()["fragile"]["dead"] == 1)
    broker.join("fragile", timeout=JOIN_MS)

    [letter] = inspector_for(broker).dead_letters()
    assert letter["queue"] == "fragile" and letter["message_id"] == sent.message_id
    assert (letter["actor_name"], letter["args"], letter["kwargs"]) == ("fragile", [7], {"tag": "x"})
    assert letter["received"] == 1 and letter["enqueued_at"] <= letter["dead_at"]
    assert inspector_for(broker).dead_letters(queue="fragile") == [letter]
    assert inspector_for(broker).dead_letters(queue="other") == []
    assert inspector_for(broker).has_message(sent.message_id, include_dead=True)
    assert not inspector_for(broker).has_message(sent.message_id, include_dead=False)

    healthy.set()
    assert inspector_for(broker).requeue_dead([letter["id"]]) == 1
    assert done.wait(20)
    broker.join("fragile", timeout=JOIN_MS)
    assert inspector_for(broker).dead_letters() == []
    assert inspector_for(broker).stats()["fragile"] == {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0}


def test_delete_dead_only_touches_dead_letters(broker, db_path):
    actor = dramatiq.actor(lambda: None, actor_name="d", broker=broker, queue_name="dl")
    actor.send()
    actor.send()
    first, second = (row["id"] for row in rows(db_path))
    execute(db_path, "UPDATE messages SET queue = 'dl.XQ' WHERE id = ?", (first,))
    assert inspector_for(broker).delete_dead([first, second]) == 1
    assert [row["id"] for row in rows(db_path)] == [second]


# -- queue management ---------------------------------------------------------------------------------


def test_flush_flush_all_and_join(broker, db_path):
    one = dramatiq.actor(lambda: None, actor_name="one", broker=broker, queue_name="one")
    two = dramatiq.actor(lambda: None, actor_name="two", broker=broker, queue_name="two")
    for _ in range(3):
        one.send()
        two.send_with_options(delay=60_000)
    two.send()

    with pytest.raises(QueueJoinTimeout):
        broker.join("one", timeout=200)
    broker.flush("one")
    broker.join("one", timeout=1000)
    assert {row["queue"] for row in rows(db_path)} == {"two", "two.DQ"}

    with pytest.raises(QueueJoinTimeout):
        broker.join("two", timeout=200)
    broker.flush_all()
    broker.join("two", timeout=1000)
    assert rows(db_path) == []
    assert broker.get_declared_queues() == {"one", "two"}
    assert broker.get_declared_delay_queues() == {"one.DQ", "two.DQ"}


def test_worker_stop_requeues_prefetched_messages(broker, start_worker, db_path):
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def slow(n: int) -> None:
        ran.append(n)
        started.set()
        release.wait(20)

    actor = dramatiq.actor(slow, broker=broker, queue_name="slow", max_retries=0)
    for n in range(5):
        actor.send(n)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    assert started.wait(20)
    # One message runs, the prefetch holds one more; the stop must hand that one back.
    assert wait_for(lambda: len(rows(db_path, "owner IS NOT NULL")) == 2)
    stopper = threading.Thread(target=worker.stop, args=(10_000,))
    stopper.start()
    time.sleep(0.2)
    release.set()
    stopper.join(20)
    assert not stopper.is_alive()

    assert ran == [0]
    left = rows(db_path)
    assert [row["received"] for row in left] == [0, 0, 0, 0]
    assert all(row["owner"] is None and row["visible_at"] <= time.time() * 1000 for row in left)

    start_worker(broker)
    broker.join("slow", timeout=JOIN_MS)
    assert sorted(ran) == [0, 1, 2, 3, 4]


def test_slow_messages_are_leased_no_further_than_the_prefetch(broker, start_worker, db_path):
    actor = dramatiq.actor(lambda: time.sleep(0.2), actor_name="slow2", broker=broker, queue_name="slow2")
    broker.enqueue_many(actor.message() for _ in range(20))
    start_worker(broker, threads=2)  # Dramatiq's prefetch: 4
    held = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        held.append(len(rows(db_path, "owner IS NOT NULL AND visible_at > ?", (time.time() * 1000,))))
        time.sleep(0.05)
    assert max(held) == 4
    broker.join("slow2", timeout=JOIN_MS)


def test_heartbeat_keeps_a_long_message_leased(make, start_worker, db_path):
    broker = make(lease_ms=1000)
    calls: list[int] = []

    def long_job() -> None:
        calls.append(1)
        time.sleep(3.5)

    actor = dramatiq.actor(long_job, broker=broker, queue_name="long", max_retries=0)
    start_worker(broker)
    actor.send()
    assert wait_for(lambda: calls == [1])
    time.sleep(2.2)  # more than two leases
    [row] = rows(db_path)
    assert row["owner"] == broker.owner and row["visible_at"] > time.time() * 1000
    assert inspector_for(broker).stats()["long"]["in_flight"] == 1
    broker.join("long", timeout=JOIN_MS)
    assert calls == [1]


# -- several processes ----------------------------------------------------------------------------------

CONSUMER = """
    import sys, threading, time
    from pathlib import Path
    import dramatiq
    from quaero.broker import SQLiteBroker

    db, out, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    broker = SQLiteBroker(db)
    done, lock = [], threading.Lock()

    def work(n):
        time.sleep(0.005)
        with lock:
            done.append(n)

    dramatiq.actor(work, broker=broker, queue_name="shared", max_retries=0)
    out.with_suffix(".ready").touch()
    while not go.exists():
        time.sleep(0.01)
    worker = dramatiq.Worker(broker, worker_threads=8, worker_timeout=100)
    worker.start()
    broker.join("shared", timeout=60000)
    worker.stop(10000)
    broker.close()
    out.write_text("\\n".join(map(str, done)))
"""


def test_two_processes_share_one_queue_and_process_each_message_once(broker, tmp_path, db_path):
    actor = dramatiq.actor(lambda n: None, actor_name="work", broker=broker, queue_name="shared")
    broker.enqueue_many(actor.message(n) for n in range(2000))
    path = script(tmp_path, "consumer.py", CONSUMER)
    go = tmp_path / "go"
    outs = [tmp_path / "a.out", tmp_path / "b.out"]
    children = [spawn(path, db_path, out, go) for out in outs]
    try:
        assert wait_for(lambda: all(out.with_suffix(".ready").exists() for out in outs), timeout=60)
        go.touch()
        for child in children:
            assert child.wait(90) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    shares = [[int(n) for n in out.read_text().split()] for out in outs]
    assert all(shares), f"one process got nothing: {[len(share) for share in shares]}"
    processed = shares[0] + shares[1]
    assert len(processed) == 2000 and set(processed) == set(range(2000))
    assert rows(db_path) == []


VICTIM = """
    import sys, time
    from pathlib import Path
    import dramatiq
    from quaero.broker import SQLiteBroker

    broker = SQLiteBroker(sys.argv[1], lease_ms=1000)
    started = Path(sys.argv[2])

    def victim(n):
        started.write_text(broker.owner)
        time.sleep(120)

    dramatiq.actor(victim, broker=broker, queue_name="crash", max_retries=0)
    dramatiq.Worker(broker, worker_threads=2, worker_timeout=100).start()
    time.sleep(120)
"""


def test_killed_consumer_lease_expires_and_another_consumer_gets_the_message(make, start_worker, tmp_path, db_path):
    broker = make(lease_ms=1000)
    sent = broker.enqueue(dramatiq.Message(queue_name="crash", actor_name="victim", args=(42,), kwargs={},
                                           options={}))
    started = tmp_path / "started"
    child = spawn(script(tmp_path, "victim.py", VICTIM), db_path, started)
    try:
        assert wait_for(lambda: started.exists() and started.read_text(), timeout=60)
        child_owner = started.read_text()
        time.sleep(1.2)  # past one lease: only the child's heartbeat keeps it
        [row] = rows(db_path)
        assert row["owner"] == child_owner and row["visible_at"] > time.time() * 1000
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()

    killed_at = time.monotonic()
    got: list[tuple[int, str, float]] = []
    done = threading.Event()

    def victim(n: int) -> None:
        got.append((n, dramatiq.middleware.CurrentMessage.get_current_message(), time.monotonic()))
        done.set()

    broker.add_middleware(dramatiq.middleware.CurrentMessage())
    dramatiq.actor(victim, broker=broker, queue_name="crash", max_retries=0)
    start_worker(broker)
    assert done.wait(30)
    [(n, message, at)] = got
    assert n == 42 and message.message_id == sent.message_id and message.received == 2
    assert at - killed_at < 10
    broker.join("crash", timeout=JOIN_MS)


POISON = """
    import os, signal, sys
    import dramatiq
    from quaero.broker import SQLiteBroker

    broker = SQLiteBroker(sys.argv[1], lease_ms=500, max_receives=2)
    dramatiq.actor(lambda: os.kill(os.getpid(), signal.SIGKILL), actor_name="poison",
                   broker=broker, queue_name="poison", max_retries=0)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    broker.join("poison", timeout=30000)
    worker.stop(10000)
"""


def test_message_received_too_often_is_dead_lettered(broker, tmp_path, db_path):
    broker.enqueue(dramatiq.Message(queue_name="poison", actor_name="poison", args=(), kwargs={}, options={}))
    path = script(tmp_path, "poison.py", POISON)
    codes = []
    for _ in range(3):
        child = spawn(path, db_path)
        try:
            codes.append(child.wait(60))
        finally:
            if child.poll() is None:
                child.kill()
    # Killed on the first two deliveries; the third claim moves it to the dead letters undelivered.
    assert codes == [-signal.SIGKILL, -signal.SIGKILL, 0]
    [row] = rows(db_path)
    assert (row["queue"], row["received"], row["owner"]) == ("poison.XQ", 3, None)
    assert [letter["actor_name"] for letter in inspector_for(broker).dead_letters("poison")] == ["poison"]


def test_connection_is_reopened_in_a_forked_child(broker, db_path):
    actor = dramatiq.actor(lambda n: None, actor_name="f", broker=broker, queue_name="fork")
    actor.send(1)
    parent_conn, parent_owner = broker.store.connection(), broker.owner
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            actor.send(2)
            code = 0 if broker.store.connection() is not parent_conn and broker.owner != parent_owner else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    actor.send(3)
    assert broker.store.connection() is parent_conn
    assert len(rows(db_path)) == 3 and inspector_for(broker).stats()["fork"]["ready"] == 3


# -- make_broker --------------------------------------------------------------------------------------


def test_make_broker_picks_the_broker_from_the_url(tmp_path, monkeypatch):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

    monkeypatch.chdir(tmp_path)
    relative = make_broker("sqlite:///data/queue.db", lease_ms=5000)
    absolute = make_broker(f"sqlite:///{tmp_path / 'abs.db'}")
    try:
        assert isinstance(relative, SQLiteBroker) and relative.lease_ms == 5000
        assert (tmp_path / "data" / "queue.db").exists()
        assert absolute.path == str(tmp_path / "abs.db") and (tmp_path / "abs.db").exists()
    finally:
        relative.close()
        absolute.close()
    assert isinstance(make_broker("redis://127.0.0.1:6379/0"), RedisBroker)
    assert isinstance(make_broker("amqp://guest:guest@127.0.0.1:5672/"), RabbitmqBroker)
    assert isinstance(make_broker("stub://"), StubBroker)


@pytest.mark.parametrize("url", ["ftp://host/queue", "queue.db", "sqlite://", "sqlite:///"])
def test_make_broker_rejects_other_urls(url):
    with pytest.raises(ValueError) as error:
        make_broker(url)
    message = str(error.value)
    assert url in message and "sqlite:///" in message
    if not url.startswith("sqlite"):
        assert all(scheme in message for scheme in ("redis://", "amqp://", "stub://"))
