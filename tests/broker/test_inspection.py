"""The queue inspector of every broker, on the real thing: a SQLite file, Redis, RabbitMQ, the stub broker.

Redis and RabbitMQ must answer on 127.0.0.1 (6379, and 5672 as guest/guest): without them these tests
skip, with CI=true they fail. Each test has its own Redis namespace and RabbitMQ queue names.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from support import need_service, wait_for

from quaero.broker import QueueInspector, SQLiteBroker, Unsupported, inspector_for
from quaero.broker.inspection import StubInspector
from quaero.broker.rabbitmq_inspector import RabbitmqInspector
from quaero.broker.redis_inspector import RedisInspector, letter_id
from quaero.broker.sqlite import SQLiteInspector

REDIS_URL = "redis://127.0.0.1:6379/14"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ALL = ["sqlite", "redis", "rabbitmq", "stub"]
FINDERS = ["sqlite", "redis"]


@dataclass
class Backend:
    kind: str
    broker: dramatiq.Broker
    queue: QueueInspector
    name: str  # the test's queue


def build(kind: str, tmp_path: Path, middleware: list[Middleware] | None = None) -> dramatiq.Broker:
    if kind == "sqlite":
        return SQLiteBroker(tmp_path / "queue.db", middleware=middleware)
    if kind == "redis":
        need_service("Redis", "127.0.0.1", 6379)
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=REDIS_URL, namespace=f"quaero-test-{uuid.uuid4().hex[:8]}", middleware=middleware)
    if kind == "rabbitmq":
        need_service("RabbitMQ", "127.0.0.1", 5672)
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=AMQP_URL, middleware=middleware)
    return StubBroker(middleware=middleware)


def clean_up(broker: dramatiq.Broker) -> None:
    """Remove what the test left on the server, then close the broker."""
    kind = type(broker).__name__
    if kind == "RedisBroker":
        keys = list(broker.client.scan_iter(match=f"{broker.namespace}:*", count=1000))
        if keys:
            broker.client.delete(*keys)
    elif kind == "RabbitmqBroker":
        import pika

        connection = pika.BlockingConnection(broker.parameters)
        try:
            channel = connection.channel()
            for name in broker.get_declared_queues():
                for queue_name in (name, f"{name}.DQ", f"{name}.XQ"):
                    channel.queue_delete(queue_name)
        finally:
            connection.close()
    broker.close()


@pytest.fixture
def backend_of(tmp_path: Path) -> Iterator:
    """Build a backend of a kind, with its inspector and a queue name of its own; clean up afterwards."""
    built: list[dramatiq.Broker] = []

    def make(kind: str, middleware: list[Middleware] | None = None) -> Backend:
        broker = build(kind, tmp_path, middleware)
        built.append(broker)
        return Backend(kind, broker, inspector_for(broker), f"inspect-{uuid.uuid4().hex[:8]}")

    yield make
    for broker in built:
        clean_up(broker)


@pytest.fixture(params=ALL)
def backend(request, backend_of) -> Backend:
    return backend_of(request.param)


@pytest.fixture(params=FINDERS)
def finder(request, backend_of) -> Backend:
    return backend_of(request.param)


def take(consumer: dramatiq.Consumer, timeout: float = 20.0) -> dramatiq.MessageProxy:
    """The next message a consumer hands out (its ``next`` gives None while it waits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = next(consumer)
        if message is not None:
            return message
    raise AssertionError("no message within the timeout")


# -- every backend --------------------------------------------------------------------------------------


def test_inspector_for_picks_the_inspector_of_each_broker(backend):
    expected = {"sqlite": SQLiteInspector, "redis": RedisInspector, "rabbitmq": RabbitmqInspector,
                "stub": StubInspector}[backend.kind]
    assert type(backend.queue) is expected and backend.queue.broker is backend.broker
    assert backend.queue.can_find_messages == (backend.kind in FINDERS)
    assert backend.queue.supports_dead_letters == (backend.kind in FINDERS)
    assert backend.queue.counts_in_flight == (backend.kind != "rabbitmq")


def test_inspector_for_refuses_a_broker_it_does_not_know():
    class Elsewhere(dramatiq.Broker):
        pass

    with pytest.raises(TypeError, match="no queue inspector for Elsewhere"):
        inspector_for(Elsewhere(middleware=[]))


def test_stats_follow_messages_from_ready_to_in_flight_to_done_or_dead(backend, start_worker):
    broker, queue, name = backend.broker, backend.queue, backend.name
    started, release = threading.Event(), threading.Event()

    def hold(n: int) -> None:
        started.set()
        release.wait(30)

    def fail() -> None:
        raise RuntimeError("fails on purpose")

    holder = dramatiq.actor(hold, broker=broker, queue_name=name, max_retries=0)
    failer = dramatiq.actor(fail, broker=broker, queue_name=name, max_retries=0)
    idle = None if backend.kind == "rabbitmq" else 0
    assert queue.stats()[name] == {"ready": 0, "delayed": 0, "in_flight": idle, "dead": 0}

    for n in range(3):
        holder.send(n)
    holder.send_with_options(args=(99,), delay=60_000)
    wait_for(lambda: queue.stats()[name] == {"ready": 3, "delayed": 1, "in_flight": idle, "dead": 0}, 10,
             what="three ready messages and one delayed")

    start_worker(broker, threads=1)
    assert started.wait(20)
    if backend.kind == "rabbitmq":  # it counts only what no consumer holds
        wait_for(lambda: queue.stats()[name]["ready"] < 3, 10, what="a message taken")
    else:
        wait_for(lambda: (s := queue.stats()[name])["in_flight"] >= 1 and s["ready"] + s["in_flight"] == 3, 10,
                 what="a message in flight")

    release.set()
    failer.send()
    # RabbitMQ's count of delayed messages leaves out the one a worker holds until its eta.
    delayed = 0 if backend.kind == "rabbitmq" else 1
    wait_for(lambda: queue.stats()[name] == {"ready": 0, "delayed": delayed, "in_flight": idle, "dead": 1}, 20,
             what="the held messages done and the failed one dead")


def test_enqueue_many_puts_every_message_on_the_queue(backend_of):
    class Count(Middleware):
        def __init__(self) -> None:
            self.before = self.after = 0

        def before_enqueue(self, broker, message, delay):
            self.before += 1

        def after_enqueue(self, broker, message, delay):
            self.after += 1

    for kind in ALL:
        counter = Count()
        backend = backend_of(kind, middleware=[counter])
        actor = dramatiq.actor(lambda n: None, actor_name="fan", broker=backend.broker, queue_name=backend.name)
        sent = backend.queue.enqueue_many([actor.message(n) for n in range(5)])
        assert [message.args for message in sent] == [(n,) for n in range(5)], kind
        assert (counter.before, counter.after) == (5, 5), kind
        wait_for(lambda backend=backend: backend.queue.stats()[backend.name]["ready"] == 5, 10,
                 what=f"five ready on {kind}")


# -- what only some backends can do ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rabbitmq", "stub"])
def test_backends_without_look_ups_say_so_and_refuse(backend_of, kind):
    backend = backend_of(kind)
    dramatiq.actor(lambda: None, actor_name="quiet", broker=backend.broker, queue_name=backend.name)
    # Declared but never used: RabbitMQ has not created the queues yet, and they count as empty.
    assert backend.queue.stats()[backend.name]["ready"] == 0
    for call in (lambda q: q.find_messages(["x"]), lambda q: q.has_message("x"), lambda q: q.dead_letters(),
                 lambda q: q.requeue_dead([1]), lambda q: q.delete_dead([1])):
        with pytest.raises(Unsupported):
            call(backend.queue)


def test_find_messages_sees_ready_delayed_in_flight_and_dead_ones(finder):
    broker, queue, name = finder.broker, finder.queue, finder.name
    actor = dramatiq.actor(lambda n: None, actor_name="found", broker=broker, queue_name=name, max_retries=0)
    doomed = actor.send(0)
    consumer = broker.consume(name, prefetch=1, timeout=100)
    message = take(consumer)
    assert message.message_id == doomed.message_id
    assert queue.find_messages([doomed.message_id, "no-such-id"]) == {doomed.message_id}  # in flight
    consumer.nack(message)
    consumer.close()

    ready = actor.send(1)
    delayed = actor.send_with_options(args=(2,), delay=60_000)
    live = {ready.message_id, delayed.message_id}
    wanted = [*live, doomed.message_id, "no-such-id"]
    wait_for(lambda: queue.find_messages(wanted) == live | {doomed.message_id}, 10, what="the dead one found")
    assert queue.find_messages(wanted, include_dead=False) == live
    assert queue.has_message(doomed.message_id) and not queue.has_message(doomed.message_id, include_dead=False)
    assert queue.has_message(delayed.message_id, include_dead=False)
    assert not queue.has_message("no-such-id")
    assert queue.find_messages([]) == set()


def test_a_dead_letter_is_listed_requeued_delivered_again_or_deleted(finder, start_worker):
    broker, queue, name = finder.broker, finder.queue, finder.name
    healthy = threading.Event()
    delivered: list[int] = []

    def fragile(n: int, *, tag: str) -> None:
        if not healthy.is_set():
            raise ValueError("broken")
        delivered.append(n)

    actor = dramatiq.actor(fragile, broker=broker, queue_name=name, max_retries=0)
    start_worker(broker)
    sent = {actor.send(n, tag="x").message_id: n for n in range(3)}
    wait_for(lambda: queue.stats()[name]["dead"] == 3, 20, what="three dead letters")
    broker.join(name, timeout=20_000)

    letters = queue.dead_letters()
    assert {letter["message_id"] for letter in letters} == set(sent)
    assert len({letter["id"] for letter in letters}) == 3
    assert [letter["dead_at"] for letter in letters] == sorted((letter["dead_at"] for letter in letters), reverse=True)
    for letter in letters:
        assert (letter["queue"], letter["actor_name"], letter["kwargs"]) == (name, "fragile", {"tag": "x"})
        assert letter["args"] == [sent[letter["message_id"]]] and letter["received"] == 1
        assert letter["enqueued_at"] <= letter["dead_at"]
    assert queue.dead_letters(limit=2) + queue.dead_letters(limit=2, offset=2) == letters
    assert queue.dead_letters(queue=name) == letters and queue.dead_letters(queue="elsewhere") == []

    first, second, third = letters
    healthy.set()
    assert queue.requeue_dead([first["id"]]) == 1
    assert queue.requeue_dead([first["id"]]) == 0  # no longer a dead letter
    wait_for(lambda: delivered == [sent[first["message_id"]]], 20, what="the requeued letter delivered")
    assert queue.delete_dead([second["id"], 12345]) == 1
    assert queue.delete_dead([second["id"]]) == 0
    assert [letter["id"] for letter in queue.dead_letters()] == [third["id"]]
    broker.join(name, timeout=20_000)
    time.sleep(0.3)
    assert delivered == [sent[first["message_id"]]]  # the deleted letter never runs
    assert queue.stats()[name] == {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 1}
    assert not queue.has_message(second["message_id"]) and queue.has_message(third["message_id"])


def test_redis_letter_ids_are_stable_integers_javascript_can_carry():
    ids = {letter_id(str(uuid.uuid4())) for _ in range(1000)}
    assert len(ids) == 1000 and all(0 <= value < 2**53 for value in ids)
    assert letter_id("abc") == letter_id(b"abc")
