"""JobContext: what a worker gets besides its job: logging, progress, results, children, cancellation."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from quaero.stores.documents import DocumentInput, SaveResult
from quaero.errors import JobCancelled
from quaero.stores.events import RESULT_SAVED, TASK_PROGRESS, iso
from quaero.stores.models import Job

if TYPE_CHECKING:
    from quaero.engine.services import Services


class JobContext:
    """Per-execution helpers for a :class:`~quaero.api.actions.JobWorker`."""

    def __init__(self, services: Services, job: Job) -> None:
        self.services = services
        self.job = job
        self.settings = services.settings
        self.cancel_event = threading.Event()

    # ------------------------------------------------------------------ logging and progress
    def log(self, level: str, message: str, **metadata: Any) -> None:
        """Write a line to this job's log (``debug``, ``info``, ``warn`` or ``error``)."""
        self.services.logs.write(self.job.id, level, message, **metadata)

    def progress(self, activity: str, *, current_item: str | None = None,
                 current: int | None = None, total: int | None = None) -> None:
        """Report what the job is doing now (a ``task_progress`` event; counters are stored too)."""
        if current is not None and total is not None:
            self.services.jobs.set_progress(self.job.id, current, total)
        self.services.bus.publish(TASK_PROGRESS, {
            "job_id": self.job.id, "parent_id": self.job.parent_id, "status": "running",
            "job_type": self.job.type, "current_item": current_item or self.job.name,
            "current_activity": activity, "depth": self.job.depth, "timestamp": iso(),
        })

    # ------------------------------------------------------------------ results and children
    def save_document(self, document: DocumentInput) -> SaveResult:
        """Save a document (idempotent by source reference) and count it as this step's result."""
        step = self.step_job
        with self.services.database.write():  # the document and its count, together
            result = self.services.documents.upsert(document, job_id=self.job.id)
            if result.first_for_job:
                self.services.jobs.add_results(*filter(None, (step.id, step.parent_id)))
        if result.changed:
            self.services.bus.publish(RESULT_SAVED, {
                "result_id": str(result.id), "job_id": self.job.id, "parent_job_id": self.job.parent_id,
                "title": document.title, "item_reference": document.source_ref, "created": result.created,
                "timestamp": iso(),
            })
        return result

    def spawn(self, child_type: str, child_name: str, config: dict[str, Any], *,
              item_ref: str | None = None) -> str | None:
        """Spawn a child for discovered work at depth + 1; ``None`` when past the step's ``max_depth``."""
        return self.services.spawner.spawn_child_job(self.job, child_type, child_name, config, item_ref=item_ref)

    @property
    def step_job(self) -> Job:
        """The step parent this job belongs to."""
        return self.services.step_job(self.job)

    @property
    def options(self) -> Any:
        """The typed options of this job's step."""
        return self.services.step_options(self.job)

    # ------------------------------------------------------------------ cancellation
    @property
    def cancelled(self) -> bool:
        """True once someone cancelled this job (or its step or execution)."""
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled; call it between units of work."""
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self.job.id} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait, but wake up and raise :class:`JobCancelled` as soon as the job is cancelled."""
        if self.cancel_event.wait(seconds):
            self.check_cancelled()
