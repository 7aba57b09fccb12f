"""JobQueue: puts one message per job on the broker, addressed to the actor of the job's type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dramatiq.message import Message

from quaero.broker import QueueInspector
from quaero.errors import PluginError
from quaero.registry import Registry

QUEUE_NAME = "quaero"


def actor_name(job_type: str) -> str:
    """The Dramatiq actor that executes jobs of ``job_type``."""
    return f"quaero.job.{job_type}"


class JobQueue:
    """Sends jobs' messages; the message id is the job id, so a job's message is easy to find again."""

    def __init__(self, inspector: QueueInspector, registry: Registry) -> None:
        self.inspector = inspector
        self.registry = registry

    def enqueue(self, job_type: str, job_ids: Sequence[str], *, generation: int = 0) -> None:
        """Put one message per job on the queue; a job type no plugin executes is a :class:`PluginError`.

        ``generation``: the jobs' message generation (:meth:`JobManager.supersede`), carried by the message.
        """
        if self.registry.worker(job_type) is None:
            raise PluginError(f"no installed plugin executes jobs of type {job_type!r}")
        options = {"generation": generation} if generation else {}
        messages: list[Message[Any]] = [
            Message(queue_name=QUEUE_NAME, actor_name=actor_name(job_type), args=(job_id,), kwargs={},
                    options=dict(options), message_id=job_id)
            for job_id in job_ids
        ]
        self.inspector.enqueue_many(messages)
