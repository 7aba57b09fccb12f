"""JobSpawner: creates linked child jobs and enqueues them; enforces the step's ``max_depth``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from quaero.stores.events import JOB_SPAWN, iso
from quaero.stores.jobs import ChildSpec
from quaero.stores.models import Job

if TYPE_CHECKING:
    from quaero.engine.services import Services

log = logging.getLogger(__name__)


class JobSpawner:
    """Create children under a step parent and put their messages on the queue."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def spawn_children(
        self, parent: Job, specs: Sequence[ChildSpec], *, depth: int = 0, discovered_by: str | None = None
    ) -> list[str]:
        """Create ``specs`` as children of ``parent`` at ``depth`` and enqueue them; returns their ids."""
        ids = self.services.jobs.create_children(parent, specs, depth=depth, discovered_by=discovered_by)
        self.dispatch(parent, ids, specs, depth=depth, discovered_by=discovered_by)
        return ids

    def dispatch(self, parent: Job, ids: Sequence[str], specs: Sequence[ChildSpec], *, depth: int,
                 discovered_by: str | None = None) -> None:
        """Enqueue children created earlier with ``jobs.create_children`` and announce them (``job_spawn``).

        For plugins that create children inside a transaction of their own: commit first, then dispatch.
        """
        by_type: dict[str, list[str]] = {}
        for job_id, spec in zip(ids, specs):
            by_type.setdefault(spec.type, []).append(job_id)
        for job_type, job_ids in by_type.items():
            self.services.enqueue(job_type, job_ids)
        stamp = iso()
        for job_id, spec in zip(ids, specs):
            self.services.bus.publish(JOB_SPAWN, {
                "parent_job_id": parent.id, "discovered_by": discovered_by or parent.id, "child_job_id": job_id,
                "job_type": spec.type, "item_reference": spec.item_ref or spec.name, "depth": depth,
                "timestamp": stamp,
            })

    def spawn_child_job(
        self,
        parent_job: Job,
        child_type: str,
        child_name: str,
        config: dict[str, Any],
        *,
        item_ref: str | None = None,
    ) -> str | None:
        """Create and enqueue one child for work ``parent_job`` discovered (depth + 1).

        The child joins the step parent that ``parent_job`` belongs to, so the monitor sees the whole step
        in one place. Returns ``None`` (and spawns nothing) past the step's ``max_depth``.
        """
        if parent_job.type in ("parent", "step"):
            owner, depth = parent_job, 0
        else:
            owner, depth = self.services.step_job(parent_job), parent_job.depth + 1
        max_depth = owner.data.get("max_depth")
        if max_depth is not None and depth > max_depth:
            log.debug("not spawning %s: depth %d is past max_depth %d", child_name, depth, max_depth)
            return None
        ids = self.spawn_children(owner, [ChildSpec(child_type, child_name, config, item_ref)], depth=depth,
                                  discovered_by=None if owner is parent_job else parent_job.id)
        return ids[0]
