"""The queue inspector of Dramatiq's RabbitMQ broker: message counts, and nothing it would have to fake.

AMQP tells a queue's count of ready messages (a passive ``queue.declare``) and no more: not how many a
consumer holds unacknowledged, and no way to read or remove one message without consuming the queue up
to it. So :attr:`~QueueInspector.can_find_messages` and :attr:`~QueueInspector.supports_dead_letters`
are off, and ``in_flight`` is None; RabbitMQ's management console shows those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pika
import pika.exceptions
from dramatiq.common import dq_name, xq_name

from .inspection import QueueInspector, QueueStats

if TYPE_CHECKING:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

__all__ = ["RabbitmqInspector"]

NOT_FOUND = 404


class RabbitmqInspector(QueueInspector):
    """Counts of a :class:`~dramatiq.brokers.rabbitmq.RabbitmqBroker`'s queues."""

    counts_in_flight = False
    broker: RabbitmqBroker

    def stats(self) -> dict[str, QueueStats]:
        """Ready, delayed and dead counts of every declared queue; ``in_flight`` None.

        ``delayed`` counts the delayed messages no worker has taken yet: a Dramatiq worker takes them at
        once and holds them, unacknowledged, until their eta.
        """
        # A connection of its own per call: the broker's connections belong to their threads, and an
        # idle BlockingConnection misses its heartbeats and is dropped by the server.
        connection = pika.BlockingConnection(self.broker.parameters)
        try:
            channel = connection.channel()
            stats: dict[str, QueueStats] = {}
            for name in sorted(self.broker.get_declared_queues()):
                counts = []
                for queue_name in (name, dq_name(name), xq_name(name)):
                    try:
                        counts.append(channel.queue_declare(queue_name, passive=True).method.message_count)
                    except pika.exceptions.ChannelClosedByBroker as error:
                        if error.reply_code != NOT_FOUND:
                            raise
                        # Not created yet (Dramatiq creates queues on first use): nothing in it. The
                        # broker closed the channel over the missing queue.
                        counts.append(0)
                        channel = connection.channel()
                ready, delayed, dead = counts
                stats[name] = {"ready": ready, "delayed": delayed, "in_flight": None, "dead": dead}
            return stats
        finally:
            if connection.is_open:
                connection.close()
