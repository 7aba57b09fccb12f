"""JobMonitor: watches every running parent, publishes its progress and finishes it.

Completion is event-driven: a child's ``job_status_change`` marks its parent dirty and the monitor thread
re-reads the parent's stored counts (one row) within milliseconds. A poll every ``monitor_interval``
seconds is the safety net for events that were lost (a crashed process, a restart) and enforces
execution timeouts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from quaero.broker import QueueInspector
from quaero.engine.queue import QUEUE_NAME, JobQueue
from quaero.registry import Registry
from quaero.stores.events import JOB_PROGRESS, JOB_STATUS_CHANGE, Event, EventBus, iso
from quaero.stores.jobs import Counts, JobManager
from quaero.stores.logs import JobLogWriter
from quaero.stores.models import Job

log = logging.getLogger(__name__)
PROGRESS_EVERY = 0.1  # seconds between job_progress events of one parent while it runs
ORPHAN_CHECK_EVERY = 30.0  # seconds between looks for pending jobs without a message
ORPHAN_AGE = 60.0  # a pending job untouched this long should have a message by now


class JobMonitor:
    """Aggregates child statistics of running parents, completes step parents, enforces timeouts."""

    def __init__(self, *, jobs: JobManager, logs: JobLogWriter, bus: EventBus, queue: JobQueue,
                 inspector: QueueInspector, registry: Registry, interval: float, default_timeout: float,
                 on_cancelled: Callable[[list[str]], None] | None = None) -> None:
        self.jobs = jobs
        self.logs = logs
        self.bus = bus
        self.queue = queue
        self.inspector = inspector
        self.registry = registry
        self.interval = interval
        self.default_timeout = default_timeout
        self.on_cancelled = on_cancelled or (lambda ids: None)
        self._dirty: set[str] = set()
        self._cond = threading.Condition()
        self._last_progress: dict[str, float] = {}
        self._deferred: dict[str, float] = {}
        # When to look again for parents whose throttled progress is still owed.
        self._next_orphan_check = time.monotonic() + ORPHAN_CHECK_EVERY
        # A job waiting out a retry's backoff is pending all that time, its message delayed (on RabbitMQ,
        # held by a consumer where no count shows it): judge none before its longest backoff is over.
        longest = max((worker.max_backoff_ms for worker in registry.workers.values()), default=0) / 1000
        self.orphan_age = max(ORPHAN_AGE, longest + 10.0)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="quaero-monitor", daemon=True)
        self._unsubscribe = bus.subscribe(self._on_event, [JOB_STATUS_CHANGE])

    def start(self) -> None:
        self._thread.start()

    def watch(self, parent_id: str) -> None:
        """Look at ``parent_id`` soon (after its children were created, or it started running)."""
        with self._cond:
            self._dirty.add(parent_id)
            self._cond.notify()

    def _on_event(self, event: Event) -> None:
        parent_id = event.payload.get("parent_id")
        if parent_id:
            self.watch(parent_id)

    def _run(self) -> None:
        next_poll = time.monotonic()
        while True:
            with self._cond:
                if not self._dirty and not self._stopped:
                    wake = min([next_poll, *self._deferred.values()])
                    self._cond.wait(max(0.0, wake - time.monotonic()))
                if self._stopped:
                    return
                now = time.monotonic()
                for parent_id, due in list(self._deferred.items()):
                    if due <= now:
                        del self._deferred[parent_id]
                        self._dirty.add(parent_id)
                dirty, self._dirty = self._dirty, set()
            try:
                for parent_id in dirty:
                    self.check(parent_id)
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.interval
                    self.poll()
            except Exception:
                log.exception("monitor pass failed; it will run again")
                time.sleep(0.1)

    def poll(self) -> None:
        """The safety net: finish parents whose children are done, publish progress, enforce timeouts."""
        for job_id in self.jobs.running_parent_ids():
            self.check(job_id, force_progress=True)
        if time.monotonic() >= self._next_orphan_check:
            self._next_orphan_check = time.monotonic() + ORPHAN_CHECK_EVERY
            self.requeue_orphans(older_than=self.orphan_age)

    def requeue_orphans(self, *, older_than: float = ORPHAN_AGE) -> list[str]:
        """Enqueue again the pending jobs whose message never reached the queue; returns their ids.

        A process that dies between writing a job and enqueueing its message leaves a pending job that
        nothing would ever run. Each one found gets a new message generation first
        (:meth:`JobManager.supersede`), so that if its old message was not lost after all, that one does
        nothing: the job runs once either way. SQLite and Redis are asked for the messages by id. RabbitMQ
        cannot look for a message without consuming its queue: there, only while nothing is waiting on the
        queue (no ready or delayed message) is a pending job taken to have lost its message (one that a
        consumer holds, unstarted, is superseded, which delays it, never runs it twice).
        """
        queue = self.inspector
        rows = self.jobs.stale_pending(older_than=older_than)
        if not rows:
            return []
        if queue.can_find_messages:
            present = queue.find_messages([job_id for job_id, _ in rows], include_dead=True)
        else:
            waiting = queue.stats().get(QUEUE_NAME)
            if waiting is None or waiting["ready"] or waiting["delayed"]:
                return []  # they may be among those: the queue cannot tell
            present = set()
        requeued = []
        for job_id, job_type in rows:
            if job_id in present or self.registry.worker(job_type) is None:
                continue
            generation = self.jobs.supersede(job_id, older_than=older_than)
            if generation is None:
                continue  # it started (or ended) meanwhile
            self.queue.enqueue(job_type, [job_id], generation=generation)
            self.logs.write(job_id, "warn", "its message was lost (a process died); enqueued again")
            requeued.append(job_id)
        return requeued

    def check(self, parent_id: str, *, force_progress: bool = False) -> None:
        """Re-read one parent, publish its progress, and finish it when its children are all done."""
        jobs = self.jobs
        parent = jobs.find(parent_id)
        if parent is None or parent.status != "running":
            self._last_progress.pop(parent_id, None)
            self._deferred.pop(parent_id, None)
            return
        counts = Counts.of(parent)
        if self._timed_out(parent):
            return
        status = parent.status
        if parent.type == "step":
            status = self._judge_step(parent, counts) or status
        now = time.monotonic()
        finished = status != "running"
        if finished or force_progress or now - self._last_progress.get(parent_id, 0.0) >= PROGRESS_EVERY:
            self._last_progress[parent_id] = now
            if finished:
                self._last_progress.pop(parent_id, None)
                counts = jobs.counts(parent_id)
            current = jobs.find(parent_id)
            if current is None:  # it had just finished, and was deleted meanwhile
                return
            self.publish_progress(parent_id, status, counts, current.result_count)
        else:
            # Throttled: make sure the latest counts are published once the burst settles.
            with self._cond:
                self._deferred.setdefault(parent_id, self._last_progress[parent_id] + PROGRESS_EVERY)

    def _judge_step(self, step: Job, counts: Counts) -> str | None:
        """Finish a step whose children are done, or fail it past its error tolerance."""
        tolerance = step.data.get("error_tolerance") or {}
        limit = tolerance.get("max_child_failures")
        if limit is not None and counts.failed > limit and tolerance.get("failure_action", "fail") == "fail":
            failure = f"{counts.failed} child jobs failed, more than the {limit} tolerated"
            if self.jobs.transition(step.id, "failed", allowed_from=("running",), error=failure):
                self.logs.write(step.id, "error", f"step failed: {failure}; cancelling the rest")
                self._cancel_children(step.id)
                return "failed"
            return None
        if counts.active:
            return None
        error: str | None
        if counts.total and counts.completed == 0 and counts.failed:
            new, error = "failed", f"all {counts.failed} child jobs failed"
        else:
            new, error = "completed", None
        if self.jobs.transition(step.id, new, allowed_from=("running",), error=error):
            self.logs.write(step.id, "info" if new == "completed" else "error",
                                     f"step {new}: {counts.progress_text}")
            return new
        return None

    def _cancel_children(self, parent_id: str) -> None:
        running = self.jobs.cancel(parent_id, reason="cancelled: the step failed", include_self=False)
        self.on_cancelled(running)

    def _timed_out(self, parent: Job) -> bool:
        if parent.type != "parent" or parent.started_at is None:
            return False
        timeout = parent.data.get("timeout") or self.default_timeout
        # A reopened execution (its failed children re-run) has its timeout again from then.
        if time.time() - max(parent.started_at, parent.data.get("reopened_at") or 0) <= timeout:
            return False
        error = f"timed out after {timeout:g} s"
        self.logs.write(parent.id, "error", f"execution {error}; cancelling its jobs")
        # One transaction: the descendants are cancelled and the execution goes straight from running to
        # failed, so no reader (nor the orchestrator, told of the cancelled step) sees one without the other.
        with self.jobs.database.write():
            running = self.jobs.cancel(parent.id, reason=f"cancelled: the execution {error}", include_self=False)
            self.jobs.transition(parent.id, "failed", allowed_from=("running",), error=error)
        self.on_cancelled(running)
        return True

    def publish_progress(self, job_id: str, status: str, counts: Counts, result_count: int) -> None:
        """Send the seed's ``job_progress`` event."""
        self.bus.publish(JOB_PROGRESS, {
            "job_id": job_id, "status": status, "total_subtasks": counts.total,
            "pending_subtasks": counts.pending, "running_subtasks": counts.running,
            "completed_subtasks": counts.completed, "failed_subtasks": counts.failed,
            "cancelled_subtasks": counts.cancelled, "progress_text": counts.progress_text,
            "result_count": result_count, "timestamp": iso(),
        })

    def close(self) -> None:
        self._unsubscribe()
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
