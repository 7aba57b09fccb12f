"""One maintenance operation, timed and measured: the core's database does the work (``ctx.maintenance``),
this module adds how long it took and the database's size before and after."""

from __future__ import annotations

import time
from typing import Any

from quaero.api import JobContext


def run_operation(ctx: JobContext, name: str) -> dict[str, Any]:
    """Run one operation for the job ``ctx`` belongs to; its outcome with the time taken and the size of the
    database before and after."""
    maintenance = ctx.maintenance
    size_before = maintenance.size()
    started = time.monotonic()
    outcome = maintenance.run(name, older_than_days=ctx.options.older_than_days, check_cancelled=ctx.check_cancelled)
    return {"operation": name, "applicable": outcome.applicable, "ok": outcome.ok, "summary": outcome.summary,
            "seconds": round(time.monotonic() - started, 3), "size_before": size_before,
            "size_after": maintenance.size(), **outcome.figures}
