"""Jobs as a plugin sees them: read-only views, the children it asks for, the definition a step runs for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A child job to create.

    ``type`` is the ``worker_type`` of the worker that executes it, ``name`` what the pages show, ``config``
    the job's own JSON-ready configuration (``job.config`` in the worker), and ``item_ref`` what the job works
    on (a URL, a document id), shown in the pages and sent in ``job_spawn`` events.
    """

    type: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    item_ref: str | None = None


@dataclass(frozen=True, slots=True)
class JobView:
    """One job, read-only: a snapshot taken when the context was made (it does not follow later changes).

    ``config`` is the job's configuration (a child's work item); ``result`` the figures the job reported with
    ``ctx.set_result`` (shown by the API and the job page). ``outcome`` is what a finished job came to
    (``saved``, ``skipped:robots``, ...: :mod:`quaero.api.outcomes`), ``waiting`` why a running job waits
    (``ctx.waiting``). Times are UTC epoch seconds.
    """

    id: str
    type: str
    name: str
    status: str
    parent_id: str | None = None
    root_id: str | None = None
    definition_id: str | None = None
    depth: int = 0
    attempts: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    item_ref: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    result_count: int = 0
    progress_current: int = 0
    progress_total: int = 0
    outcome: str | None = None
    waiting: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the job is completed, failed or cancelled."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class DefinitionInfo:
    """The job definition a step runs for: its id and name, and what it sets for every step.

    ``tags`` go on every document the step saves (the core adds them); ``auth_id`` names the stored
    credentials the definition's requests may use (``ctx.credentials_for``); ``base_url`` and
    ``source_type`` are the definition's own, for actions that want them.
    """

    id: str
    name: str
    tags: tuple[str, ...] = ()
    base_url: str | None = None
    auth_id: str | None = None
    source_type: str = "web"
