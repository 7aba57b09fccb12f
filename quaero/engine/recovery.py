"""JobRecovery: run a step's or an execution's failed children again, and act on every job a filter matches.

The REST API, the pages and the CLI all call this one service.

Re-running failed children (:meth:`JobRecovery.rerun_failed`) happens in one write transaction: each child
goes back to pending as a new job would be (attempts, error, results and times cleared, a new message
generation), its worker's :meth:`~quaero.api.JobWorker.before_rerun` takes back what the failure gave up
(the crawler's place in its seen-set and page budget), its step and execution go back to running, and
the messages go out once that commits. Only a finished execution is reopened: while it runs, its
orchestration owns its steps, so a re-run then is refused (409). Once the children are done the monitor
finishes the step again and the orchestrator finishes the execution again: from the execution's last step
it goes on as it would have (the next step starts, or the retry or failure the definition says), and
after an earlier step it ends as it had ended. Documents saved before stay; saving one again updates it.

Bulk actions (:meth:`JobRecovery.bulk`) take the filter of ``GET /api/jobs``. A dry run says how many jobs
match, by status, with the first :data:`SAMPLE` ids; acting on more than :data:`CONFIRM_OVER` needs the
count confirmed (``confirm_count``), and a confirmed count that no longer matches is refused, so a filter
that matched something else between the dry run and the act is caught. Jobs that the action does not
apply to are skipped and counted by reason.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from quaero.engine.contexts import ContextFactory
from quaero.engine.monitor import JobMonitor
from quaero.engine.orchestrator import JobDefinitionOrchestrator
from quaero.engine.queue import JobQueue
from quaero.errors import Conflict, NotFound, QuaeroError
from quaero.registry import Registry
from quaero.stores.events import JOB_STATUS_CHANGE, EventBus, iso
from quaero.stores.job_reads import JobFilter
from quaero.stores.job_recovery import RERUNNABLE, JobResets
from quaero.stores.jobs import JobManager, job_view
from quaero.stores.logs import JobLogWriter
from quaero.stores.models import JOB_STATUSES, Job

log = logging.getLogger(__name__)

ACTIONS = ("cancel", "delete", "rerun")
FILTER_KEYS = ("status", "type", "parent_id", "definition_id")
SAMPLE = 100  # ids a dry run lists
CONFIRM_OVER = 10_000  # acting on more jobs than this needs confirm_count
MAX_BULK = 100_000  # the most one bulk action acts on: narrow the filter beyond it
PARENT_TYPES = ("step", "parent")

#: Why a job was skipped, as the API reports it and the pages and CLI explain it.
SKIP_REASONS = {
    "finished": "already finished",
    "running": "still pending or running (cancel it first)",
    "gone": "no longer there (deleted with the execution or step above it)",
    "execution_running": "its execution is still running",
    "completed": "completed: nothing to run again",
    "same_definition": "another matching execution of its definition is run again instead",
    "cannot_run": "its definition cannot run now",
    "no_worker": "no installed plugin runs its type",
    "nothing_failed": "no failed or cancelled child to run again",
}


@dataclass
class Outcome:
    """What a re-run or a bulk action did."""

    done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def skip(self, reason: str, error: str | None = None) -> None:
        self.skipped[reason] += 1
        if error and len(self.errors) < 10:
            self.errors.append(error)

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "skipped": dict(self.skipped), "skipped_total": sum(self.skipped.values()),
                "errors": self.errors, **self.extra}


def check_filter(values: dict[str, Any]) -> JobFilter:
    """A bulk filter from plain values: unknown keys and statuses are a 400 naming the allowed ones."""
    unknown = sorted(set(values) - set(FILTER_KEYS))
    if unknown:
        message = f"unknown filter key {unknown[0]!r}; the filter takes: {', '.join(FILTER_KEYS)}"
        raise QuaeroError(message, detail=[{"path": f"filter.{unknown[0]}", "in": "body", "message": message}])
    cleaned: dict[str, str | None] = {}
    for key in FILTER_KEYS:
        value = values.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            message = f"filter.{key} must be text of at most 200 characters"
            raise QuaeroError(message, detail=[{"path": f"filter.{key}", "in": "body", "message": message}])
        cleaned[key] = value or None
    if cleaned["status"] is not None and cleaned["status"] not in JOB_STATUSES:
        message = f"filter.status {cleaned['status']!r} is not one of {', '.join(JOB_STATUSES)}"
        raise QuaeroError(message, detail=[{"path": "filter.status", "in": "body", "message": message}])
    return JobFilter(**cleaned)


def filter_dict(where: JobFilter) -> dict[str, str]:
    """The filter's keys that are set."""
    return {key: value for key in FILTER_KEYS if (value := getattr(where, key)) is not None}


class JobRecovery:
    """Re-run failed children; cancel, delete or re-run every job a filter matches."""

    def __init__(self, *, jobs: JobManager, logs: JobLogWriter, queue: JobQueue, registry: Registry,
                 contexts: ContextFactory, bus: EventBus, orchestrator: JobDefinitionOrchestrator | None,
                 monitor: JobMonitor | None) -> None:
        self.jobs = jobs
        self.logs = logs
        self.queue = queue
        self.registry = registry
        self.contexts = contexts
        self.bus = bus
        self.orchestrator = orchestrator
        self.monitor = monitor
        self.resets = JobResets(jobs)

    # ------------------------------------------------------------------ re-run failed children
    def failed_children(self, job: Job, *, include_cancelled: bool = False) -> int:
        """How many children :meth:`rerun_failed` would put back for a step or execution (0 for other jobs),
        read from the stored counts."""
        if job.type == "step":
            steps = [job]
        elif job.type == "parent":
            steps = [step for step in self.jobs.children(job.id, limit=10_000) if step.type == "step"]
        else:
            return 0
        return sum(step.count_failed + (step.count_cancelled if include_cancelled else 0) for step in steps)

    def rerun_failed(self, job_id: str, *, include_cancelled: bool = False) -> dict[str, Any]:
        """Put a step's (or every step of an execution's) failed children, and its cancelled ones when asked,
        back on the queue; :class:`Conflict` for a job that is neither, or whose execution still runs."""
        job = self.jobs.get(job_id)
        if job.type not in PARENT_TYPES:
            raise Conflict(f"job {job_id} is a {job.type} job: failed children are re-run from a step or an "
                           f"execution (its step is {job.parent_id})")
        root = self.jobs.get(job.root_id or job.id)
        if not root.is_terminal:
            raise Conflict(f"the execution {root.id} is still {root.status}: re-run failed children once it has "
                           f"finished (or cancel it first)")
        statuses = RERUNNABLE if include_cancelled else ("failed",)
        steps = [job] if job.type == "step" else [s for s in self.jobs.children(root.id, limit=10_000)
                                                  if s.type == "step"]
        ids = [child for step in steps for child in self.resets.children_ids(step.id, statuses)]
        outcome = self._requeue(self.resets.find_many(ids).values())
        return {"job_id": job_id, "requeued": outcome.done, **outcome.as_dict()}

    def _requeue(self, children: Iterable[Job]) -> Outcome:
        """Reset these failed or cancelled children, reopen their steps and executions, and queue them."""
        outcome = Outcome()
        by_step: dict[str, list[Job]] = {}
        for child in children:
            if self.registry.worker(child.type) is None:
                outcome.skip("no_worker", f"job {child.id}: no installed plugin runs jobs of type {child.type!r}")
            else:
                by_step.setdefault(child.parent_id or "", []).append(child)
        if not by_step:
            return outcome
        queued: list[tuple[str, str, int]] = []
        reopened: dict[str, list[str]] = {}  # execution id -> its steps reopened
        with self.jobs.database.write():
            for step_id, kids in by_step.items():
                step = self.jobs.get(step_id)
                root_id = step.root_id or step.id
                for kid in kids:
                    self._before_rerun(kid)
                    generation = self.resets.reset(kid, ancestors=(step.id, root_id))
                    if generation is None:
                        outcome.skip("finished")  # it moved meanwhile
                        continue
                    queued.append((kid.type, kid.id, generation))
                    outcome.done += 1
                if self.resets.reopen(step.id, _without_handled):
                    reopened.setdefault(root_id, []).append(step.id)
            for root_id, steps in reopened.items():
                self.resets.reopen(root_id, functools.partial(_reopened_root, self.jobs.get(root_id), steps=steps))
        self._announce(queued, reopened)
        return outcome

    def _before_rerun(self, job: Job) -> None:
        worker = self.registry.worker(job.type)
        assert worker is not None
        view = job_view(job)
        try:
            worker.before_rerun(self.contexts.job_context(view), view)
        except Exception as exc:
            raise Conflict(f"job {job.id} cannot run again: {type(worker).__name__}.before_rerun: "
                           f"{type(exc).__name__}: {exc}") from None

    def _announce(self, queued: list[tuple[str, str, int]], reopened: dict[str, list[str]]) -> None:
        """After the commit: the messages, the status events, the log lines, the monitor told."""
        by_message: dict[tuple[str, int], list[str]] = {}
        for job_type, job_id, generation in queued:
            by_message.setdefault((job_type, generation), []).append(job_id)
        for (job_type, generation), ids in by_message.items():
            self.queue.enqueue(job_type, ids, generation=generation)
        changed = self.resets.find_many([job_id for _, job_id, _ in queued]
                                        + [s for steps in reopened.values() for s in steps] + list(reopened))
        for job in changed.values():
            self.bus.publish(JOB_STATUS_CHANGE, {
                "job_id": job.id, "parent_id": job.parent_id, "status": job.status,
                "previous_status": job.previous_status, "job_type": job.type, "timestamp": iso()})
        per_step = Counter(changed[job_id].parent_id for _, job_id, _ in queued if job_id in changed)
        for root_id, steps in reopened.items():
            for step_id in steps:
                self.logs.write(step_id, "info", f"reopened: {per_step[step_id]} child job(s) run again by request")
                if self.monitor is not None:
                    self.monitor.watch(step_id)
            self.logs.write(root_id, "info", f"reopened: failed children of {len(steps)} step(s) run again")
        for _, job_id, _ in queued:
            self.logs.write(job_id, "info", "queued to run again by request")

    # ------------------------------------------------------------------ bulk actions over a filter
    def bulk(self, action: str, where: JobFilter, *, dry_run: bool = True,
             confirm_count: int | None = None) -> dict[str, Any]:
        """Cancel, delete or re-run every job ``where`` matches, or only count them (``dry_run``)."""
        if action not in ACTIONS:
            message = f"action {action!r} is not one of {', '.join(ACTIONS)}"
            raise QuaeroError(message, detail=[{"path": "action", "in": "body", "message": message}])
        by_status = self.resets.by_status(where)
        matched = sum(by_status.values())
        head = {"action": action, "filter": filter_dict(where), "matched": matched, "by_status": by_status}
        if dry_run:
            return {**head, "dry_run": True, "ids": self.resets.matching_ids(where, limit=SAMPLE),
                    "confirm_required": matched > CONFIRM_OVER, "too_many": matched > MAX_BULK}
        if matched > MAX_BULK:
            raise _bad("filter", f"the filter matches {matched} jobs, more than the {MAX_BULK} one bulk action "
                                 f"may act on: narrow it (by status, type, definition or parent)")
        if confirm_count is not None and confirm_count != matched:
            raise Conflict(f"the filter now matches {matched} jobs, not the {confirm_count} confirmed: nothing was "
                           f"done; look again (a dry run) and confirm the new count",
                           detail={"matched": matched, "confirm_count": confirm_count})
        if matched > CONFIRM_OVER and confirm_count is None:
            raise _bad("confirm_count", f"the filter matches {matched} jobs, more than {CONFIRM_OVER}: send "
                                        f"\"confirm_count\": {matched} (the dry run's count) to act on them all")
        ids = self.resets.matching_ids(where, limit=MAX_BULK)
        outcome = getattr(self, f"_bulk_{action}")(ids)
        log.info("bulk %s over %s: %s", action, filter_dict(where), outcome.as_dict())
        return {**head, "dry_run": False, **outcome.as_dict()}

    def _bulk_cancel(self, ids: list[str]) -> Outcome:
        outcome = Outcome()
        cancel = self.orchestrator.cancel if self.orchestrator is not None else self._cancel
        for job_id in ids:
            job = self.jobs.find(job_id)
            if job is None:
                outcome.skip("gone")
            elif job.is_terminal:
                outcome.skip("finished")
            else:
                try:
                    cancel(job_id)
                except Conflict:
                    outcome.skip("finished")  # it finished meanwhile
                    continue
                outcome.done += 1
        return outcome

    def _cancel(self, job_id: str) -> list[str]:
        return self.jobs.cancel(job_id, reason="cancelled by request")

    def _bulk_delete(self, ids: list[str]) -> Outcome:
        outcome = Outcome(extra={"jobs_removed": 0})
        roots: dict[str, bool] = {}
        for job_id in ids:
            job = self.jobs.find(job_id)
            if job is None:
                outcome.skip("gone")
                continue
            if not job.is_terminal:
                outcome.skip("running")
                continue
            if job.root_id and job.root_id != job.id and self._running(job.root_id, roots):
                outcome.skip("execution_running")
                continue
            try:
                outcome.extra["jobs_removed"] += self.jobs.delete(job_id)
            except NotFound:
                outcome.skip("gone")
                continue
            except Conflict:
                outcome.skip("running")
                continue
            outcome.done += 1
        return outcome

    def _running(self, root_id: str, known: dict[str, bool]) -> bool:
        if root_id not in known:
            root = self.jobs.find(root_id)
            known[root_id] = root is not None and not root.is_terminal
        return known[root_id]

    def _bulk_rerun(self, ids: list[str]) -> Outcome:
        """Executions: a fresh execution of each definition (once per definition); steps: their failed and
        cancelled children again; other jobs: themselves again, when failed or cancelled."""
        outcome = Outcome(extra={"started": []})
        definitions: set[str] = set()
        roots: dict[str, bool] = {}
        children: dict[str, Job] = {}
        acted = 0  # matched steps and jobs whose children or selves are queued again
        for job_id in ids:
            job = self.jobs.find(job_id)
            if job is None:
                outcome.skip("gone")
            elif not job.is_terminal:
                outcome.skip("running")
            elif job.type == "parent":
                self._rerun_execution(job, definitions, outcome)
            elif self._running(job.root_id or job.id, roots):
                outcome.skip("execution_running")
            elif job.type == "step":
                kids = self.resets.find_many(self.resets.children_ids(job.id, RERUNNABLE))
                if not kids:
                    outcome.skip("nothing_failed")
                else:
                    acted += 1
                children.update(kids)
            elif job.status == "completed":
                outcome.skip("completed")
            else:
                acted += 1
                children[job.id] = job
        if children:
            requeued = self._requeue(children.values())
            outcome.done += max(0, acted - sum(requeued.skipped.values()))
            outcome.skipped.update(requeued.skipped)
            outcome.errors += requeued.errors
            outcome.extra["requeued"] = requeued.done
        return outcome

    def _rerun_execution(self, job: Job, definitions: set[str], outcome: Outcome) -> None:
        key = job.definition_id or job.id
        if key in definitions:
            outcome.skip("same_definition")
            return
        definitions.add(key)
        if self.orchestrator is None:
            raise QuaeroError("this process cannot start executions (it has no orchestrator)")
        try:
            new_id = self.orchestrator.rerun(job.id)
        except QuaeroError as exc:
            outcome.skip("cannot_run", f"job {job.id}: {exc.message}")
            return
        outcome.done += 1
        if len(outcome.extra["started"]) < SAMPLE:
            outcome.extra["started"].append(new_id)


def _without_handled(data: dict[str, Any]) -> dict[str, Any]:
    """A reopened step's payload: the orchestrator has not handled its (next) end yet."""
    return {key: value for key, value in data.items() if key != "handled"}


def _reopened_root(root: Job, data: dict[str, Any], *, steps: list[str]) -> dict[str, Any]:
    """A reopened execution's payload: which of its earlier steps run again, how it had ended, and since when
    it runs again (its timeout counts from then). Its last step, when reopened, goes on as it would have."""
    step_jobs = data.get("step_jobs", [])
    last = step_jobs[-1] if step_jobs else None
    return {**data, "reopened": [step for step in steps if step != last], "deferred_finish": None,
            "reopened_from": {"status": root.status, "error": root.error_message}, "reopened_at": time.time()}


def _bad(path: str, message: str) -> QuaeroError:
    return QuaeroError(message, detail=[{"path": path, "in": "body", "message": message}])
