"""Steps: the core creates each step's parent job, and keeps what its children keep asking about it.

A step's payload holds what every one of its jobs needs: the action, the validated options as JSON, the
definition's id, name, tags, ``base_url`` and ``auth_id``, the error tolerance and the ``max_depth``.
Children ask for their step constantly (once per job at least), so steps are cached per process, with
their options validated once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from quaero.api.credentials import Credentials
from quaero.api.jobs import DefinitionInfo, JobView
from quaero.registry import Registry
from quaero.stores.definitions import JobDefinition, JobStep
from quaero.stores.jobs import JobManager, job_view
from quaero.stores.models import Job

CACHED_STEPS = 256


@dataclass(frozen=True)
class Step:
    """A step parent with what its jobs need, decoded once."""

    job: Job
    view: JobView
    action: str
    plugin: str
    options: Any
    definition: DefinitionInfo
    #: Credentials by auth id, read once per step and process (a crawl asks for them on every page).
    credentials: dict[str, Credentials] = field(default_factory=dict, compare=False)


def definition_info(job_def: JobDefinition) -> dict[str, Any]:
    """What a step keeps of its definition, as JSON-ready data."""
    return {"id": job_def.id, "name": job_def.name, "tags": list(job_def.tags), "base_url": job_def.base_url,
            "auth_id": job_def.auth_id, "source_type": job_def.source_type}


class Steps:
    """Creates step parents and looks them up (cached) for their children."""

    def __init__(self, jobs: JobManager, registry: Registry) -> None:
        self.jobs = jobs
        self.registry = registry
        self._cache: OrderedDict[str, Step] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, step: JobStep, job_def: JobDefinition, root_id: str) -> Job:
        """Create a step's parent job under the execution's root; its payload keeps the step's options."""
        root = self.jobs.get(root_id)
        options = step.options.model_dump(mode="json") if step.options is not None else step.config
        payload = {"action": step.action, "step": step.name, "config": options,
                   "definition": definition_info(job_def), "error_tolerance": job_def.error_tolerance.model_dump()}
        return self.jobs.create_job("step", step.name, parent=root, payload=payload, phase="orchestration")

    def of(self, job: Job | JobView) -> Step:
        """The step ``job`` belongs to (``job`` itself when it is a step parent)."""
        step_id = job.id if job.type == "step" else job.parent_id
        if step_id is None:
            raise ValueError(f"job {job.id} ({job.type}) belongs to no step")
        with self._lock:
            cached = self._cache.get(step_id)
            if cached is not None:
                self._cache.move_to_end(step_id)
                return cached
        step = self._decode(job if isinstance(job, Job) and job.id == step_id else self.jobs.get(step_id))
        with self._lock:
            self._cache[step_id] = step
            while len(self._cache) > CACHED_STEPS:
                self._cache.popitem(last=False)
        return step

    def forget(self, step_id: str) -> None:
        """Drop a step from the cache (after its payload changed)."""
        with self._lock:
            self._cache.pop(step_id, None)

    def _decode(self, job: Job) -> Step:
        data = job.data
        action = self.registry.action(data["action"])
        options = action.options.model_validate(data.get("config", {}))
        info = data.get("definition") or {}
        definition = DefinitionInfo(
            id=info.get("id") or job.definition_id or "", name=info.get("name", ""),
            tags=tuple(info.get("tags") or ()), base_url=info.get("base_url"), auth_id=info.get("auth_id"),
            source_type=info.get("source_type", "web"))
        return Step(job, job_view(job), action.name, action.plugin, options, definition)
