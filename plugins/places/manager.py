"""PlacesManager: one search job per step, and whether a step has a key to run with."""

from __future__ import annotations

from typing import Any

from quaero.api import ChildSpec, JobView, PluginContext, ReadinessContext, StepContext, StepManager

from . import keys
from .options import PlacesOptions
from .worker import SEARCH_TYPE


class PlacesManager(StepManager):
    """Starts the step's one search job (a text search's pages follow one another: each needs the previous
    page's token); that job queues a details job per place when the step asks for details."""

    manager_type = "places_search"

    def start_step(self, ctx: StepContext) -> None:
        options: PlacesOptions = ctx.options
        ctx.set_max_depth(1)  # the search (0) and its places' details (1)
        ctx.spawn_many([ChildSpec(SEARCH_TYPE, options.describe(), {}, item_ref=options.search_type)])

    def readiness(self, ctx: ReadinessContext, options: Any) -> str | None:
        refusal = ctx.outbound_refusal(options.api_base_url)
        if refusal is not None:
            return f"api_base_url {options.api_base_url}: {refusal}"
        return keys.readiness(ctx, options)

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        # The search job's figures are the step's: pages, places found, saved, filtered out.
        for job in ctx.children(step.id, limit=1):
            if job.type == SEARCH_TYPE and job.result:
                return dict(job.result)
        return None
