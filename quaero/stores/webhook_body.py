"""The JSON body of a webhook delivery: the event and the execution as it stands, with links back.

One body is made per delivery when its event is turned into deliveries, and every attempt sends the same
bytes (a receiver can tell a retry by ``delivery_id``). It holds no secret: errors are stored redacted.
"""

from __future__ import annotations

from typing import Any

from quaero.stores.events import iso
from quaero.stores.jobs import Counts, JobManager
from quaero.stores.models import Job

#: Steps listed in a body at most (an execution has a handful; a body must stay small).
MAX_STEPS = 100


def _step(step: Job) -> dict[str, Any]:
    data = step.data
    return {
        "id": step.id, "name": step.name, "action": data.get("action"), "status": step.status,
        "counts": Counts.of(step).as_dict(), "result_count": step.result_count,
        "figures": data.get("result") or {}, "error": step.error_message,
    }


def links(public_url: str, job: Job) -> dict[str, str]:
    """Absolute URLs of the execution's page, its API resource and its deliveries."""
    base = public_url.rstrip("/")
    return {"page": f"{base}/jobs/{job.id}", "api": f"{base}/api/jobs/{job.id}",
            "webhooks": f"{base}/api/jobs/{job.id}/webhooks"}


def webhook_body(jobs: JobManager, root: Job, *, event: str, status: str, occurred_at: float, delivery_id: str,
                 public_url: str) -> dict[str, Any]:
    """What a delivery of ``event`` (the execution having become ``status``) sends."""
    steps = jobs.children(root.id, limit=MAX_STEPS)
    duration = None
    if root.started_at is not None and root.finished_at is not None:
        duration = round(root.finished_at - root.started_at, 3)
    return {
        "event": event,
        "delivery_id": delivery_id,
        "occurred_at": iso(occurred_at),
        "execution": {
            "id": root.id, "name": root.name, "definition_id": root.definition_id, "status": status,
            "trigger": root.data.get("trigger"), "error": root.error_message if status != "running" else None,
            "counts": Counts.of(root).as_dict(), "result_count": root.result_count,
            "steps": [_step(step) for step in steps],
            "created_at": iso(root.created_at), "started_at": iso(root.started_at) if root.started_at else None,
            "finished_at": iso(root.finished_at) if root.finished_at and status != "running" else None,
            "duration_s": duration if status != "running" else None,
        },
        "links": links(public_url, root),
    }
