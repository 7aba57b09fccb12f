"""ReindexManager: one child job does the whole rebuild (the index is one structure, rebuilt in one go)."""

from __future__ import annotations

from typing import Any

from quaero.api import JobView, PluginContext, StepContext, StepManager

from .worker import WORKER_TYPE


class ReindexManager(StepManager):
    """Starts the step's one child; the worker rebuilds and checks."""

    manager_type = "reindex"

    def start_step(self, ctx: StepContext) -> None:
        name = "check the full-text index (dry run)" if ctx.options.dry_run else "rebuild the full-text index"
        ctx.spawn(WORKER_TYPE, name, {})

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        """The child's report: the index before and after, and how long each part took."""
        children = ctx.children(step.id, limit=1)
        return children[0].result or None if children else None
