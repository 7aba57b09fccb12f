"""Queue inspection: what the engine and the web layer may ask of a queue backend, whatever it is.

Every broker :func:`quaero.broker.make_broker` builds has a :class:`QueueInspector`
(:func:`quaero.broker.inspector_for`). What a backend cannot do honestly is said by its capability
flags, never found out by probing the broker for methods:

============================  ========  =========================  ==========================  ==========
capability                    SQLite    Redis                      RabbitMQ                    Stub
============================  ========  =========================  ==========================  ==========
``stats()``                   all       all                        no in-flight count          all
``can_find_messages``         yes       yes (scans the hashes)     no (only by consuming)      no
``supports_dead_letters``     yes       yes                        no (only by consuming)      no
``enqueue_many()``            batched   one by one                 one by one                  one by one
``reclaim_abandoned()``       yes       yes (Dramatiq's acks sets)  not needed (see below)      nothing held
============================  ========  =========================  ==========================  ==========

RabbitMQ needs no reclaiming: the server itself puts a consumer's unacknowledged messages back the moment
its connection closes, and the kernel closes a killed process's connections at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from dramatiq.common import dq_name
from dramatiq.errors import DecodeError
from dramatiq.message import Message

if TYPE_CHECKING:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

__all__ = ["DeadLetter", "QueueInspector", "QueueStats", "StubInspector", "Unsupported", "dead_letter", "fresh_body"]


class QueueStats(TypedDict):
    """Messages of one queue by state. ``in_flight`` is None where the backend cannot tell."""

    ready: int  # visible, waiting for a worker
    delayed: int  # waiting for their eta (a retry's backoff, a delayed send)
    in_flight: int | None  # held by a worker and not acknowledged yet
    dead: int  # dead-lettered


class DeadLetter(TypedDict):
    """A dead-lettered message. Times are in ms since the epoch; body fields are None when undecodable."""

    id: int  # the letter's id for requeue_dead / delete_dead (not the message id)
    queue: str  # the queue it came from (base name)
    message_id: str
    enqueued_at: int
    dead_at: int
    received: int  # deliveries
    actor_name: str | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    options: dict[str, Any] | None
    message_timestamp: int | None


class Unsupported(NotImplementedError):
    """The backend cannot do this; its capability flag says so beforehand."""


class QueueInspector(ABC):
    """Counts, finds and repairs the messages of one broker; subclasses declare what they can do.

    Parameters:
      broker: the broker whose queues to inspect.
    """

    #: Whether :meth:`find_messages` and :meth:`has_message` can answer.
    can_find_messages: bool = False
    #: Whether :meth:`dead_letters`, :meth:`requeue_dead` and :meth:`delete_dead` can answer.
    supports_dead_letters: bool = False
    #: Whether :meth:`stats` fills ``in_flight``.
    counts_in_flight: bool = True

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    @abstractmethod
    def stats(self) -> dict[str, QueueStats]:
        """Messages per declared queue (base names; delayed and dead ones counted under their queue)."""

    def find_messages(self, message_ids: Iterable[str], *, include_dead: bool = True) -> set[str]:
        """The ids among ``message_ids`` of messages waiting, delayed or in flight (or dead, with ``include_dead``).

        Raises:
          Unsupported: unless :attr:`can_find_messages`.
        """
        raise Unsupported(f"{type(self.broker).__name__} cannot look for a message without consuming it")

    def has_message(self, message_id: str, *, include_dead: bool = True) -> bool:
        """Tell whether one message is on the queue (see :meth:`find_messages`)."""
        return message_id in self.find_messages([message_id], include_dead=include_dead)

    def dead_letters(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters newest first, of one queue or of all.

        Raises:
          Unsupported: unless :attr:`supports_dead_letters`.
        """
        raise self._no_dead_letters()

    def requeue_dead(self, ids: Sequence[int]) -> int:
        """Put dead letters back on their queue as new messages; returns how many moved.

        Raises:
          Unsupported: unless :attr:`supports_dead_letters`.
        """
        raise self._no_dead_letters()

    def delete_dead(self, ids: Sequence[int]) -> int:
        """Delete dead letters; returns how many were deleted.

        Raises:
          Unsupported: unless :attr:`supports_dead_letters`.
        """
        raise self._no_dead_letters()

    def enqueue_many(self, messages: Sequence[Message]) -> list[Message]:
        """Enqueue messages, in one batch where the backend has one; returns them as enqueued."""
        return [self.broker.enqueue(message) for message in messages]

    def reclaim_abandoned(self) -> int:
        """Give back at once the messages held by processes of this host that are gone; returns how many.

        Without it they come back when their lease lapses (the SQLite broker's ``queue_lease_ms``, Redis's
        60 s heartbeat timeout). A backend whose server gives them back itself does nothing here.
        """
        return 0

    def _no_dead_letters(self) -> Unsupported:
        return Unsupported(f"{type(self.broker).__name__} cannot list its dead letters without consuming them")


class StubInspector(QueueInspector):
    """Dramatiq's in-memory StubBroker: counts only (its messages sit in ``queue.Queue`` objects)."""

    broker: StubBroker

    def stats(self) -> dict[str, QueueStats]:
        """Ready and in-flight messages from each queue's unfinished tasks; delayed ones held or not."""
        broker = self.broker
        stats: dict[str, QueueStats] = {}
        for name in broker.get_declared_queues() - broker.get_declared_delay_queues():
            ready, delayed = broker.queues[name], broker.queues[dq_name(name)]
            dead = broker.dead_letters_by_queue
            stats[name] = {
                "ready": ready.qsize(), "delayed": delayed.unfinished_tasks,
                # A task is unfinished from put() until the consumer acks it: taken but unfinished is in flight.
                "in_flight": max(ready.unfinished_tasks - ready.qsize(), 0),
                "dead": len(dead.get(name, ())) + len(dead.get(dq_name(name), ())),
            }
        return stats


def fresh_body(body: bytes, queue_name: str, **options: Any) -> bytes | None:
    """A dead message's body as a new message of ``queue_name``: no eta, no retry count, ``options`` added.

    None when the body cannot be decoded.
    """
    try:
        message = Message.decode(body)
    except DecodeError:
        return None
    message = message.copy(queue_name=queue_name, options=options)
    message.options.pop("eta", None)
    message.options.pop("retries", None)
    return message.encode()


def dead_letter(letter_id: int, queue: str, body: bytes | None, dead_at: int, *, message_id: str | None = None,
                enqueued_at: int | None = None, received: int | None = None) -> DeadLetter:
    """A dead letter with what its body says; the fields not given come from the body where it has them.

    Without ``enqueued_at`` the message's own timestamp stands in, and without ``received`` its retry
    count plus one (the first delivery).
    """
    try:
        message = Message.decode(body) if body is not None else None
    except DecodeError:
        message = None
    letter: DeadLetter = {
        "id": letter_id, "queue": queue, "message_id": message_id or (message.message_id if message else ""),
        "enqueued_at": enqueued_at if enqueued_at is not None else (message.message_timestamp if message else dead_at),
        "dead_at": dead_at,
        "received": received if received is not None else (message.options.get("retries", 0) + 1 if message else 1),
        "actor_name": None, "args": None, "kwargs": None, "options": None, "message_timestamp": None,
    }
    if message is not None:
        letter.update({"actor_name": message.actor_name, "args": list(message.args), "kwargs": message.kwargs,
                       "options": message.options, "message_timestamp": message.message_timestamp})
    return letter
