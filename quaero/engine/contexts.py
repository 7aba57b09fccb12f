"""The core's side of the plugin API: the contexts managers, workers and routes are handed.

:class:`ContextFactory` holds the collaborators (stores, spawner, plugins' states) and makes one context
per call. Plugins see only the abstract classes of :mod:`quaero.api.context`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from quaero.api.context import JobContext, PluginContext, ReadinessContext, StepContext
from quaero.api.credentials import Credentials
from quaero.api.database import PluginDatabase
from quaero.api.documents import DocumentInput, Documents, FullTextIndex, SaveResult
from quaero.api.embeddings import EmbeddingIndex
from quaero.api.jobs import ChildSpec, DefinitionInfo, JobView
from quaero.api.maintenance import DatabaseMaintenance
from quaero.api.outbound import RateReservation
from quaero.api.outcomes import outcome_text
from quaero.engine.outbound import Outbound
from quaero.engine.plugin_host import Plugins
from quaero.engine.spawner import JobSpawner
from quaero.engine.steps import Step, Steps
from quaero.errors import JobCancelled
from quaero.stores.credentials import CredentialStore
from quaero.stores.db import Database
from quaero.stores.documents import DocumentStore
from quaero.stores.events import RESULT_SAVED, TASK_PROGRESS, EventBus, iso
from quaero.stores.jobs import JobManager, job_view
from quaero.stores.logs import JobLogWriter
from quaero.stores.models import Job


class ContextFactory:
    """Everything the contexts reach, gathered once per process."""

    def __init__(self, *, database: Database, jobs: JobManager, logs: JobLogWriter, documents: DocumentStore,
                 reader: Documents, credentials: CredentialStore, spawner: JobSpawner, steps: Steps,
                 plugins: Plugins, bus: EventBus, tables: PluginDatabase, full_text: FullTextIndex,
                 maintenance: DatabaseMaintenance, outbound: Outbound,
                 embeddings: EmbeddingIndex | None = None) -> None:
        self.database = database
        self.jobs = jobs
        self.logs = logs
        self.documents = documents
        self.reader = reader
        self.credentials = credentials
        self.spawner = spawner
        self.steps = steps
        self.plugins = plugins
        self.bus = bus
        self.tables = tables
        self.full_text = full_text
        self.maintenance = maintenance
        self.outbound = outbound
        self.embeddings = embeddings

    def plugin_context(self, plugin: str) -> PluginContext:
        """A context for what a plugin does outside a job (its manager's ``stats``, its routes)."""
        return BaseContext(self, plugin)

    def readiness_context(self, plugin: str, definition: DefinitionInfo) -> CoreReadinessContext:
        """The context in which a plugin says whether a step of ``definition`` could run now."""
        return CoreReadinessContext(self, plugin, definition)

    def step_context(self, step_job: Job) -> CoreStepContext:
        """The context of a step that starts (its parent job exists; its children do not yet)."""
        return CoreStepContext(self, self.steps.of(step_job))

    def job_context(self, job: JobView) -> CoreJobContext:
        """The context of one job that runs."""
        return CoreJobContext(self, self.steps.of(job), job)


class BaseContext(PluginContext):
    """What every context offers; the plugin's settings and state come from its start-up."""

    def __init__(self, factory: ContextFactory, plugin: str) -> None:
        self._f = factory
        self._plugin = plugin

    @property
    def plugin(self) -> str:
        return self._plugin

    @property
    def settings(self) -> Any:
        return self._f.plugins.record(self._plugin).settings

    @property
    def state(self) -> Any:
        return self._f.plugins.record(self._plugin).state

    @property
    def documents(self) -> Documents:
        return self._f.reader

    @property
    def db(self) -> PluginDatabase:
        return self._f.tables

    @property
    def full_text(self) -> FullTextIndex:
        return self._f.full_text

    @property
    def embeddings(self) -> EmbeddingIndex:
        if self._f.embeddings is None:
            raise NotImplementedError("this process offers no embeddings")
        return self._f.embeddings

    @property
    def maintenance(self) -> DatabaseMaintenance:
        return self._f.maintenance

    @property
    def http(self) -> httpx.Client:
        return self._f.outbound.client

    def outbound_refusal(self, url: str) -> str | None:
        return self._f.outbound.policy.url_refusal(url)

    def rate_limit(self, bucket: str, *, requests_per_minute: int | None = None,
                   tokens_per_minute: int | None = None, tokens: int = 0) -> RateReservation:
        return self._f.outbound.admit(bucket, requests_per_minute=requests_per_minute,
                                      tokens_per_minute=tokens_per_minute, tokens=tokens, wait=self._wait)

    def _wait(self, seconds: float) -> None:
        """How a rate-limited caller waits (a job's wait ends when it is cancelled)."""
        time.sleep(seconds)

    def children(self, job_id: str, *, status: str | None = None, limit: int = 100,
                 offset: int = 0) -> list[JobView]:
        return [job_view(job) for job in self._f.jobs.children(job_id, status=status, limit=limit, offset=offset)]

    def get_job(self, job_id: str) -> JobView:
        return job_view(self._f.jobs.get(job_id))


def find_credentials(factory: ContextFactory, cache: dict[str, Credentials], url: str,
                     auth_id: str | None) -> Credentials | None:
    """The credentials ``auth_id`` names when they apply to ``url`` (read once per ``cache``)."""
    if not auth_id:
        return None
    credentials = cache.get(auth_id)
    if credentials is None:
        credentials = cache[auth_id] = factory.credentials.get(auth_id)
    return credentials if credentials.applies_to(url) else None


class CoreReadinessContext(BaseContext, ReadinessContext):
    """The core's :class:`ReadinessContext`."""

    def __init__(self, factory: ContextFactory, plugin: str, definition: DefinitionInfo) -> None:
        super().__init__(factory, plugin)
        self._definition = definition
        self._credentials: dict[str, Credentials] = {}

    @property
    def definition(self) -> DefinitionInfo:
        return self._definition

    def credentials_for(self, url: str, *, auth_id: str | None = None) -> Credentials | None:
        return find_credentials(self._f, self._credentials, url, auth_id or self._definition.auth_id)


class _StepWorkBase(BaseContext):
    """What a step's manager and its workers share."""

    def __init__(self, factory: ContextFactory, step: Step, job: JobView) -> None:
        super().__init__(factory, step.plugin)
        self._step = step
        self._job = job

    @property
    def step(self) -> JobView:
        return self._step.view

    @property
    def options(self) -> Any:
        return self._step.options

    @property
    def definition(self) -> DefinitionInfo:
        return self._step.definition

    def log(self, level: str, message: str, **metadata: Any) -> None:
        self._f.logs.write(self._job.id, level, message, **metadata)

    def _default_depth(self) -> int:
        return 0

    def spawn_many(self, specs: Sequence[ChildSpec], *, depth: int | None = None) -> list[str]:
        depth = self._default_depth() if depth is None else depth
        max_depth = self._max_depth()
        if max_depth is not None and depth > max_depth:
            return []
        discovered_by = None if self._job.id == self._step.job.id else self._job.id
        return self._f.spawner.spawn_children(self._step.job, list(specs), depth=depth, discovered_by=discovered_by)

    def _max_depth(self) -> int | None:
        return self._step.job.data.get("max_depth")

    def credentials_for(self, url: str, *, auth_id: str | None = None) -> Credentials | None:
        return find_credentials(self._f, self._step.credentials, url, auth_id or self._step.definition.auth_id)

    def set_result(self, **figures: Any) -> None:
        self._f.jobs.merge_result(self._job.id, figures)


class CoreStepContext(_StepWorkBase, StepContext):
    """The core's :class:`StepContext`: the manager works on the step job itself."""

    def __init__(self, factory: ContextFactory, step: Step) -> None:
        super().__init__(factory, step, step.view)
        self._limit: int | None = step.job.data.get("max_depth")

    def set_max_depth(self, max_depth: int | None) -> None:
        self._f.jobs.update_payload(self._step.job.id, max_depth=max_depth)
        self._f.steps.forget(self._step.job.id)
        self._limit = max_depth

    def _max_depth(self) -> int | None:
        return self._limit


class CoreJobContext(_StepWorkBase, JobContext):
    """The core's :class:`JobContext` for one execution of one job."""

    def __init__(self, factory: ContextFactory, step: Step, job: JobView) -> None:
        super().__init__(factory, step, job)
        self.cancel_event = threading.Event()
        #: What the job came to (``ctx.set_outcome``), stored by the processor with its last transition.
        self.outcome: str | None = None
        self._waiting = False

    @property
    def job(self) -> JobView:
        return self._job

    def _default_depth(self) -> int:
        return self._job.depth + 1

    def progress(self, activity: str, *, current_item: str | None = None, current: int | None = None,
                 total: int | None = None) -> None:
        if current is not None and total is not None:
            self._f.jobs.set_progress(self._job.id, current, total)
        if self._waiting:
            self.waiting(None)
        self._f.bus.publish(TASK_PROGRESS, {
            "job_id": self._job.id, "parent_id": self._job.parent_id, "status": "running",
            "job_type": self._job.type, "current_item": current_item or self._job.name,
            "current_activity": activity, "depth": self._job.depth, "timestamp": iso(),
        })

    def waiting(self, reason: str | None) -> None:
        if reason is None and not self._waiting:
            return  # nothing to clear: no write on the hot path
        self._f.jobs.set_waiting(self._job.id, reason)
        self._waiting = reason is not None
        if reason is not None:
            self._f.bus.publish(TASK_PROGRESS, {
                "job_id": self._job.id, "parent_id": self._job.parent_id, "status": "running",
                "job_type": self._job.type, "current_item": self._job.name,
                "current_activity": f"waiting for {reason}", "depth": self._job.depth, "timestamp": iso(),
            })

    def set_outcome(self, outcome: str, *, reason: str | None = None) -> None:
        self.outcome = outcome_text(outcome, reason)

    def save_document(self, document: DocumentInput) -> SaveResult:
        if self._waiting:
            self.waiting(None)
        step = self._step.job
        extra = [tag for tag in self._step.definition.tags if tag not in document.tags]
        if extra:  # the definition's tags go on every document its steps save
            document = DocumentInput(**{**document.__dict__, "tags": [*document.tags, *extra]})
        with self._f.database.write():  # the document and its count, together
            result = self._f.documents.upsert(document, job_id=self._job.id)
            if result.first_for_job:  # the job's own count, its step's and its execution's: child first
                self._f.jobs.add_results(*dict.fromkeys(filter(None, (self._job.id, step.id, step.parent_id))))
        if result.changed:
            self._announce(result, document.title, document.source_ref)
        return result

    def update_document(self, doc_id: int, *, keywords: list[str] | None = None, summary: str | None = None,
                        metadata: dict[str, Any] | None = None,
                        if_content_hash: str | None = None) -> SaveResult:
        result, title, source_ref = self._f.documents.update_fields(
            doc_id, keywords=keywords, summary=summary, metadata=metadata, if_content_hash=if_content_hash)
        if result.changed:
            self._announce(result, title, source_ref)
        return result

    def _announce(self, result: SaveResult, title: str, source_ref: str) -> None:
        self._f.bus.publish(RESULT_SAVED, {
            "result_id": str(result.id), "job_id": self._job.id, "parent_job_id": self._job.parent_id,
            "title": title, "item_reference": source_ref, "created": result.created,
            "changed": list(result.changed), "timestamp": iso(),
        })

    def stop_step(self, reason: str) -> int:
        step_id = self._step.job.id
        cancelled = self._f.jobs.cancel_pending(step_id, reason=f"step stopped: {reason}")
        # Several jobs may find at once that going on is pointless: the first one's reason stands.
        with self._f.database.write():
            first = "stopped" not in self._f.jobs.get(step_id).data.get("result", {})
            if first:
                self._f.jobs.merge_result(step_id, {"stopped": reason})
        if first:
            self._f.logs.write(step_id, "warn", f"step stopped: {reason} ({cancelled} pending job(s) cancelled)")
        return cancelled

    def _wait(self, seconds: float) -> None:
        self.sleep(seconds)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled(f"job {self._job.id} was cancelled")

    def sleep(self, seconds: float) -> None:
        if self.cancel_event.wait(seconds):
            self.check_cancelled()
