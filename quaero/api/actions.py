"""The public plugin API: the roles of the Manager/Worker design, mapped to Python.

A plugin contributes :class:`Action` objects. Each holds a :class:`StepManager` that turns a definition step
into a step parent job with its first children, one or more :class:`JobWorker` that execute those
children, and a :class:`StepOptions` model that types the step's ``config`` (unknown keys are errors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from quaero.engine.context import JobContext
    from quaero.stores.definitions import JobDefinition, JobStep
    from quaero.stores.models import Job
    from quaero.engine.services import Services


class StepOptions(BaseModel):
    """Base class of a step's typed options: subclass it and declare fields with defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StepManager(ABC):
    """Orchestrates one action: creates the step's parent job and its initial children. Never executes work."""

    #: The action this manager handles (the step's ``action`` in a definition).
    manager_type: ClassVar[str] = ""

    @abstractmethod
    def create_parent_job(
        self, ctx: Services, step: JobStep, job_def: JobDefinition, parent_job_id: str
    ) -> str:
        """Create the step parent under ``parent_job_id``, create and enqueue its children, return its id.

        ``step.options`` is the validated :class:`StepOptions` instance. Use
        ``ctx.create_step_job(step, job_def, parent_job_id)`` and ``ctx.spawner.spawn_children(...)``.
        """

    def stats(self, ctx: Services, step_job: Job) -> dict[str, Any] | None:
        """Figures about one step of this action for the API and pages (``None``: nothing to add)."""
        return None


class JobWorker(ABC):
    """Executes one job type: does one unit of work, saves results, spawns children for discovered work."""

    #: The job type this worker executes (the ``type`` of the child jobs its manager creates).
    worker_type: ClassVar[str] = ""
    #: How often a job that raised is retried, with exponential backoff between the bounds below.
    max_retries: ClassVar[int] = 0
    min_backoff_ms: ClassVar[int] = 1000
    max_backoff_ms: ClassVar[int] = 60_000
    #: Seconds one job may run before it is stopped; ``None`` uses the ``time_limit`` setting.
    time_limit: ClassVar[float | None] = None

    def validate(self, job: Job) -> None:
        """Raise :class:`quaero.errors.JobError` if ``job`` cannot be executed by this worker."""

    @abstractmethod
    def execute(self, ctx: JobContext, job: Job) -> None:
        """Do the work of ``job``; raise to fail it (it is retried when ``max_retries`` allows)."""


@dataclass(frozen=True)
class Action:
    """One action a plugin provides: its manager, workers and options model."""

    name: str
    manager: StepManager
    workers: Sequence[JobWorker] = ()
    options: type[StepOptions] = StepOptions
    description: str = ""
    #: Filled in by the core: the plugin that registered the action.
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"action name {self.name!r} must be letters, digits, '_' or '-'")
        if not isinstance(self.manager, StepManager):
            raise TypeError(f"action {self.name!r}: manager must be a StepManager instance")
        for worker in self.workers:
            if not isinstance(worker, JobWorker) or not worker.worker_type:
                raise TypeError(f"action {self.name!r}: every worker must be a JobWorker with a worker_type")
        if not (isinstance(self.options, type) and issubclass(self.options, StepOptions)):
            raise TypeError(f"action {self.name!r}: options must be a StepOptions subclass")


def describe_action(action: Action) -> dict[str, Any]:
    """An action as JSON-ready data for listings."""
    return {
        "name": action.name, "plugin": action.plugin, "description": action.description,
        "workers": [w.worker_type for w in action.workers],
        "options": action.options.model_json_schema().get("properties", {}),
    }
