"""ReindexWorker: compares the index with the documents, rebuilds and optimises it, and compares again."""

from __future__ import annotations

import time
from typing import Any

from quaero.api import JobContext, JobError, JobView, JobWorker

WORKER_TYPE = "fulltext_reindex"


class ReindexWorker(JobWorker):
    """Rebuilds the full-text index; reports the counts before and after, and fails if they disagree after."""

    worker_type = WORKER_TYPE
    time_limit = 3600.0  # a rebuild reads every document: far longer than one crawled page

    def execute(self, ctx: JobContext, job: JobView) -> None:
        index = ctx.full_text
        started = time.monotonic()
        before = index.check()
        result: dict[str, Any] = {"dry_run": ctx.options.dry_run, "before": before.as_dict(),
                                  "check_seconds": round(time.monotonic() - started, 3)}
        ctx.log("info", f"before: {before}")
        if ctx.options.dry_run:
            self.report(ctx, job, result)
            changes = f"index {before.missing} missing, refresh {before.stale} stale, remove {before.extra} extra"
            ctx.log("info", f"dry run: a rebuild would {changes} row(s); nothing was changed")
            return
        ctx.check_cancelled()
        started = time.monotonic()
        index.rebuild()
        if ctx.options.optimize:
            index.optimize()
        result["rebuild_seconds"] = round(time.monotonic() - started, 3)
        # No need to tokenise every document again for stale rows: the integrity check compares the
        # rebuilt index with the stored text itself.
        after = index.check(stale=False)
        result["after"] = after.as_dict()
        problem = index.integrity_check()
        result["integrity"] = problem or "ok"
        self.report(ctx, job, result)
        ctx.log("info", f"after: {after}; integrity check: {result['integrity']} "
                        f"(rebuilt in {result['rebuild_seconds']} s)")
        if not after.agrees or problem:
            raise JobError(f"the index still disagrees with the documents after the rebuild: {after}; "
                           f"integrity check: {result['integrity']}", retryable=False)

    @staticmethod
    def report(ctx: JobContext, job: JobView, result: dict[str, Any]) -> None:
        """Keep the figures on the job, where the API shows them."""
        ctx.set_result(**result)
