"""One worker process (``quaero worker``): a runtime in the worker role until SIGINT or SIGTERM, or, when a
server supervises it, until that server is gone.

:func:`preload` imports what a worker runs, so that :class:`~quaero.runtime.supervisor.WorkerSupervisor` can
fork workers from a process that has it already, instead of starting interpreters that import it all again.
"""

from __future__ import annotations

import os
import signal
import threading

from quaero.settings import Settings

__all__ = ["preload", "serve_worker"]


def preload(settings: Settings) -> None:
    """Import the runtime and the plugins' modules (nothing is started, no thread, no connection)."""
    from quaero.registry import load_plugins
    from quaero.runtime import runtime  # noqa: F401

    load_plugins(only=settings.load_plugins, plugin_modules=settings.plugin_modules)


def serve_worker(settings: Settings, index: int | None = None) -> int:
    """Run a worker runtime until stopped; ``index``: the supervisor's number for it (None: not supervised)."""
    from quaero.runtime.logsetup import configure_logging
    from quaero.runtime.runtime import Runtime

    configure_logging(settings, file_name=f"worker-{index if index is not None else os.getpid()}.log")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runtime = Runtime(settings, role="worker")
    runtime.start()
    if index is not None:
        _exit_with_parent(stop)
    try:
        stop.wait()
    finally:
        runtime.stop()
    return 0


def _exit_with_parent(stop: threading.Event) -> None:
    """A supervised worker stops when its server dies, even by SIGKILL, instead of living on as an orphan."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, name="quaero-parent-watch", daemon=True).start()
