"""Message brokers: the embedded SQLite broker, a factory that picks a broker from a URL, and the
queue inspector of each broker (:mod:`quaero.broker.inspection`)."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from .inspection import DeadLetter, QueueInspector, QueueStats, StubInspector, Unsupported
from .sqlite import SQLiteBroker, SQLiteInspector
from .store import MessageStore

__all__ = ["DeadLetter", "MessageStore", "QueueInspector", "QueueStats", "SQLiteBroker", "Unsupported",
           "inspector_for", "make_broker"]

ACCEPTED_SCHEMES = "sqlite:///path/to/queue.db, redis://host:port/db, amqp://user:pass@host:port/vhost, stub://"


def make_broker(url: str, *, middleware: list[Middleware] | None = None, **options: Any) -> dramatiq.Broker:
    """Build the broker a queue URL names; ``options`` go to the broker's constructor.

    ``sqlite:///queue.db`` is relative to the working directory and ``sqlite:////abs/queue.db`` absolute,
    as for the database URL.

    Raises:
      ValueError: for a URL of any other scheme, or a SQLite URL without a path.
    """
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError(f"queue URL {url!r}: give a file path, e.g. sqlite:///data/queue.db")
        return SQLiteBroker(url[len("sqlite:///"):], middleware=middleware, **options)
    if scheme in ("redis", "rediss", "unix"):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url, middleware=middleware, **options)
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=middleware, **options)
    if scheme == "stub":
        from dramatiq.brokers.stub import StubBroker

        return StubBroker(middleware=middleware, **options)
    raise ValueError(f"queue URL {url!r} is not supported; accepted schemes: {ACCEPTED_SCHEMES}")


def inspector_for(broker: dramatiq.Broker) -> QueueInspector:
    """The queue inspector of a broker :func:`make_broker` builds.

    Raises:
      TypeError: for a broker of another kind (no inspector knows how it keeps its messages).
    """
    if isinstance(broker, SQLiteBroker):
        return SQLiteInspector(broker)
    from dramatiq.brokers.stub import StubBroker

    if isinstance(broker, StubBroker):
        return StubInspector(broker)
    # Imported only when installed: a broker of a missing client library cannot exist here.
    try:
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:
        pass
    else:
        if isinstance(broker, RedisBroker):
            from .redis_inspector import RedisInspector

            return RedisInspector(broker)
    try:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError:
        pass
    else:
        if isinstance(broker, RabbitmqBroker):
            from .rabbitmq_inspector import RabbitmqInspector

            return RabbitmqInspector(broker)
    raise TypeError(f"no queue inspector for {type(broker).__name__}; accepted: {ACCEPTED_SCHEMES}")
