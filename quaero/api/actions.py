"""The roles of the Manager/Worker design, mapped to Python: what a plugin subclasses.

A plugin contributes :class:`Action` objects. Each holds a :class:`StepManager` that starts a definition
step (the core has created the step's parent job; the manager creates its first children), one or more
:class:`JobWorker` that execute those children, and a :class:`StepOptions` model that types the step's
``config`` (unknown keys are errors that name the file, the step and the key).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from quaero.api.context import JobContext, PluginContext, ReadinessContext, StepContext
from quaero.api.jobs import JobView


class StepOptions(BaseModel):
    """Base class of a step's typed options: subclass it and declare fields with defaults.

    Field descriptions (``Field(description=...)``) are shown on the Plugins page and in ``GET
    /api/plugins``; the validated instance is ``ctx.options`` in the manager and in every worker.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class StepManager(ABC):
    """Orchestrates one action: creates a step's first child jobs. Never executes work."""

    #: The action this manager handles (the step's ``action`` in a definition); informative.
    manager_type: ClassVar[str] = ""

    @abstractmethod
    def start_step(self, ctx: StepContext) -> None:
        """Start a step: create its first children with ``ctx.spawn_many`` (they are queued at once).

        The core has already created the step's parent job (``ctx.step``) under the execution's root; it
        completes the step when every child is finished. A step with no children completes at once.
        Raising fails the step with the error's message.
        """

    def readiness(self, ctx: ReadinessContext, options: Any) -> str | None:
        """Why a step with these (validated) options cannot run now, or ``None`` when it can.

        Asked when definitions are listed (the API and the pages show the reason) and before every
        execution (which is refused with it). Check what the run needs and a user must provide, such as
        an API key in the environment, the settings or the definition's credentials
        (``ctx.credentials_for``); never call a remote service here.
        """
        return None

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        """Figures about one step of this action for the API and the job page (``None``: nothing to add)."""
        return None


class JobWorker(ABC):
    """Executes one job type: does one unit of work, saves results, spawns children for discovered work.

    It runs in a thread of a worker process and must be safe to run twice for the same job: a worker killed
    mid-job is run again after its lease expires (saving the same ``source_ref`` again does no harm).
    """

    #: The job type this worker executes (the ``type`` of the child jobs its manager creates).
    worker_type: ClassVar[str] = ""
    #: How often a job that raised is retried, with exponential backoff between the bounds below.
    max_retries: ClassVar[int] = 0
    min_backoff_ms: ClassVar[int] = 1000
    max_backoff_ms: ClassVar[int] = 60_000
    #: Seconds one job may run before it is stopped; ``None`` uses the ``time_limit`` setting.
    time_limit: ClassVar[float | None] = None

    def validate(self, job: JobView) -> None:
        """Raise :class:`quaero.api.JobError` if ``job`` cannot be executed (a malformed ``config``); the job
        then fails without running and without retries."""
        return None  # optional: by default every job can be executed

    @abstractmethod
    def execute(self, ctx: JobContext, job: JobView) -> None:
        """Do the work of ``job``; raise to fail it (it is retried when ``max_retries`` allows, unless the
        error is a ``JobError(..., retryable=False)``)."""

    def after_failure(self, ctx: JobContext, job: JobView, error: BaseException) -> None:
        """Called once when ``job`` failed for good, whatever stopped it: its last retry raised, it raised an
        error that is not retried, or it ran past its time limit (an exception raised into the thread, which
        ``except Exception`` in :meth:`execute` does not see). Give back what the job held here, such as a
        share of a budget. It runs just before the job is marked failed; an error it raises is logged."""
        return None  # optional: by default a failed job holds nothing

    def before_rerun(self, ctx: JobContext, job: JobView) -> None:
        """Called when ``job``, failed or cancelled, is about to be put back to pending to run again (a re-run of
        a step's failed children, or a bulk re-run): take back here what :meth:`after_failure` gave back, such
        as the job's share of a budget or its place in a seen-set, so that it can do its work again. It runs in
        the transaction that resets the job (statements on ``ctx.db`` commit or roll back with it); raising
        refuses the whole re-run with the error's message."""
        return None  # optional: by default a job needs nothing back to run again


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

    def describe(self) -> dict[str, Any]:
        """The action as JSON-ready data: name, plugin, description, job types and options schema."""
        return {"name": self.name, "plugin": self.plugin, "description": self.description,
                "workers": [w.worker_type for w in self.workers], "options": self.options.model_json_schema()}
