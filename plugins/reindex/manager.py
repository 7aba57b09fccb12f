"""ReindexManager: one child job does the whole rebuild (the index is one structure, rebuilt in one go)."""

from __future__ import annotations

from typing import Any

from quaero import ChildSpec, StepManager

from .worker import WORKER_TYPE


class ReindexManager(StepManager):
    """Creates the step and its one child; the worker rebuilds and checks."""

    manager_type = "reindex"

    def create_parent_job(self, ctx: Any, step: Any, job_def: Any, parent_job_id: str) -> str:
        parent = ctx.create_step_job(step, job_def, parent_job_id)
        name = "check the full-text index (dry run)" if step.options.dry_run else "rebuild the full-text index"
        ctx.spawner.spawn_children(parent, [ChildSpec(WORKER_TYPE, name, {})])
        return parent.id

    def stats(self, ctx: Any, step_job: Any) -> dict[str, Any] | None:
        """The child's report: the index before and after, and how long each part took."""
        children = ctx.jobs.children(step_job.id, limit=1)
        return children[0].data.get("result") if children else None
