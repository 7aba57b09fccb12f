"""Scheduler: runs definitions on their cron ``schedule`` inside ``quaero serve``, never overlapping."""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime

from croniter import croniter

from quaero.engine.orchestrator import JobDefinitionOrchestrator
from quaero.stores.definition_store import DefinitionStore
from quaero.stores.jobs import JobManager

log = logging.getLogger(__name__)


class Scheduler:
    """Fires due schedules; skips a firing while the same definition still has a running execution."""

    def __init__(self, definitions: DefinitionStore, jobs: JobManager, orchestrator: JobDefinitionOrchestrator, *,
                 tick: float = 1.0) -> None:
        self.definitions = definitions
        self.jobs = jobs
        self.orchestrator = orchestrator
        self.tick = tick
        self._next: dict[str, tuple[str, float]] = {}  # definition id -> (schedule, next fire time)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quaero-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.tick):
            try:
                self.run_due(time.time())
            except Exception:
                log.exception("scheduler pass failed")

    def run_due(self, now: float) -> list[str]:
        """Start every execution due at ``now``; returns the root job ids started."""
        started = []
        seen = set()
        for record in self.definitions.list():
            if not record.enabled or not record.schedule:
                continue
            seen.add(record.id)
            # Each schedule on its own: one that cannot be computed (stored before validation refused it)
            # is logged once and left aside until it changes; the others keep firing.
            try:
                root_id = self._fire_if_due(record.id, record.schedule, now)
            except Exception:
                log.exception("schedule %r of %s cannot be computed: it is skipped until it changes",
                              record.schedule, record.id)
                self._next[record.id] = (record.schedule, math.inf)
                continue
            if root_id is not None:
                started.append(root_id)
        for stale in set(self._next) - seen:
            del self._next[stale]
        return started

    def _fire_if_due(self, definition_id: str, schedule: str, now: float) -> str | None:
        """Start the definition if its schedule is due; the root job id, or ``None`` when nothing started."""
        known, due = self._next.get(definition_id, (None, None))
        if known != schedule or due is None:
            # A new or changed schedule counts from now: it never fires for times already past.
            self._next[definition_id] = (schedule, self._after(schedule, now))
            return None
        if due > now:
            return None
        self._next[definition_id] = (schedule, self._after(schedule, now))
        if self._running(definition_id):
            log.info("schedule of %s skipped: its previous execution is still running", definition_id)
            return None
        try:
            return self.orchestrator.execute(definition_id, trigger=f"schedule {schedule}")
        except Exception:
            log.exception("scheduled execution of %s could not start", definition_id)
            return None

    @staticmethod
    def _after(schedule: str, moment: float) -> float:
        start = datetime.fromtimestamp(moment, tz=UTC)
        return croniter(schedule, start).get_next(float)

    def _running(self, definition_id: str) -> bool:
        return self.jobs.has_running_execution(definition_id)

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
