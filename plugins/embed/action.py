"""The ``embed`` action: embed every document whose vectors are missing or stale, and report the counts.

Saved documents are embedded in the background as they are saved; this action is for what that does not
cover: documents saved before search by meaning was on, a change of model (``embedder``, or its
dimensions), a backlog after the embedder was unavailable. Like ``reindex``, one child does the work.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from quaero.api import (
    JobContext,
    JobView,
    JobWorker,
    PluginContext,
    ReadinessContext,
    StepContext,
    StepManager,
    StepOptions,
)

WORKER_TYPE = "embed_documents"
BATCH = 256
PATIENCE = 330.0  # seconds to wait for documents another process holds (its claims lapse after 300)


class EmbedOptions(StepOptions):
    """Options of the ``embed`` action."""

    dry_run: bool = Field(False, description="Only count the documents whose vectors are missing or stale.")


class EmbedManager(StepManager):
    """Starts the step's one child."""

    manager_type = "embed"

    def readiness(self, ctx: ReadinessContext, options: Any) -> str | None:
        return ctx.embeddings.available

    def start_step(self, ctx: StepContext) -> None:
        ctx.spawn(WORKER_TYPE, "count missing and stale vectors (dry run)" if ctx.options.dry_run
                  else "embed documents whose vectors are missing or stale", {})

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        children = ctx.children(step.id, limit=1)
        return children[0].result or None if children else None


class EmbedWorker(JobWorker):
    """Queues what is missing or stale, embeds it batch by batch, and reports before and after."""

    worker_type = WORKER_TYPE
    time_limit = 6 * 3600.0  # every document of a large knowledge base, on a small machine

    def execute(self, ctx: JobContext, job: JobView) -> None:
        index = ctx.embeddings
        before = index.check()
        ctx.log("info", f"before: {before.embedded} of {before.documents} documents embedded by {before.model}; "
                        f"{before.missing} missing, {before.stale} stale, {before.queued} queued")
        if ctx.options.dry_run:
            ctx.set_result(dry_run=True, before=before.as_dict())
            return
        queued = index.queue_stale()
        started, embedded = time.monotonic(), 0
        total = max(queued, before.queued)
        idle_since: float | None = None
        while True:
            ctx.check_cancelled()
            done = index.embed_queued(limit=BATCH, cancelled=lambda: ctx.cancelled)
            if done:
                embedded += done
                idle_since = None
                ctx.progress("embedding", current=embedded, total=max(total, embedded))
                continue
            # Nothing to claim: the rest is being embedded by another process (the background embedder, a
            # worker), or by one that was killed, whose claims lapse. Wait for it, while it gets done.
            left = index.check().queued
            if not left:
                break
            if idle_since is None:
                idle_since, before_wait = time.monotonic(), left
            elif left < before_wait:
                idle_since, before_wait = time.monotonic(), left
            elif time.monotonic() - idle_since > PATIENCE:
                ctx.log("warn", f"{left} document(s) stay queued, held by another process for {PATIENCE:g} s; "
                                f"they are embedded when its claim lapses")
                break
            ctx.sleep(0.5)
        ctx.check_cancelled()
        after = index.check()
        seconds = round(time.monotonic() - started, 3)
        ctx.set_result(dry_run=False, before=before.as_dict(), queued=queued, embedded=embedded,
                       seconds=seconds, after=after.as_dict())
        ctx.log("info", f"embedded {embedded} document(s) in {seconds} s; after: {after.embedded} of "
                        f"{after.documents} embedded, {after.queued} still queued (held by another process "
                        f"or changed meanwhile)")
