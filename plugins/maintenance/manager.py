"""MaintenanceManager: the operations run one after another, one child job each.

They must not run side by side (a VACUUM after the prune it is meant to reclaim, statistics after the
reindex), so the manager starts only the first; each child starts the next when it is done (see
:class:`~.worker.MaintenanceWorker`).
"""

from __future__ import annotations

from typing import Any

from quaero import ChildSpec, StepManager

from .options import OPERATIONS
from .worker import WORKER_TYPE, operation_config


class MaintenanceManager(StepManager):
    """Creates the step and its first operation's job."""

    manager_type = "database_maintenance"

    def create_parent_job(self, ctx: Any, step: Any, job_def: Any, parent_job_id: str) -> str:
        operations: list[str] = step.options.operations
        parent = ctx.create_step_job(step, job_def, parent_job_id)
        ctx.logs.write(parent.id, "info", f"operations, one after another: {', '.join(operations)}")
        ctx.spawner.spawn_children(parent, [ChildSpec(WORKER_TYPE, operations[0], operation_config(operations))])
        return parent.id

    def stats(self, ctx: Any, step_job: Any) -> dict[str, Any] | None:
        """What each operation did (its job's result), in the order they ran."""
        children = ctx.jobs.children(step_job.id, limit=len(OPERATIONS))
        return {"operations": [{"operation": child.config.get("operation"), "status": child.status,
                                **child.data.get("result", {})} for child in children]}
