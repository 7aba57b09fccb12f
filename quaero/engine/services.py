"""Services: the one object managers, workers, the web layer and the CLI reach the system through."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.message import Message

from quaero.stores.credentials import CredentialStore
from quaero.stores.db import Database
from quaero.stores.definition_store import DefinitionStore
from quaero.stores.documents import DocumentStore
from quaero.errors import PluginError
from quaero.stores.events import EventBus
from quaero.stores.logs import JobLogWriter
from quaero.stores.jobs import JobManager
from quaero.stores.models import Job, Models
from quaero.registry import Registry
from quaero.settings import Settings
from quaero.engine.spawner import JobSpawner

if TYPE_CHECKING:
    from quaero.broker import QueueInspector
    from quaero.stores.definitions import JobDefinition, JobStep

QUEUE_NAME = "quaero"


def actor_name(job_type: str) -> str:
    """The Dramatiq actor that executes jobs of ``job_type``."""
    return f"quaero.job.{job_type}"


class Services:
    """Job manager, document store, logs, spawner, events, plugins and queue of one process."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        models: Models,
        bus: EventBus,
        registry: Registry,
        broker: dramatiq.Broker,
        queue: QueueInspector,
    ) -> None:
        self.settings = settings
        self.database = database
        self.models = models
        self.bus = bus
        self.registry = registry
        self.broker = broker
        self.queue = queue
        self.jobs = JobManager(database, models, bus)
        self.logs = JobLogWriter(database, models, bus, keep_debug=settings.log_level == "DEBUG")
        self.documents = DocumentStore(database, models)
        self.definitions = DefinitionStore(database, models, registry)
        self.credentials = CredentialStore(database, models)
        self.spawner = JobSpawner(self)
        self._step_cache: OrderedDict[str, Job] = OrderedDict()
        self._step_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers for managers
    def create_step_job(
        self,
        step: JobStep,
        job_def: JobDefinition,
        parent_job_id: str,
        *,
        max_depth: int | None = None,
        **payload: Any,
    ) -> Job:
        """Create a step's parent job under the execution's root; its payload keeps the step's options."""
        root = self.jobs.get(parent_job_id)
        options = step.options.model_dump(mode="json") if step.options is not None else step.config
        data = {"action": step.action, "step": step.name, "config": options, "auth_id": job_def.auth_id,
                "tags": job_def.tags, "error_tolerance": job_def.error_tolerance.model_dump(), **payload}
        if max_depth is not None:
            data["max_depth"] = max_depth
        return self.jobs.create_job("step", step.name, parent=root, payload=data, phase="orchestration")

    def step_job(self, job: Job) -> Job:
        """The step parent a child job belongs to (cached: children ask for it constantly)."""
        parent_id = job.parent_id
        if parent_id is None:
            return job
        with self._step_lock:
            cached = self._step_cache.get(parent_id)
            if cached is not None:
                self._step_cache.move_to_end(parent_id)
                return cached
        parent = self.jobs.get(parent_id)
        with self._step_lock:
            self._step_cache[parent_id] = parent
            while len(self._step_cache) > 256:
                self._step_cache.popitem(last=False)
        return parent

    def step_options(self, job: Job) -> Any:
        """The typed options of the step ``job`` belongs to (validated once per step and cached)."""
        step = self.step_job(job)
        options = step.__dict__.get("_options")
        if options is None:
            action = self.registry.action(step.data["action"])
            options = step.__dict__["_options"] = action.options.model_validate(step.data.get("config", {}))
        return options

    # ------------------------------------------------------------------ queue
    def enqueue(self, job_type: str, job_ids: Sequence[str]) -> None:
        """Put one message per job on the queue, addressed to the actor of ``job_type``.

        The message id is the job id: a job has at most one live message, which makes a job's message
        easy to find again.
        """
        if self.registry.worker(job_type) is None:
            raise PluginError(f"no installed plugin executes jobs of type {job_type!r}")
        messages = [
            Message(queue_name=QUEUE_NAME, actor_name=actor_name(job_type), args=(job_id,), kwargs={},
                    options={}, message_id=job_id)
            for job_id in job_ids
        ]
        self.queue.enqueue_many(messages)

    def close(self) -> None:
        """Flush buffered writes."""
        self.logs.close()
