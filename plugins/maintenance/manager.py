"""MaintenanceManager: the operations run one after another, one child job each.

They must not run side by side (a VACUUM after the prune it is meant to reclaim, statistics after the
reindex), so the manager starts only the first; each child starts the next when it is done (see
:class:`~.worker.MaintenanceWorker`).
"""

from __future__ import annotations

from typing import Any

from quaero.api import JobView, PluginContext, StepContext, StepManager

from .options import OPERATIONS
from .worker import WORKER_TYPE, operation_config


class MaintenanceManager(StepManager):
    """Starts the step's first operation's job."""

    manager_type = "database_maintenance"

    def start_step(self, ctx: StepContext) -> None:
        operations: list[str] = ctx.options.operations
        ctx.log("info", f"operations, one after another: {', '.join(operations)}")
        ctx.spawn(WORKER_TYPE, operations[0], operation_config(operations))

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        """What each operation did (its job's result), in the order they ran."""
        children = ctx.children(step.id, limit=len(OPERATIONS))
        return {"operations": [{"operation": child.config.get("operation"), "status": child.status, **child.result}
                               for child in children]}
