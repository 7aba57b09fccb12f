"""Runtime: builds everything one process runs, for its role, from one Settings object.

Roles:
- ``server`` (``quaero serve``): monitor, orchestrator, scheduler, event relay, and workers either as
  threads in the process or as supervised ``quaero worker`` processes;
- ``run`` (``quaero run``): the same without the web server and scheduler;
- ``worker`` (``quaero worker``): Dramatiq workers only; its events go to the outbox for the server.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any
from pathlib import Path

import dramatiq
from dramatiq.middleware import CurrentMessage, Retries, TimeLimit

from quaero.broker import QueueInspector, inspector_for, make_broker
from quaero.stores.db import Database
from quaero.stores.events import EventBus, EventOutbox, EventRelay
from quaero.stores.models import bind_models
from quaero.engine.deadletters import DeadLetters
from quaero.engine.monitor import JobMonitor
from quaero.engine.orchestrator import JobDefinitionOrchestrator
from quaero.registry import load_plugins
from quaero.engine.processor import JobProcessor
from quaero.engine.scheduler import Scheduler
from quaero.engine.services import Services
from quaero.settings import Settings

log = logging.getLogger(__name__)
ROLES = ("server", "run", "worker")
SWITCH_INTERVAL = 0.001


def events_database(settings: Settings) -> Database:
    """Where cross-process events travel: ``events.db`` beside a SQLite data file, else the data database."""
    data = settings.resolved_database_url
    if data.startswith("sqlite:"):
        return Database(f"sqlite:///{(settings.data_dir / 'events.db').resolve()}")
    return Database(data)


class Runtime:
    """The services and background parts of one Quaero process."""

    def __init__(self, settings: Settings, *, role: str = "server", extra_plugins: Iterable[tuple[str, object]] = ()) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.settings = settings
        self.role = role
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.registry = load_plugins(only=settings.plugins, plugin_modules=settings.plugin_modules,
                                     extra=extra_plugins)
        self.database = Database(settings.resolved_database_url)
        self.models = bind_models(self.database.db)
        self.bus = EventBus()
        queue_url = settings.resolved_queue_url
        options = {"lease_ms": settings.queue_lease_ms} if queue_url.startswith("sqlite:") else {}
        # Only the middleware the engine uses: each one costs every message a few calls.
        middleware = [TimeLimit(time_limit=int(settings.time_limit * 1000)), Retries(max_retries=0),
                      CurrentMessage()]
        self.broker: dramatiq.Broker = make_broker(queue_url, middleware=middleware, **options)
        # What the engine and the web layer may ask of the queue, whichever broker it is.
        self.queue: QueueInspector = inspector_for(self.broker)
        self.services = Services(settings, self.database, self.models, self.bus, self.registry, self.broker,
                                 self.queue)
        # The stores the web layer, the CLI and tests work with.
        self.jobs = self.services.jobs
        self.logs = self.services.logs
        self.documents = self.services.documents
        self.definitions = self.services.definitions
        self.credentials = self.services.credentials
        self.dead_letters = DeadLetters(self.services)
        self.processor = JobProcessor(self.services)
        self.processor.declare_actors()
        self.monitor: JobMonitor | None = None
        self.orchestrator: JobDefinitionOrchestrator | None = None
        self.scheduler: Scheduler | None = None
        self.relay: EventRelay | None = None
        self.worker: dramatiq.Worker | None = None
        self.supervisor = None
        if role == "worker":
            self.bus.outbox = EventOutbox(events_database(settings))
        else:
            self.monitor = JobMonitor(self.services, on_cancelled=self.processor.watcher.signal)
            self.orchestrator = JobDefinitionOrchestrator(self.services, self.monitor,
                                                          on_cancelled=self.processor.watcher.signal)
            if role == "server":
                self.scheduler = Scheduler(self.services, self.orchestrator)

    def step_stats(self, step_job: Any) -> dict[str, Any] | None:
        """The figures a step's action adds to the job's API and page (``None``: nothing to add)."""
        action = self.registry.actions.get(step_job.data.get("action", "")) if step_job.type == "step" else None
        return action.manager.stats(self.services, step_job) if action is not None else None

    @property
    def worker_processes(self) -> int:
        """Worker processes this runtime supervises (0: workers run as threads in this process)."""
        return 0 if self.role == "worker" else self.settings.resolved_worker_processes

    def start(self) -> None:
        """Start the background parts: logs, relay, monitor, orchestrator, scheduler, workers."""
        self.services.logs.start()
        self.processor.watcher.start()
        if self.role != "worker":
            loaded, errors = self.services.definitions.load_directory(Path(self.settings.definitions_dir))
            if loaded:
                log.info("loaded %d job definition(s) from %s", len(loaded), self.settings.definitions_dir)
            # Always relay: workers started by the supervisor or by hand (`quaero worker`) both use the outbox.
            self.relay = EventRelay(events_database(self.settings), self.bus)
            self.relay.start()
            assert self.monitor and self.orchestrator
            self.monitor.start()
            self.orchestrator.start()
            self.orchestrator.resume()
            if self.scheduler:
                self.scheduler.start()
        if self.worker_processes:
            from quaero.runtime.supervisor import WorkerSupervisor

            self.supervisor = WorkerSupervisor(self.settings, self.worker_processes)
            self.supervisor.start()
        else:
            # Worker threads hand the database writer lock around while others run CPU-bound parsing:
            # a shorter GIL switch interval gets a lock holder back to work sooner (default 5 ms).
            sys.setswitchinterval(SWITCH_INTERVAL)
            # What Dramatiq's own CLI does in each worker process: starts the time-limit watchdog.
            self.broker.emit_after("process_boot")
            self.worker = dramatiq.Worker(self.broker, worker_threads=self.settings.worker_threads,
                                          worker_timeout=100)
            self.worker.start()

    def stop(self) -> None:
        """Stop everything, flushing what is buffered; safe to call twice."""
        if self.scheduler:
            self.scheduler.close()
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        if self.worker is not None:
            self.worker.stop(timeout=10_000)
            self.worker = None
        if self.orchestrator:
            self.orchestrator.close()
        if self.monitor:
            self.monitor.close()
        if self.relay:
            self.relay.close()
            self.relay = None
        self.processor.watcher.close()
        self.services.close()
        if self.bus.outbox is not None:
            self.bus.outbox.close()
            self.bus.outbox = None
        self.broker.close()
        self.database.close()

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
