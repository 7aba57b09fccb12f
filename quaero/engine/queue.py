"""JobQueue: puts one message per job on the broker, addressed to the actor of the job's type."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
from dramatiq.message import Message

from quaero.errors import PluginError
from quaero.registry import Registry

QUEUE_NAME = "quaero"


def actor_name(job_type: str) -> str:
    """The Dramatiq actor that executes jobs of ``job_type``."""
    return f"quaero.job.{job_type}"


class JobQueue:
    """Sends jobs' messages; the message id is the job id, so a job's message is easy to find again."""

    def __init__(self, broker: dramatiq.Broker, registry: Registry) -> None:
        self.broker = broker
        self.registry = registry

    def enqueue(self, job_type: str, job_ids: Sequence[str]) -> None:
        """Put one message per job on the queue; a job type no plugin executes is a :class:`PluginError`."""
        if self.registry.worker(job_type) is None:
            raise PluginError(f"no installed plugin executes jobs of type {job_type!r}")
        messages = [
            Message(queue_name=QUEUE_NAME, actor_name=actor_name(job_type), args=(job_id,), kwargs={},
                    options={}, message_id=job_id)
            for job_id in job_ids
        ]
        enqueue_many = getattr(self.broker, "enqueue_many", None)
        if enqueue_many is not None and len(messages) > 1:
            enqueue_many(messages)
        else:
            for message in messages:
                self.broker.enqueue(message)
