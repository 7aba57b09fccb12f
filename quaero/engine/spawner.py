"""JobSpawner: creates linked child jobs, queues them once they are committed, and announces them."""

from __future__ import annotations

from collections.abc import Sequence

from quaero.api.jobs import ChildSpec
from quaero.engine.queue import JobQueue
from quaero.stores.db import Database
from quaero.stores.events import JOB_SPAWN, EventBus, iso
from quaero.stores.jobs import JobManager
from quaero.stores.models import Job


class JobSpawner:
    """Create children under a step parent and put their messages on the queue."""

    def __init__(self, database: Database, jobs: JobManager, queue: JobQueue, bus: EventBus) -> None:
        self.database = database
        self.jobs = jobs
        self.queue = queue
        self.bus = bus

    def spawn_children(self, parent: Job, specs: Sequence[ChildSpec], *, depth: int = 0,
                       discovered_by: str | None = None) -> list[str]:
        """Create ``specs`` as children of ``parent`` at ``depth``; returns their ids.

        Their messages are sent once the transaction that created them commits (at once outside of one),
        so a worker never takes a job that a rollback then removed.
        """
        if not specs:
            return []
        ids = self.jobs.create_children(parent, specs, depth=depth, discovered_by=discovered_by)
        self.database.after_commit(lambda: self._dispatch(parent, ids, specs, depth, discovered_by))
        return ids

    def _dispatch(self, parent: Job, ids: Sequence[str], specs: Sequence[ChildSpec], depth: int,
                  discovered_by: str | None) -> None:
        by_type: dict[str, list[str]] = {}
        for job_id, spec in zip(ids, specs):
            by_type.setdefault(spec.type, []).append(job_id)
        for job_type, job_ids in by_type.items():
            self.queue.enqueue(job_type, job_ids)
        stamp = iso()
        for job_id, spec in zip(ids, specs):
            self.bus.publish(JOB_SPAWN, {
                "parent_job_id": parent.id, "discovered_by": discovered_by or parent.id, "child_job_id": job_id,
                "job_type": spec.type, "item_reference": spec.item_ref or spec.name, "depth": depth,
                "timestamp": stamp,
            })
