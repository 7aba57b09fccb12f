"""A test harness for plugin authors: run definitions in-process, with chosen plugins, and read what happened.

::

    from quaero.testing import Testbed
    import my_plugin

    def test_my_action(tmp_path):
        with Testbed(tmp_path, plugins=[my_plugin], settings={"my_plugin": {"api_key": "k"}}) as bed:
            run = bed.run('''
                name: try it
                steps:
                  - {name: fetch, action: my_action, config: {limit: 3}}
            ''')
            assert run.status == "completed", run.error
            assert [doc.title for doc in run.documents] == [...]
            assert "saved 3" in run.log_text()

Everything is real: a SQLite database and queue in ``data_dir``, the engine's orchestrator, monitor and
worker threads, the plugins' ``startup`` hooks and migrations. Only the plugins given load (installed ones
too when named in ``load``), so a test sees exactly the plugins it asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from quaero.api.documents import Document, Documents
from quaero.api.jobs import JobView
from quaero.errors import QuaeroError
from quaero.runtime import Runtime
from quaero.settings import Settings, load_settings
from quaero.stores.definitions import JobDefinition, validate_definition
from quaero.stores.documents import document_data
from quaero.stores.jobs import job_view

__all__ = ["Run", "Testbed"]


@dataclass(frozen=True)
class Run:
    """One finished (or timed-out) execution: its jobs, log lines and the documents it saved."""

    root: JobView
    steps: list[JobView]
    jobs: list[JobView]
    logs: list[dict[str, Any]]
    documents: list[Document] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``completed``, ``failed``, ``cancelled`` (or ``running`` when the wait timed out)."""
        return self.root.status

    @property
    def error(self) -> str | None:
        """Why the execution failed, if it did."""
        return self.root.error_message

    def step(self, name: str) -> JobView:
        """The step job called ``name``; ``KeyError`` listing the steps when there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step {name!r}; the steps are {[s.name for s in self.steps]}")

    def children(self, step: str | None = None) -> list[JobView]:
        """The jobs below the steps (of one step, by name), oldest first."""
        parents = {s.id for s in self.steps if step is None or s.name == step}
        return [job for job in self.jobs if job.parent_id in parents]

    def log_text(self) -> str:
        """Every log line of the execution, one per line, as ``level message``."""
        return "\n".join(f"{line['level']} {line['message']}" for line in self.logs)


class Testbed:
    """A Quaero process for tests: a temporary data directory, the given plugins, worker threads.

    ``plugins`` are plugin modules or objects (with ``@hookimpl`` functions), or ``(name, plugin)`` pairs;
    ``load`` names installed plugins to load too (e.g. ``["crawler"]``); ``settings`` holds each plugin's
    settings as ``[plugins.NAME]`` would (a plugin given as a module is named after it: ``my_plugin``);
    ``environ`` stands in for the environment (``QUAERO_PLUGIN_<NAME>_<KEY>`` variables); ``core`` overrides
    core settings (``worker_threads``, ``time_limit``...).

    The outbound policy applies as in production: ``ctx.http`` refuses loopback and private addresses. A
    test whose plugin calls a fake service on 127.0.0.1 says so:
    ``Testbed(tmp_path, plugins=[my_plugin], core={"allow_private_networks": ["127.0.0.0/8", "::1/128"]})``.
    """

    __test__ = False  # a harness, not a test class, though its name starts with "Test"

    def __init__(self, data_dir: str | Path, *, plugins: Iterable[object] = (), load: Sequence[str] = (),
                 settings: Mapping[str, Mapping[str, Any]] | None = None, environ: Mapping[str, str] | None = None,
                 core: Mapping[str, Any] | None = None) -> None:
        self.plugins = [_named(plugin) for plugin in plugins]
        values: dict[str, Any] = dict(
            data_dir=Path(data_dir) / "quaero", worker_processes=0, worker_threads=4, monitor_interval=0.2,
            queue_lease_ms=2000, definitions_dir=Path(data_dir) / "no-definitions", load_plugins=list(load),
            plugins={name: dict(values) for name, values in (settings or {}).items()})
        # The loopback names, and the host Starlette's TestClient sends (a plugin's tests may serve its pages).
        values["allowed_hosts"] = ["localhost", "127.0.0.1", "::1", "testserver"]
        values.update(core or {})
        self.settings: Settings = load_settings(environ=dict(environ or {}), overrides=values)
        self._runtime: Runtime | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> Testbed:
        """Start the process (plugins' ``startup`` hooks run now)."""
        if self._runtime is None:
            self._runtime = Runtime(self.settings, role="run", extra_plugins=self.plugins)
            self._runtime.start()
        return self

    def stop(self) -> None:
        """Stop it, flushing everything."""
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def runtime(self) -> Runtime:
        """The running process (for what the harness does not offer; not part of the plugin API)."""
        if self._runtime is None:
            raise RuntimeError("the testbed is not started: use it in a with block, or call start()")
        return self._runtime

    # ------------------------------------------------------------------ running
    def definition(self, definition: str | Mapping[str, Any]) -> JobDefinition:
        """Validate a definition (YAML text or data); :class:`quaero.api.DefinitionError` lists its problems."""
        runtime = self.runtime
        if isinstance(definition, str):
            return runtime.definitions.parse(definition, origin="test definition")
        return validate_definition(dict(definition), runtime.registry, origin="test definition")

    def not_runnable(self, definition: str | Mapping[str, Any]) -> list[str]:
        """Why a definition could not run now (its steps' ``readiness``); empty when it could."""
        return self.runtime.not_runnable(self.definition(definition))

    def start_run(self, definition: str | Mapping[str, Any]) -> str:
        """Start an execution; returns its root job id at once (:class:`quaero.api.Conflict` with the
        reasons when the definition cannot run now)."""
        runtime = self.runtime
        assert runtime.orchestrator is not None
        return runtime.orchestrator.execute(self.definition(definition), trigger="test")

    def run(self, definition: str | Mapping[str, Any], *, timeout: float = 60.0) -> Run:
        """Execute a definition and wait until it finishes (or ``timeout`` seconds pass)."""
        return self.wait(self.start_run(definition), timeout=timeout)

    def wait(self, root_id: str, *, timeout: float = 60.0) -> Run:
        """Wait for an execution to finish and gather what it did."""
        runtime = self.runtime
        deadline = time.monotonic() + timeout
        while not runtime.jobs.get(root_id).is_terminal and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runtime.orchestrator is not None
        runtime.orchestrator.wait_idle()
        return self.result(root_id)

    def result(self, root_id: str) -> Run:
        """What an execution did so far."""
        runtime = self.runtime
        runtime.logs.flush()
        jobs = [job_view(job) for job in runtime.jobs.tree(root_id)]
        root = next(job for job in jobs if job.id == root_id)
        ids = [job.id for job in jobs]
        logs = runtime.logs.read([root_id], descendants=True, limit=1_000_000)
        documents = [document_data(doc) for doc in runtime.documents.saved_by(ids)]
        return Run(root, [job for job in jobs if job.type == "step"], [job for job in jobs if job is not root],
                   logs, documents)

    def cancel(self, job_id: str) -> None:
        """Cancel an execution (or any job) and its unfinished descendants."""
        runtime = self.runtime
        assert runtime.orchestrator is not None
        runtime.orchestrator.cancel(job_id)

    # ------------------------------------------------------------------ the knowledge base
    @property
    def documents(self) -> Documents:
        """Every stored document, read-only (what ``ctx.documents`` gives a plugin)."""
        return self.runtime.contexts.reader

    def plugin_state(self, plugin: str) -> Any:
        """What a plugin's ``startup`` hook returned."""
        return self.runtime.plugins.record(plugin).state

    def plugin_error(self, plugin: str) -> str | None:
        """Why a plugin was skipped (failed to load, register or start), or ``None``."""
        info = self.runtime.registry.plugins.get(plugin)
        if info is None:
            raise QuaeroError(f"no plugin {plugin!r}; loaded: {sorted(self.runtime.registry.plugins)}")
        return info.error


def _named(plugin: object) -> tuple[str, object]:
    if isinstance(plugin, tuple) and len(plugin) == 2 and isinstance(plugin[0], str):
        return plugin[0], plugin[1]
    if isinstance(plugin, ModuleType):
        return plugin.__name__.split(".")[-1] if plugin.__name__ != "__main__" else "plugin", plugin
    return type(plugin).__name__.lower(), plugin
