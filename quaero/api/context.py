"""What the core hands a plugin: a context per call, each with exactly what that call may do.

- :class:`PluginHost` in the ``startup`` hook: settings, migrations, the plugin's state.
- :class:`StepContext` in :meth:`StepManager.start_step`: the step that starts, its first children.
- :class:`JobContext` in :meth:`JobWorker.execute`: one job's work, results and children.
- :class:`ReadinessContext` in :meth:`StepManager.readiness`: the definition, its credentials.
- :class:`PluginContext` (what the others share) in :meth:`StepManager.stats` and in web routes.

The core implements them; a plugin only calls them. Every method is safe to call from the worker
threads of any worker process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from quaero.api.credentials import Credentials
from quaero.api.database import Migration, PluginDatabase
from quaero.api.documents import DocumentInput, Documents, FullTextIndex, SaveResult
from quaero.api.embeddings import EmbeddingIndex
from quaero.api.jobs import ChildSpec, DefinitionInfo, JobView
from quaero.api.maintenance import DatabaseMaintenance
from quaero.api.outbound import RateReservation
from quaero.api.settings import PluginSettings

SettingsT = TypeVar("SettingsT", bound=PluginSettings)


class PluginContext(ABC):
    """What every context offers: the plugin's settings and state, the documents, the plugin's tables."""

    @property
    @abstractmethod
    def plugin(self) -> str:
        """The name of the plugin this context is for."""

    @property
    @abstractmethod
    def settings(self) -> Any:
        """The plugin's validated settings (its ``configure`` model), or ``None`` when it declared none."""

    @property
    @abstractmethod
    def state(self) -> Any:
        """What the plugin's ``startup`` hook returned in this process (``None`` without one)."""

    @property
    @abstractmethod
    def documents(self) -> Documents:
        """Read-only queries of the knowledge base."""

    @property
    @abstractmethod
    def db(self) -> PluginDatabase:
        """The database, for the plugin's own tables, with :meth:`PluginDatabase.transaction`."""

    @property
    @abstractmethod
    def full_text(self) -> FullTextIndex:
        """The documents' full-text index: checked, rebuilt, optimised."""

    @property
    def embeddings(self) -> EmbeddingIndex:
        """The documents' vectors (search by meaning): checked, and filled in (API 1.5)."""
        raise NotImplementedError("this context offers no embeddings")

    @property
    @abstractmethod
    def maintenance(self) -> DatabaseMaintenance:
        """Housekeeping of the core's database (vacuum, analyze, prune, ...)."""

    @property
    @abstractmethod
    def http(self) -> httpx.Client:
        """The process's outbound HTTP client (see :mod:`quaero.api.outbound`): make every request with it.

        Pooled and shared by every thread; redirects are not followed, nothing is taken from the
        environment (proxies, netrc), no cookie is kept between requests. Give each request its
        ``timeout=``; do not close it.
        """

    @abstractmethod
    def outbound_refusal(self, url: str) -> str | None:
        """Why the outbound policy refuses requests to ``url`` as far as can be told without a DNS lookup
        (its host is a refused address, or ``localhost`` while loopback is refused); ``None`` otherwise.

        A cheap early check for :meth:`StepManager.readiness`; the policy itself is enforced on every
        connection :attr:`http` makes (:class:`quaero.api.outbound.OutboundRefused`).
        """

    @abstractmethod
    def rate_limit(self, bucket: str, *, requests_per_minute: int | None = None,
                   tokens_per_minute: int | None = None, tokens: int = 0) -> RateReservation:
        """Wait until one more request of ``tokens`` fits ``bucket``'s limits over the last 60 seconds, and
        count it; the limits hold across every thread, process and machine that shares the database.

        Settle the returned reservation with the tokens the request really used. In a job the wait ends
        with :class:`quaero.api.JobCancelled` as soon as the job is cancelled. Only a hash of ``bucket``
        is stored.
        """

    @abstractmethod
    def children(self, job_id: str, *, status: str | None = None, limit: int = 100,
                 offset: int = 0) -> list[JobView]:
        """The direct children of a job, oldest first."""

    @abstractmethod
    def get_job(self, job_id: str) -> JobView:
        """One job; :class:`quaero.api.NotFound` if it does not exist."""


class ReadinessContext(PluginContext):
    """Given to :meth:`StepManager.readiness`: the definition a step belongs to, before anything runs."""

    @property
    @abstractmethod
    def definition(self) -> DefinitionInfo:
        """The definition the step is part of: id, name, tags, ``base_url``, ``auth_id``."""

    @abstractmethod
    def credentials_for(self, url: str, *, auth_id: str | None = None) -> Credentials | None:
        """The stored credentials a request to ``url`` could carry (as :meth:`StepContext.credentials_for`).

        Raises :class:`quaero.api.NotFound` when ``auth_id`` (default: the definition's) names none.
        """


class _StepWork(PluginContext):
    """What a step's manager and its workers share."""

    @property
    @abstractmethod
    def step(self) -> JobView:
        """The step's parent job (created by the core before the manager starts)."""

    @property
    @abstractmethod
    def options(self) -> Any:
        """The step's validated options: an instance of the action's ``options`` model."""

    @property
    @abstractmethod
    def definition(self) -> DefinitionInfo:
        """The definition the step runs for: id, name, tags, ``base_url``, ``auth_id``."""

    @abstractmethod
    def log(self, level: str, message: str, **metadata: Any) -> None:
        """Write a line to this job's log (``debug``, ``info``, ``warn`` or ``error``).

        ``metadata`` (JSON-ready values) travels with the line's ``job_log`` event, for live clients;
        ``debug`` lines are kept only when the server's log level is ``DEBUG``.
        """

    @abstractmethod
    def spawn_many(self, specs: Sequence[ChildSpec], *, depth: int | None = None) -> list[str]:
        """Create child jobs of the step and queue them; returns their ids in order.

        ``depth`` defaults to 0 for a manager and to this job's depth + 1 for a worker. Past the step's
        ``max_depth`` (see :meth:`StepContext.set_max_depth`) nothing is created and ``[]`` is returned.
        Inside ``db.transaction()`` the jobs are created in that transaction and queued once it commits.
        """

    def spawn(self, child_type: str, child_name: str, config: dict[str, Any] | None = None, *,
              item_ref: str | None = None) -> str | None:
        """Create and queue one child (see :meth:`spawn_many`); ``None`` past the step's ``max_depth``."""
        ids = self.spawn_many([ChildSpec(child_type, child_name, config or {}, item_ref)])
        return ids[0] if ids else None

    @abstractmethod
    def credentials_for(self, url: str, *, auth_id: str | None = None) -> Credentials | None:
        """The stored credentials a request to ``url`` may carry: those of ``auth_id`` (default: the
        definition's), when ``url`` has their ``base_url``'s scheme, host and port and a path under its path
        (:meth:`Credentials.applies_to`); ``None`` otherwise. Ask again for every URL, each redirect hop
        included: what applies to one page does not apply to the page it redirects to.

        Raises :class:`quaero.api.NotFound` when the ``auth_id`` names no stored credentials.
        """

    @abstractmethod
    def set_result(self, **figures: Any) -> None:
        """Merge JSON-ready figures into this job's result, which the API and the job page show."""


class StepContext(_StepWork):
    """Given to :meth:`StepManager.start_step`: the step has been created; create its first children."""

    @abstractmethod
    def set_max_depth(self, max_depth: int | None) -> None:
        """Limit how deep children may be spawned below the step (``None``: no limit)."""


class JobContext(_StepWork):
    """Given to :meth:`JobWorker.execute` with the job it runs."""

    @property
    @abstractmethod
    def job(self) -> JobView:
        """The job being executed (the same as ``execute``'s ``job`` argument)."""

    @abstractmethod
    def progress(self, activity: str, *, current_item: str | None = None, current: int | None = None,
                 total: int | None = None) -> None:
        """Say what the job is doing now (a ``task_progress`` event); ``current``/``total`` are stored."""

    @abstractmethod
    def waiting(self, reason: str | None) -> None:
        """Say that the job waits instead of working, and for what (``"per-host slot for example.com"``);
        ``None`` when it works again. The pages and the API show the job as waiting, apart from the running
        ones, until then (or until it finishes).

        Call it only when a wait really happens: setting it is a write, clearing it is one only when it was
        set. :meth:`progress` and :meth:`save_document` clear it too.
        """

    @abstractmethod
    def set_outcome(self, outcome: str, *, reason: str | None = None) -> None:
        """Record what the job came to (:mod:`quaero.api.outcomes`): ``saved``, ``unchanged``, ``skipped``
        with a ``reason`` (``robots``, ``noindex``, ``duplicate``, ``not_html``, ``http_404``, ...), or
        ``failed`` (a failed job gets it anyway; a reason says why).

        Stored with the job's last status change (no write of its own); the last call wins. The job page
        shows it as a badge and filters children by it; ``GET /api/jobs/{id}/children?outcome=`` too. A
        completed job that sets none has none. :class:`ValueError` for an unknown outcome or a bad reason.
        """

    @abstractmethod
    def save_document(self, document: DocumentInput) -> SaveResult:
        """Save a document: created, updated when any stored field differs, or left as it is.

        The definition's tags are added to the document's. A document the job saved for the first time
        (created, changed, or found as it was but saved last by another job) counts as one result of the
        job, its step and its execution. Inside ``db.transaction()`` it commits with it.
        """

    @abstractmethod
    def update_document(self, doc_id: int, *, keywords: list[str] | None = None, summary: str | None = None,
                        metadata: dict[str, Any] | None = None,
                        if_content_hash: str | None = None) -> SaveResult:
        """Change some fields of a stored document and leave the rest as they are (enrichment).

        ``metadata`` is merged into the document's, key by key (a ``None`` value removes the key). The
        document's ``updated_at`` (when its content last changed) and who saved it stay as they are.
        ``if_content_hash`` makes the change conditional: when the document's body changed since it was
        read (its ``content_hash`` differs), nothing is written and :class:`quaero.api.Conflict` is raised.
        Raises :class:`quaero.api.NotFound` when the document is gone. A change is announced like a save.
        """

    @abstractmethod
    def stop_step(self, reason: str) -> int:
        """End the step early: cancel its children that have not started, and record ``reason`` on the
        step (its log and its result's ``stopped``). Jobs already running finish. Returns how many were
        cancelled; use it when going on cannot succeed (a quota is exhausted, a budget is spent)."""

    @property
    @abstractmethod
    def cancelled(self) -> bool:
        """True once someone cancelled this job (or its step or execution)."""

    @abstractmethod
    def check_cancelled(self) -> None:
        """Raise :class:`quaero.api.JobCancelled` if the job was cancelled; call it between units of work."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait, but raise :class:`quaero.api.JobCancelled` as soon as the job is cancelled."""


class PluginHost(ABC):
    """Given to the ``startup`` hook, once per process, before any job of the plugin runs."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The plugin's name (its entry point's name)."""

    @property
    @abstractmethod
    def db(self) -> PluginDatabase:
        """The database, to prepare the plugin's state."""

    @property
    @abstractmethod
    def data_dir(self) -> Path:
        """A directory of the plugin's own under the data directory (created when first asked for)."""

    @abstractmethod
    def configure(self, model: type[SettingsT]) -> SettingsT:
        """Validate the plugin's settings (``[plugins.NAME]`` in ``quaero.toml``, then the
        ``QUAERO_PLUGIN_<NAME>_<KEY>`` environment) with ``model``; returns them, and ``ctx.settings`` gives
        them from then on. A bad value stops the plugin with a :class:`quaero.api.ConfigError` naming it."""

    @abstractmethod
    def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        """Bring the plugin's tables to the newest of ``migrations``; returns the versions applied now."""
