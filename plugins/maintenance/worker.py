"""MaintenanceWorker: runs one operation, records what it did, and starts the next operation's job."""

from __future__ import annotations

from typing import Any

from quaero.api import ChildSpec, JobContext, JobError, JobView, JobWorker

from .operations import run_operation
from .options import OPERATIONS

WORKER_TYPE = "database_maintenance_operation"


def operation_config(operations: list[str]) -> dict[str, Any]:
    """A child's config: its operation, and the ones still to run after it."""
    return {"operation": operations[0], "then": operations[1:]}


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.2f} MB"


class MaintenanceWorker(JobWorker):
    """One maintenance operation. Its figures go to the job's ``result`` and its log.

    A failed operation does not stop the ones after it: the next job is started either way (unless the step
    was cancelled), and only once, even when this job is run again after a crash.
    """

    worker_type = WORKER_TYPE
    time_limit = 3600.0  # VACUUM and REINDEX of a large database take minutes

    def execute(self, ctx: JobContext, job: JobView) -> None:
        operation, then = job.config["operation"], job.config["then"]
        try:
            result = run_operation(ctx, operation)
            ctx.set_result(**result)
            ctx.log("info" if result["ok"] else "error",
                    f"{operation}: {result['summary']} ({result['seconds']:.2f} s; database "
                    f"{_megabytes(result['size_before'])} before, {_megabytes(result['size_after'])} after)")
        finally:
            self.start_next(ctx, then)
        if not result["ok"]:
            raise JobError(f"{operation}: {result['summary']}", retryable=False)

    @staticmethod
    def start_next(ctx: JobContext, then: list[str]) -> None:
        """Create the job of the next operation, if there is one and it does not exist yet."""
        if not then or ctx.cancelled:
            return
        siblings = ctx.children(ctx.step.id, limit=len(OPERATIONS))
        if any(sibling.config.get("operation") == then[0] for sibling in siblings):
            return  # started by an earlier attempt of this job
        # The same depth as this job: the operations are a sequence, not a tree.
        ctx.spawn_many([ChildSpec(WORKER_TYPE, then[0], operation_config(then))], depth=ctx.job.depth)
