"""Runtime: builds everything one process runs, for its role, from one Settings object.

Roles:
- ``server`` (``quaero serve``): monitor, orchestrator, scheduler, event relay, and workers either as
  threads in the process or as supervised ``quaero worker`` processes;
- ``run`` (``quaero run``): the same without the web server and scheduler;
- ``worker`` (``quaero worker``): Dramatiq workers only; its events go to the outbox for the server;
- ``control`` (``quaero jobs cancel|delete|rerun|rerun-failed``): the services of a server without any of
  its background parts started, for one command; its events go to the outbox for the server.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.middleware import CurrentMessage, Retries, TimeLimit

from quaero.broker import QueueInspector, inspector_for, make_broker
from quaero.broker.reclaimer import Reclaimer
from quaero.engine.addresses import AddressPolicy
from quaero.engine.answering import Answers
from quaero.engine.contexts import ContextFactory
from quaero.engine.deadletters import DeadLetters
from quaero.engine.embedding import Embeddings
from quaero.engine.monitor import JobMonitor
from quaero.engine.orchestrator import JobDefinitionOrchestrator
from quaero.engine.outbound import Outbound
from quaero.engine.plugin_host import Plugins
from quaero.engine.processor import JobProcessor
from quaero.engine.queue import QUEUE_NAME, JobQueue
from quaero.engine.readiness import not_runnable
from quaero.engine.recovery import JobRecovery
from quaero.engine.scheduler import Scheduler
from quaero.engine.spawner import JobSpawner
from quaero.engine.steps import Steps
from quaero.engine.webhooks import WebhookSender
from quaero.errors import DefinitionError
from quaero.registry import load_plugins
from quaero.runtime.files import private_data_dir
from quaero.runtime.logsetup import remember_secrets
from quaero.settings import Settings
from quaero.stores.accounts import AccountStore
from quaero.stores.activity import ActivityStore
from quaero.stores.credentials import CredentialStore, sealed_key_ids
from quaero.stores.db import Database
from quaero.stores.definition_store import DefinitionStore, record_dict
from quaero.stores.definitions import JobDefinition
from quaero.stores.document_reader import DocumentReader
from quaero.stores.documents import DocumentStore
from quaero.stores.events import EventBus, EventOutbox, EventRelay
from quaero.stores.fulltext import full_text_index
from quaero.stores.jobs import JobManager, job_view
from quaero.stores.login_throttle import LoginThrottle
from quaero.stores.logs import JobLogWriter
from quaero.stores.maintenance import Maintenance
from quaero.stores.models import JobDefinitionRecord, bind_models
from quaero.stores.plugin_database import PluginTables
from quaero.stores.rate_limits import RateLimits
from quaero.stores.sealing import load_sealer
from quaero.stores.search import DocumentSearch
from quaero.stores.webhooks import WebhookStore

if TYPE_CHECKING:
    from quaero.runtime.supervisor import WorkerSupervisor

log = logging.getLogger(__name__)
ROLES = ("server", "run", "worker", "control")
SWITCH_INTERVAL = 0.001


def events_database(settings: Settings) -> Database:
    """Where cross-process events travel: ``events.db`` beside a SQLite data file, else the data database."""
    data = settings.resolved_database_url
    if data.startswith("sqlite:"):
        return Database(f"sqlite:///{(settings.data_dir / 'events.db').resolve()}")
    return Database(data)


class Runtime:
    """The services and background parts of one Quaero process."""

    def __init__(self, settings: Settings, *, role: str = "server",
                 extra_plugins: Iterable[tuple[str, object]] = (), supervisor: WorkerSupervisor | None = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.settings = settings
        self.role = role
        private_data_dir(settings.data_dir)
        remember_secrets(settings)
        self.registry = load_plugins(only=settings.load_plugins, plugin_modules=settings.plugin_modules,
                                     extra=extra_plugins)
        self.database = Database(settings.resolved_database_url)
        self.models = bind_models(self.database.db)
        # Credentials are sealed with a key kept outside the database; what an older release stored in
        # clear is sealed now. A key that is missing or wrong stops the start with a message saying why.
        try:
            sealer = load_sealer(settings, sealed_with=sealed_key_ids(self.models))
            self.credentials = CredentialStore(self.database, self.models, sealer)
            self.credentials.seal_stored()
        except BaseException:
            self.database.close()
            raise
        self.bus = EventBus()
        queue_url = settings.resolved_queue_url
        options = {"lease_ms": settings.queue_lease_ms} if queue_url.startswith("sqlite:") else {}
        # Only the middleware the engine uses: each one costs every message a few calls.
        middleware = [TimeLimit(time_limit=int(settings.time_limit * 1000)), Retries(max_retries=0),
                      CurrentMessage()]
        self.broker: dramatiq.Broker = make_broker(queue_url, middleware=middleware, **options)
        # What the engine and the web layer may ask of the queue, whichever broker it is.
        self.queue: QueueInspector = inspector_for(self.broker)
        # The stores, which the web layer, the CLI and tests use too.
        self.jobs = JobManager(self.database, self.models, self.bus)
        self.logs = JobLogWriter(self.database, self.models, self.bus, keep_debug=settings.log_level == "DEBUG")
        self.documents = DocumentStore(self.database, self.models)
        self.definitions = DefinitionStore(self.database, self.models, self.registry)
        self.accounts = AccountStore(self.database, self.models)
        self.login_throttle = LoginThrottle(self.database, self.models, max_failures=settings.login_max_failures,
                                            lockout=settings.login_lockout)
        self.activity = ActivityStore(self.database, self.models, job_timeout=settings.default_job_timeout)
        self.dead_letters = DeadLetters(self.queue, self.jobs, self.logs)
        # The plugins: started (settings, migrations, state) before any of their jobs can run.
        self.tables = PluginTables(self.database)
        self.plugins = Plugins(self.registry, settings, self.database, self.tables)
        self.plugins.start()
        self._listen_for_deletions()
        self.job_queue = JobQueue(self.queue, self.registry)
        # Search by meaning: the model the settings name, loaded when first needed; saved documents are
        # embedded by the quaero.embed actor, which any worker runs.
        self.embeddings = Embeddings(name=settings.embedder, registry=self.registry, database=self.database,
                                     plugin_context=lambda plugin: self.contexts.plugin_context(plugin),
                                     jobs_waiting=self._jobs_waiting)
        self.embeddings.declare(self.broker)
        self.documents.text_listeners.append(self.embeddings.notify)
        self.search = DocumentSearch(self.database, self.embeddings)
        self.answers = Answers(name=settings.answerer, registry=self.registry, search=self.search,
                               plugin_context=lambda plugin: self.contexts.plugin_context(plugin))
        self.steps = Steps(self.jobs, self.registry)
        # Every plugin's requests: one client per process, behind the address policy of the settings (a
        # worker process gets them through QUAERO_SETTINGS_JSON), rate limits shared through the database.
        self.outbound = Outbound(RateLimits(self.database), AddressPolicy.from_settings(settings))
        self.contexts = ContextFactory(
            database=self.database, jobs=self.jobs, logs=self.logs, documents=self.documents,
            reader=DocumentReader(self.documents, self.search), credentials=self.credentials,
            spawner=JobSpawner(self.database, self.jobs, self.job_queue, self.bus), steps=self.steps,
            plugins=self.plugins, bus=self.bus, tables=self.tables, full_text=full_text_index(self.database),
            maintenance=Maintenance(self.database, self.models, self.jobs),
            outbound=self.outbound, embeddings=self.embeddings)
        # Webhook deliveries: made from the executions' events and sent by the server (and `quaero run`).
        self.webhooks = WebhookStore(self.database, self.models, self.jobs, self.credentials.sealer, settings)
        self.jobs.deletion_listeners.append(self.webhooks.forget_jobs)
        self.webhook_sender: WebhookSender | None = None
        self.processor = JobProcessor(self.broker, self.jobs, self.logs, self.registry, self.contexts, settings)
        self.processor.declare_actors()
        self.monitor: JobMonitor | None = None
        self.orchestrator: JobDefinitionOrchestrator | None = None
        self.scheduler: Scheduler | None = None
        self.relay: EventRelay | None = None
        self.worker: dramatiq.Worker | None = None
        # Worker processes started already (``quaero serve`` starts them before building this), or None.
        self.supervisor: WorkerSupervisor | None = supervisor
        # Messages that this host's dead processes held come back at once, not when their leases lapse.
        self.reclaimer = Reclaimer(self.queue)
        if role in ("worker", "control"):
            self.bus.outbox = EventOutbox(events_database(settings))
        if role != "worker":
            self.monitor = JobMonitor(jobs=self.jobs, logs=self.logs, bus=self.bus, queue=self.job_queue,
                                      inspector=self.queue, registry=self.registry, interval=settings.monitor_interval,
                                      default_timeout=settings.default_job_timeout,
                                      on_cancelled=self.processor.watcher.signal)
            self.orchestrator = JobDefinitionOrchestrator(
                jobs=self.jobs, logs=self.logs, definitions=self.definitions, registry=self.registry, bus=self.bus,
                monitor=self.monitor, steps=self.steps, contexts=self.contexts,
                default_timeout=settings.default_job_timeout, on_cancelled=self.processor.watcher.signal)
            if role == "server":
                self.scheduler = Scheduler(self.definitions, self.jobs, self.orchestrator)
            self.webhook_sender = WebhookSender(self.webhooks, self.outbound.client, self.bus, settings,
                                                logs=self.logs, poll=min(1.0, settings.monitor_interval))
        #: Re-runs of failed children and bulk actions: what the API, the pages and the CLI call.
        self.recovery = JobRecovery(jobs=self.jobs, logs=self.logs, queue=self.job_queue, registry=self.registry,
                                    contexts=self.contexts, bus=self.bus, orchestrator=self.orchestrator,
                                    monitor=self.monitor)

    def _listen_for_deletions(self) -> None:
        """Deleted jobs and documents take the plugins' rows for them along, in the same transaction."""
        def jobs_deleted(ids: list[str]) -> None:
            for _, function in self.registry.implementations("jobs_deleted"):
                function(job_ids=ids, db=self.tables)

        def documents_deleted(ids: list[int]) -> None:
            for _, function in self.registry.implementations("documents_deleted"):
                function(document_ids=ids, db=self.tables)

        if self.registry.implementations("jobs_deleted"):
            self.jobs.deletion_listeners.append(jobs_deleted)
        if self.registry.implementations("documents_deleted"):
            self.documents.deletion_listeners.append(documents_deleted)

    def _jobs_waiting(self) -> bool:
        """Whether jobs wait on the queue or run (their messages ready or in flight; delayed ones do not count)."""
        try:
            stats = self.queue.stats().get(QUEUE_NAME)
            return bool(stats and (stats["ready"] or stats["in_flight"]))
        except Exception:  # a broker that cannot say: do not hold embedding back
            return False

    def ask(self, question: str, *, limit: int = 6) -> dict[str, Any]:
        """An answer to ``question`` from the knowledge base, with the passages it cites."""
        return self.answers.ask(question, limit=limit)

    def related(self, doc_id: int, *, limit: int = 5) -> list[dict[str, Any]]:
        """The documents nearest ``doc_id`` in meaning, nearest first ([] when it is not embedded)."""
        nearest = self.embeddings.related(doc_id, limit)
        if not nearest:
            return []
        ids = [near.document_id for near in nearest]
        rows = {row[0]: row for row in self.database.execute(
            f"SELECT id, title, source_type, source_ref FROM documents WHERE id IN ({', '.join('?' * len(ids))})",
            ids).fetchall()}
        return [{"id": near.document_id, "title": rows[near.document_id][1], "source_type": rows[near.document_id][2],
                 "source_ref": rows[near.document_id][3], "score": round(near.score, 4)}
                for near in nearest if near.document_id in rows]

    def not_runnable(self, definition: JobDefinition) -> list[str]:
        """Why ``definition`` cannot run now (empty when it can): what its steps' actions say they miss."""
        return not_runnable(definition, self.registry, self.contexts)

    def definition_dict(self, record: JobDefinitionRecord, definition: JobDefinition | None = None, *,
                        full: bool = False) -> dict[str, Any]:
        """A stored definition as the API and the pages show it, with whether it can run now and why not;
        ``full`` adds the validated definition."""
        if definition is None:
            try:
                definition = self.definitions.definition_of(record)
            except DefinitionError as exc:  # stored before a plugin it needs went away, say
                return {**record_dict(record), "runnable": False, "not_runnable": [exc.message]}
        reasons = self.not_runnable(definition)
        return {**record_dict(record, definition if full else None), "runnable": not reasons, "not_runnable": reasons}

    def step_stats(self, step_job: Any) -> dict[str, Any] | None:
        """The figures a step's action adds to the job's API and page (``None``: nothing to add)."""
        action = self.registry.actions.get(step_job.data.get("action", "")) if step_job.type == "step" else None
        if action is None:
            return None
        return action.manager.stats(self.contexts.plugin_context(action.plugin), job_view(step_job))

    @property
    def worker_processes(self) -> int:
        """Worker processes this runtime supervises (0: workers run as threads in this process)."""
        return 0 if self.role == "worker" else self.settings.resolved_worker_processes

    def start(self) -> None:
        """Start the background parts: logs, relay, monitor, orchestrator, scheduler, workers."""
        self.logs.start()
        self.processor.watcher.start()
        self.reclaimer.start()
        if self.role != "worker":
            loaded, errors = self.definitions.load_directory(Path(self.settings.definitions_dir))
            if loaded:
                log.info("loaded %d job definition(s) from %s", len(loaded), self.settings.definitions_dir)
            unscoped = self.credentials.unscoped()
            if unscoped:
                log.warning("credentials without a base URL are never sent (they were saved before one was "
                            "required): %s; save them again with the base_url of their site",
                            ", ".join(unscoped))
            # Always relay: workers started by the supervisor or by hand (`quaero worker`) both use the outbox.
            self.relay = EventRelay(events_database(self.settings), self.bus)
            self.relay.start()
            assert self.monitor and self.orchestrator
            self.monitor.start()
            self.orchestrator.start()
            self.orchestrator.resume()
            if self.scheduler:
                self.scheduler.start()
            if self.webhook_sender:
                self.webhook_sender.start()
        if self.role != "worker" and self.embeddings.configured and self.embeddings.store.queued():
            self.embeddings.notify()  # saved before the last stop (or a kill) and not embedded yet
        if self.role == "server":
            self.embeddings.warm_up()
        if self.worker_processes:
            if self.supervisor is None:
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
        self.embeddings.stop()  # a batch being embedded ends at its next step: the workers stop sooner
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
        if self.webhook_sender:
            # `quaero run` stops right after its execution ends: its last event goes out first, if it can.
            self.webhook_sender.close(drain=min(self.settings.webhook_timeout, 5.0) if self.role == "run" else 0.0)
            self.webhook_sender = None
        if self.relay:
            self.relay.close()
            self.relay = None
        self.processor.watcher.close()
        self.reclaimer.close()
        self.logs.close()
        self.embeddings.close()
        self.plugins.close()
        self.outbound.close()
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
