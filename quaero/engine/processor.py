"""JobProcessor: the Dramatiq actors that load a job, route it to its JobWorker and record the outcome.

One actor per job type (``quaero.job.<type>``) carries that worker's retry policy and time limit. The
processor never holds domain logic: it claims the job (a finished job's redelivered message does
nothing), runs the worker, and turns what happened into a status, log lines and, for a final failure, a
dead letter.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass

import dramatiq
from dramatiq.common import compute_backoff
from dramatiq.middleware import CurrentMessage, Interrupt, TimeLimitExceeded, raise_thread_exception

from quaero.api.actions import JobWorker
from quaero.engine.contexts import ContextFactory, CoreJobContext
from quaero.engine.queue import QUEUE_NAME, actor_name
from quaero.errors import JobCancelled, JobError
from quaero.registry import Registry
from quaero.settings import Settings
from quaero.stores.job_reads import job_view_of
from quaero.stores.jobs import JobManager
from quaero.stores.logs import JobLogWriter

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """Raised to Dramatiq after a job was marked failed for good: dead-letters its message quietly."""


class CancelInterrupt(Interrupt):
    """Raised inside a worker thread whose job was cancelled and did not stop on its own."""


@dataclass
class _Running:
    context: CoreJobContext
    thread_id: int
    executing: bool = True
    cancelled_at: float | None = None


class CancellationWatcher:
    """Tells running jobs of this process that they were cancelled, wherever the cancel came from.

    It asks the database every ``interval`` seconds which of this process's running jobs are cancelled,
    sets their context's cancel event, and interrupts a worker that has not stopped after ``grace``.
    """

    def __init__(self, jobs: JobManager, *, interval: float = 0.25, grace: float = 1.0) -> None:
        self.jobs = jobs
        self.interval = interval
        self.grace = grace
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quaero-cancel-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, context: CoreJobContext) -> _Running:
        entry = _Running(context, threading.get_ident())
        with self._lock:
            self._running[context.job.id] = entry
        return entry

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._running.pop(job_id, None)

    def signal(self, job_ids: list[str]) -> None:
        """Mark these jobs cancelled now (a cancel issued in this process)."""
        stamp = time.monotonic()
        with self._lock:
            for job_id in job_ids:
                entry = self._running.get(job_id)
                if entry is not None and entry.cancelled_at is None:
                    entry.cancelled_at = stamp
                    entry.context.cancel_event.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            with self._lock:
                ids = [job_id for job_id, entry in self._running.items() if entry.cancelled_at is None]
            try:
                if ids:
                    self.signal(self.jobs.cancelled_among(ids))
                self._interrupt_stragglers()
            except Exception:
                log.exception("cancellation watcher failed; retrying")

    def _interrupt_stragglers(self) -> None:
        now = time.monotonic()
        with self._lock:
            for entry in self._running.values():
                if entry.executing and entry.cancelled_at is not None and now - entry.cancelled_at > self.grace:
                    entry.executing = False  # interrupt once
                    raise_thread_exception(entry.thread_id, CancelInterrupt)

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


class JobProcessor:
    """Declares one actor per job type on the broker and processes their messages."""

    def __init__(self, broker: dramatiq.Broker, jobs: JobManager, logs: JobLogWriter, registry: Registry,
                 contexts: ContextFactory, settings: Settings) -> None:
        self.broker = broker
        self.jobs = jobs
        self.logs = logs
        self.registry = registry
        self.contexts = contexts
        self.settings = settings
        self.watcher = CancellationWatcher(jobs)

    def declare_actors(self) -> None:
        """Create the actors for every registered worker (idempotent)."""
        broker = self.broker
        if not any(isinstance(m, CurrentMessage) for m in broker.middleware):
            broker.add_middleware(CurrentMessage())
        for job_type, worker in self.registry.workers.items():
            name = actor_name(job_type)
            if name in broker.actors:
                continue
            limit = worker.time_limit or self.settings.time_limit

            def process(job_id: str, _type: str = job_type) -> None:
                self.process(_type, job_id)

            process.__name__ = name
            dramatiq.Actor(process, broker=broker, actor_name=name, queue_name=QUEUE_NAME, priority=0, options={
                "max_retries": worker.max_retries, "min_backoff": worker.min_backoff_ms,
                "max_backoff": worker.max_backoff_ms, "time_limit": int(limit * 1000), "throws": (JobFailed,),
            })

    def process(self, job_type: str, job_id: str) -> None:
        """Run one job's message: claim it, execute its worker, record the outcome."""
        jobs, logs = self.jobs, self.logs
        message = CurrentMessage.get_current_message()
        generation = message.options.get("generation", 0) if message is not None else None
        change = jobs.transition(job_id, "running", generation=generation)
        if change is None:
            # Finished, cancelled or deleted, or sent again meanwhile: a redelivered or superseded message
            # does nothing.
            return
        assert change.row is not None  # a transition returns the job's row
        row = change.row
        if change.old == "running":
            logs.write(job_id, "warn", f"resuming: attempt {row['attempts']} after an interrupted one")
        worker = self.registry.worker(job_type)
        if worker is None:
            self._fail(job_id, f"no installed plugin executes jobs of type {job_type!r}")
            return
        try:
            context = self.contexts.job_context(job_view_of(row))
        except Exception as exc:  # its step is gone, or its options no longer validate
            self._fail(job_id, f"cannot run: {type(exc).__name__}: {exc}")
            raise JobFailed(job_id) from None
        view = context.job
        entry = self.watcher.add(context)
        try:
            try:
                try:
                    worker.validate(view)
                except JobError as exc:  # a job that cannot be run is not retried
                    exc.retryable = False
                    raise
                worker.execute(context, view)
            finally:
                entry.executing = False
            if not context.cancelled:
                jobs.transition(job_id, "completed", outcome=context.outcome)
        except (JobCancelled, CancelInterrupt):
            jobs.transition(job_id, "cancelled", allowed_from=("running",))
            logs.write(job_id, "info", "stopped: the job was cancelled")
        except TimeLimitExceeded as exc:
            # Raised asynchronously: it can land anywhere, even after the job completed.
            limit = worker.time_limit or self.settings.time_limit
            if self._fail(job_id, f"exceeded the time limit of {limit:g} s", failed=(worker, context, exc)):
                raise JobFailed(job_id) from None
        except (KeyboardInterrupt, SystemExit):
            raise  # the process is leaving: the message comes back and the job resumes elsewhere
        except BaseException as exc:  # an Exception, or an interrupt of the thread that is none of the above
            self._after_error(worker, context, job_id, exc)
        finally:
            self.watcher.remove(job_id)

    def _after_error(self, worker: JobWorker, context: CoreJobContext, job_id: str, exc: BaseException) -> None:
        message = CurrentMessage.get_current_message()
        retries = message.options.get("retries", 0) if message is not None else worker.max_retries
        error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, JobError) else str(exc)
        if retries < worker.max_retries and getattr(exc, "retryable", True):
            _, delay = compute_backoff(retries, factor=worker.min_backoff_ms, max_backoff=worker.max_backoff_ms,
                                       jitter=True)
            if self.jobs.transition(job_id, "pending", error=error) is None:
                return  # cancelled meanwhile: nothing to retry
            self.logs.write(job_id, "warn", f"attempt {retries + 1} failed ({error}); "
                                     f"retry {retries + 1} of {worker.max_retries} in {delay / 1000:.1f} s")
            raise dramatiq.Retry(error, delay=delay) from None
        detail = "".join(traceback.format_exception(exc)) if not isinstance(exc, JobError) else ""
        if self._fail(job_id, error, detail, failed=(worker, context, exc)):
            raise JobFailed(job_id) from None

    def _fail(self, job_id: str, error: str, detail: str = "", *,
              failed: tuple[JobWorker, CoreJobContext, BaseException] | None = None) -> bool:
        """Mark a running job failed and log why; False when it had already finished otherwise.

        ``failed`` names the worker, context and error whose :meth:`JobWorker.after_failure` runs first. First:
        a process that dies in between leaves a job that runs again (and finds its share given back), never
        a failed job whose share is held for good.
        """
        if failed is not None:
            current = self.jobs.find(job_id)
            if current is None or current.status != "running":  # the limit landed after the job finished
                return False
            worker, context, exc = failed
            try:
                worker.after_failure(context, context.job, exc)
            except Exception:
                log.exception("after_failure of %s failed for job %s", type(worker).__name__, job_id)
        outcome = failed[1].outcome if failed is not None else None  # a failed:<reason> the worker named
        if self.jobs.transition(job_id, "failed", allowed_from=("running",), error=error, outcome=outcome) is None:
            return False
        self.logs.write(job_id, "error", f"failed: {error}" + (f"\n{detail}" if detail else ""))
        return True
