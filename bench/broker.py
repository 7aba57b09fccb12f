"""Throughput of a no-op actor on the embedded SQLite broker, next to Dramatiq's stub and Redis brokers.

For each case the messages are enqueued first (not timed); then worker processes (spawned, each one
``dramatiq.Worker`` with 8 threads) start together and the clock runs until every message has been
processed and acknowledged: the actor calls counted, the SQLite table empty, the Redis queue drained.

    python bench/broker.py [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUEUE = "bench"
ACTOR = "bench_noop"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _make_broker(kind: str, target: str):
    if kind == "sqlite":
        from quaero.broker import SQLiteBroker

        return SQLiteBroker(target)
    if kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=REDIS_URL, namespace=target)
    from dramatiq.brokers.stub import StubBroker

    return StubBroker()


def _declare_actor(broker, on_call=None):
    import dramatiq

    def bench_noop(i: int) -> None:
        if on_call is not None:
            on_call()

    return dramatiq.actor(bench_noop, actor_name=ACTOR, queue_name=QUEUE, max_retries=0, broker=broker)


def _consumer_process(kind, target, threads, counts, index, ready, start, stop, messages) -> None:
    """One worker process: count actor calls into ``counts[index]`` from ``start`` until ``stop``."""
    import dramatiq

    broker = _make_broker(kind, target)
    dramatiq.set_broker(broker)
    lock = threading.Lock()
    done = [0]

    def on_call() -> None:
        with lock:
            done[0] += 1

    actor = _declare_actor(broker, on_call)
    if kind == "stub":
        for i in range(messages):
            actor.send(i)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    ready.set()
    start.wait()
    worker.start()
    # Reporting from a side loop keeps a cross-process lock off the actor's path.
    while not stop.is_set():
        counts[index] = done[0]
        time.sleep(0.005)
    counts[index] = done[0]
    worker.stop(5000)
    broker.close()


def _run(kind: str, target: str, processes: int, threads: int, messages: int, drained) -> float:
    ctx = mp.get_context("spawn")
    counts = ctx.Array("q", processes, lock=False)
    start, stop = ctx.Event(), ctx.Event()
    readies, children = [], []
    for index in range(processes):
        ready = ctx.Event()
        child = ctx.Process(
            target=_consumer_process,
            args=(kind, target, threads, counts, index, ready, start, stop, messages),
            daemon=True,
        )
        child.start()
        readies.append(ready)
        children.append(child)
    try:
        for ready in readies:
            if not ready.wait(120):
                raise RuntimeError(f"{kind} worker process did not start")
        began = time.perf_counter()
        start.set()
        deadline = began + 600
        while True:
            if sum(counts) >= messages and drained():
                elapsed = time.perf_counter() - began
                break
            if time.perf_counter() > deadline or not all(child.is_alive() for child in children):
                raise RuntimeError(f"{kind} run did not finish: {sum(counts)}/{messages} processed")
            time.sleep(0.001)
    finally:
        stop.set()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
    return messages / elapsed


def _messages(messages: int):
    from dramatiq import Message

    return [Message(queue_name=QUEUE, actor_name=ACTOR, args=(i,), kwargs={}, options={}) for i in range(messages)]


def measure_sqlite(messages: int, processes: int, threads: int = 8) -> float:
    """Messages per second through SQLiteBroker with ``processes`` × ``threads`` consumers."""
    with tempfile.TemporaryDirectory(prefix="quaero-bench-") as tmp:
        path = str(Path(tmp) / "queue.db")
        broker = _make_broker("sqlite", path)
        _declare_actor(broker)
        broker.enqueue_many(_messages(messages))
        broker.close()
        conn = sqlite3.connect(path)
        try:
            return _run("sqlite", path, processes, threads, messages,
                        lambda: conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0)
        finally:
            conn.close()


def measure_stub(messages: int, threads: int = 8) -> float:
    """Messages per second through Dramatiq's StubBroker in one process."""
    return _run("stub", "", 1, threads, messages, lambda: True)


def redis_available(url: str = REDIS_URL) -> bool:
    """Tell whether a Redis server answers at ``url``."""
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:
        return False


def measure_redis(messages: int, processes: int, threads: int = 8) -> float | None:
    """Messages per second through Dramatiq's RedisBroker, or None when Redis is unreachable."""
    if not redis_available():
        return None
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    # A namespace of our own: flushing only its keys leaves other users of this Redis alone.
    namespace = f"quaero-bench-{uuid.uuid4().hex[:8]}"

    def delete_keys() -> None:
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)

    delete_keys()
    try:
        broker = _make_broker("redis", namespace)
        _declare_actor(broker)
        for message in _messages(messages):
            broker.enqueue(message)
        broker.close()
        return _run("redis", namespace, processes, threads, messages,
                    lambda: client.hlen(f"{namespace}:{QUEUE}.msgs") == 0)
    finally:
        delete_keys()
        client.close()


def measure(messages: int = 20000, threads: int = 8) -> dict[str, Any]:
    """Run every case and return the figures in messages per second (None where Redis is missing)."""
    return {
        "broker_1x8_msgs_per_s": round(measure_sqlite(messages, 1, threads)),
        "broker_2x8_msgs_per_s": round(measure_sqlite(messages, 2, threads)),
        "stub_1x8_msgs_per_s": round(measure_stub(messages, threads)),
        "redis_1x8_msgs_per_s": _round(measure_redis(messages, 1, threads)),
        "redis_2x8_msgs_per_s": _round(measure_redis(messages, 2, threads)),
        "messages": messages,
    }


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the figures as text, or as JSON with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = measure(args.messages)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
