"""WorkerSupervisor: keeps N ``quaero worker`` processes running for ``quaero serve`` and ``quaero run``.

HTML conversion and parsing hold the GIL, so throughput on N cores needs N processes, not N threads.
A worker that dies (even by SIGKILL) is restarted; the messages it held come back at once, since every
process of the host reclaims what a gone one held (:mod:`quaero.broker.reclaimer`). ``quaero serve`` starts
the workers before it builds the rest of itself, so that they start up beside it, not after it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from quaero.settings import Settings

log = logging.getLogger(__name__)
SETTINGS_ENV = "QUAERO_SETTINGS_JSON"


class WorkerSupervisor:
    """Starts, watches and stops worker processes that share this process's settings."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="quaero-supervisor", daemon=True)

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, SETTINGS_ENV: self.settings.model_dump_json(), "QUAERO_WORKER_INDEX": str(index)}
        # The worker's stdout is this process's stderr (fd 2): whatever a worker prints (a plugin's print())
        # must not land in the middle of what the command prints on stdout, such as `quaero run --json`.
        process = subprocess.Popen([sys.executable, "-m", "quaero", "worker"], env=env, stdout=2)
        log.info("worker process %d started (pid %d)", index, process.pid)
        return process

    def start(self) -> None:
        for index in range(self.count):
            self.processes[index] = self._spawn(index)
        self._thread.start()

    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [p.pid for p in self.processes if p is not None and p.poll() is None]

    def _watch(self) -> None:
        failures = [0] * self.count
        while not self._stopped.wait(0.5):
            for index, process in enumerate(self.processes):
                if process is None or process.poll() is None or self._stopped.is_set():
                    continue
                failures[index] += 1
                delay = min(30.0, 0.5 * 2 ** min(failures[index], 6))
                log.warning("worker process %d (pid %d) exited with %s; restarting in %.1f s",
                            index, process.pid, process.returncode, delay)
                if self._stopped.wait(delay):
                    return
                self.processes[index] = self._spawn(index)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every worker, wait for them to finish their jobs, SIGKILL what is left."""
        self._stopped.set()
        live = [p for p in self.processes if p is not None and p.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in live:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
