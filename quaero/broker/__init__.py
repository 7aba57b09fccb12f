"""Message brokers: the embedded SQLite broker and a factory that picks a broker from a URL."""

from __future__ import annotations

from typing import Any, Optional

import dramatiq
from dramatiq.middleware import Middleware

from .sqlite import SQLiteBroker

__all__ = ["SQLiteBroker", "make_broker"]

ACCEPTED_SCHEMES = "sqlite:///path/to/queue.db, redis://host:port/db, amqp://user:pass@host:port/vhost, stub://"


def make_broker(url: str, *, middleware: Optional[list[Middleware]] = None, **options: Any) -> dramatiq.Broker:
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
