"""JobDefinitionOrchestrator: runs an execution's steps in order, each through its action's StepManager.

An execution is a root job (type ``parent``) whose payload holds a snapshot of the definition and where it
is: the current step, the step jobs so far, the retries used. That payload is the only state, so a
restarted server picks up every running execution where it was (:meth:`resume`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from quaero.engine.contexts import ContextFactory
from quaero.engine.monitor import JobMonitor
from quaero.engine.readiness import not_runnable
from quaero.engine.steps import Steps
from quaero.errors import Conflict, NotFound, QuaeroError
from quaero.registry import Registry
from quaero.stores.definition_store import DefinitionStore
from quaero.stores.definitions import JobDefinition, validate_definition
from quaero.stores.events import JOB_STATUS_CHANGE, Event, EventBus
from quaero.stores.jobs import JobManager, Transition
from quaero.stores.logs import JobLogWriter
from quaero.stores.models import TERMINAL_STATUSES, Job

log = logging.getLogger(__name__)


class JobDefinitionOrchestrator:
    """Turns executions of definitions into root jobs and advances them step by step."""

    def __init__(self, *, jobs: JobManager, logs: JobLogWriter, definitions: DefinitionStore, registry: Registry,
                 bus: EventBus, monitor: JobMonitor, steps: Steps, contexts: ContextFactory, default_timeout: float,
                 on_cancelled: Callable[[list[str]], None] | None = None) -> None:
        self.jobs = jobs
        self.logs = logs
        self.definitions = definitions
        self.registry = registry
        self.monitor = monitor
        self.steps = steps
        self.contexts = contexts
        self.default_timeout = default_timeout
        self.on_cancelled = on_cancelled or (lambda ids: None)
        self._tasks: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="quaero-orchestrator", daemon=True)
        self._unsubscribe = bus.subscribe(self._on_event, [JOB_STATUS_CHANGE])

    def start(self) -> None:
        self._thread.start()

    # ------------------------------------------------------------------ public operations
    def execute(self, definition: str | JobDefinition, *, trigger: str = "api") -> str:
        """Start an execution; returns the root job id at once (steps start in the background)."""
        if isinstance(definition, str):
            record, definition = self.definitions.get(definition)
            if not record.enabled:
                raise Conflict(f"job definition {definition.id!r} is disabled; enable it before executing it")
        reasons = not_runnable(definition, self.registry, self.contexts)
        if reasons:
            raise Conflict(f"job definition {definition.id!r} cannot run: {'; '.join(reasons)}",
                           detail={"not_runnable": reasons})
        jobs = self.jobs
        root = jobs.create_job(
            "parent", definition.name, phase="orchestration", definition_id=definition.id,
            payload={"definition": definition.to_dict(), "trigger": trigger, "step_index": 0, "step_jobs": [],
                     "retries": {}, "timeout": definition.timeout or self.default_timeout},
        )
        jobs.transition(root.id, "running")
        self.logs.write(root.id, "info", f"execution of {definition.id!r} started ({trigger}), "
                                 f"{len(definition.steps)} step(s)")
        self._submit(self._start_step, root.id, 0)
        return root.id

    def rerun(self, job_id: str) -> str:
        """Start a fresh execution of the definition that produced ``job_id``."""
        job = self.jobs.get(job_id)
        root = self.jobs.get(job.root_id or job.id)
        if root.definition_id is None:
            raise Conflict(f"job {job_id} was not started from a job definition: there is none to run again")
        try:
            return self.execute(root.definition_id, trigger=f"rerun of {root.id}")
        except NotFound:
            # The definition was deleted since: run the snapshot the execution kept.
            snapshot = self._definition(root)
            return self.execute(snapshot, trigger=f"rerun of {root.id}")

    def cancel(self, job_id: str) -> list[str]:
        """Cancel a job and its unfinished descendants; returns the running ones that were signalled."""
        job = self.jobs.get(job_id)
        if job.is_terminal:
            raise Conflict(f"job {job_id} is already {job.status}")
        running = self.jobs.cancel(job_id, reason="cancelled by request")
        self.logs.write(job_id, "warn", "cancelled by request")
        self.on_cancelled(running)
        if job.parent_id:
            self.monitor.watch(job.parent_id)
        return running

    def resume(self) -> None:
        """Pick up every execution left running (after a restart)."""
        for root in self.jobs.running_roots():
            self._submit(self._resume_root, root.id)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until queued orchestration work is done (tests, the CLI)."""
        done = threading.Event()
        self._submit(lambda: done.set())
        done.wait(timeout)

    # ------------------------------------------------------------------ internals
    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._tasks.put((fn, args))

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, args = task
            try:
                fn(*args)
            except Exception:
                log.exception("orchestration step %s%r failed", getattr(fn, "__name__", fn), args)

    def _on_event(self, event: Event) -> None:
        payload = event.payload
        if payload.get("job_type") == "step" and payload.get("status") in TERMINAL_STATUSES:
            self._submit(self._step_finished, payload["parent_id"], payload["job_id"])

    def _definition(self, root: Job) -> JobDefinition:
        return validate_definition(root.data["definition"], self.registry,
                                   origin=f"execution {root.id}")

    def _save_state(self, root: Job, **state: Any) -> None:
        self.jobs.update_payload(root.id, **state)

    def _start_step(self, root_id: str, index: int) -> None:
        jobs = self.jobs
        root = jobs.get(root_id)
        if root.is_terminal:
            return
        try:
            definition = self._definition(root)
        except QuaeroError as exc:
            self._finish(root, "failed", f"the definition no longer validates: {exc}")
            return
        if index >= len(definition.steps):
            self._finish(root, "completed", None)
            return
        step = definition.steps[index]
        action = self.registry.actions.get(step.action)
        try:
            if action is None:
                raise QuaeroError(f"no installed plugin provides action {step.action!r}")
            change = self._create_step(action, step, definition, root, index)
        except Exception as exc:
            log.exception("step %r of %s could not start", step.name, root_id)
            self.logs.write(root_id, "error", f"step {step.name!r} could not start: {exc}")
            self._save_state(root, step_index=index)
            self._after_step(jobs.get(root_id), definition, index, "failed", str(exc))
            return
        jobs.publish_status(change)
        self.logs.write(root_id, "info", f"step {index + 1}/{len(definition.steps)} "
                                 f"{step.name!r} ({step.action}) started as {change.job_id}")
        self.monitor.watch(change.job_id)
        if jobs.get(root_id).is_terminal:  # cancelled while the step was being created
            self.on_cancelled(jobs.cancel(change.job_id, reason="cancelled: the execution was cancelled"))

    def _create_step(self, action: Any, step: Any, definition: JobDefinition, root: Job,
                     index: int) -> Transition:
        """Create the step's parent job, let its manager create the first children, record the step in the
        execution's state and start it: all in one transaction.

        All or nothing: a crash anywhere in between leaves either no trace of the step, which a resumed
        execution starts afresh, or the step recorded and running; never a step that the execution does not
        know, whose children run while a second one is started in its place. The children's messages go
        out once the transaction commits.
        """
        jobs = self.jobs
        step_job: Job | None = None
        try:
            with jobs.database.write():
                step_job = self.steps.create(step, definition, root.id)
                action.manager.start_step(self.contexts.step_context(step_job))
                self._save_state(root, step_index=index, step_jobs=[*root.data.get("step_jobs", []), step_job.id])
                change = jobs.transition(step_job.id, "running", allowed_from=("pending",), publish=False)
                assert change is not None  # created pending in this very transaction
        except BaseException:
            if step_job is not None:
                self.steps.forget(step_job.id)  # rolled back: it never existed
            raise
        return change

    def _step_finished(self, root_id: str, step_job_id: str) -> None:
        jobs = self.jobs
        root = jobs.find(root_id)
        if root is None or root.is_terminal or root.type != "parent":
            return
        step_jobs = root.data.get("step_jobs", [])
        if step_job_id in root.data.get("reopened", []):
            self._reopened_step_finished(root, step_job_id)
            return
        if not step_jobs or step_jobs[-1] != step_job_id:
            return  # an old attempt's step, or already handled
        step_job = jobs.get(step_job_id)
        if step_job.data.get("handled"):
            return
        jobs.update_payload(step_job_id, handled=True)
        definition = self._definition(root)
        self._after_step(root, definition, root.data.get("step_index", 0), step_job.status, step_job.error_message)

    def _after_step(self, root: Job, definition: JobDefinition, index: int, status: str, error: str | None) -> None:
        step = definition.steps[index]
        if status == "completed":
            self._submit(self._start_step, root.id, index + 1)
            return
        reason = error or f"step was {status}"
        retries = dict(root.data.get("retries", {}))
        used = retries.get(str(index), 0)
        if step.on_error == "retry" and used < step.max_retries:
            retries[str(index)] = used + 1
            self._save_state(root, retries=retries)
            self.logs.write(root.id, "warn", f"step {step.name!r} {status} ({reason}); "
                                     f"retry {used + 1} of {step.max_retries}")
            self._submit(self._start_step, root.id, index)
        elif step.on_error == "continue":
            self.logs.write(root.id, "warn", f"step {step.name!r} {status} ({reason}); continuing")
            self._submit(self._start_step, root.id, index + 1)
        else:
            self._finish(root, "failed", f"step {step.name!r} {status}: {reason}")

    def _reopened_step_finished(self, root: Job, step_job_id: str) -> None:
        """An earlier step whose failed children ran again (engine/recovery.py) is done: once no reopened step
        is left and the last step is done too, the execution ends again, as it had ended (or as its last step
        decided meanwhile)."""
        left = [step for step in root.data.get("reopened", []) if step != step_job_id]
        self._save_state(root, reopened=left)
        if left:
            return
        root = self.jobs.get(root.id)
        deferred = root.data.get("deferred_finish")
        step_jobs = root.data.get("step_jobs", [])
        last = self.jobs.find(step_jobs[-1]) if step_jobs else None
        if deferred:
            self._finish(root, deferred[0], deferred[1])
        elif last is None or (last.is_terminal and last.data.get("handled")):
            before = root.data.get("reopened_from") or {}
            self._finish(root, before.get("status", "completed"), before.get("error"))

    def _finish(self, root: Job, status: str, error: str | None) -> None:
        if self.jobs.get(root.id).data.get("reopened"):
            # Earlier steps still re-run their failed children: the execution ends when they are done.
            self._save_state(root, deferred_finish=[status, error])
            return
        change = self.jobs.transition(root.id, status, allowed_from=("running",), error=error)
        if change is not None:
            self.logs.write(root.id, "info" if status == "completed" else "error",
                                     f"execution {status}" + (f": {error}" if error else ""))
            finished = self.jobs.get(root.id)
            self.monitor.publish_progress(root.id, status, self.jobs.counts(root.id), finished.result_count)

    def _resume_root(self, root_id: str) -> None:
        jobs = self.jobs
        root = jobs.get(root_id)
        if root.is_terminal:
            return
        if root.status == "pending":
            jobs.transition(root_id, "running", allowed_from=("pending",))
        step_jobs = root.data.get("step_jobs", [])
        index = root.data.get("step_index", 0)
        if len(step_jobs) <= index:
            # The server stopped before the current step's parent was recorded: start it (again).
            self._start_step(root_id, index)
            return
        current = jobs.find(step_jobs[-1])
        if current is None:
            self._start_step(root_id, index)
        elif current.is_terminal:
            self._step_finished(root_id, current.id)
        else:
            if current.status == "pending":
                jobs.transition(current.id, "running", allowed_from=("pending",))
            self.monitor.watch(current.id)

    def close(self) -> None:
        self._unsubscribe()
        self._tasks.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

