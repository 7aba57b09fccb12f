"""WorkerSupervisor: keeps N ``quaero worker`` processes running for ``quaero serve`` and ``quaero run``.

HTML conversion and parsing hold the GIL, so throughput on N cores needs N processes, not N threads.
A worker that dies (even by SIGKILL) is restarted; the messages it held come back at once, since every
process of the host reclaims what a gone one held (:mod:`quaero.broker.reclaimer`).

``quaero serve`` starts its workers first, before it builds the rest of itself, and forks them (where the
system can) from the modules it has just imported: a worker then starts in a tenth of a second instead of
importing everything again beside its siblings, which is most of a restarted server's time to its first
saved page on a small machine. A worker that has to be restarted later, when threads run in the server
(and forking would be unsafe), is a new ``python -m quaero worker``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable

from quaero.settings import Settings

log = logging.getLogger(__name__)
SETTINGS_ENV = "QUAERO_SETTINGS_JSON"


class Forked:
    """A worker forked from this process, watched the way :class:`subprocess.Popen` watches a spawned one."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone, how is unknown
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


Process = subprocess.Popen[bytes] | Forked


class WorkerSupervisor:
    """Starts, watches and stops worker processes that share this process's settings."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.processes: list[Process | None] = [None] * count
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="quaero-supervisor", daemon=True)

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, SETTINGS_ENV: self.settings.model_dump_json(), "QUAERO_WORKER_INDEX": str(index)}
        # The worker's stdout is this process's stderr (fd 2): whatever a worker prints (a plugin's print())
        # must not land in the middle of what the command prints on stdout, such as `quaero run --json`.
        process = subprocess.Popen([sys.executable, "-m", "quaero", "worker"], env=env, stdout=2)
        log.info("worker process %d started (pid %d)", index, process.pid)
        return process

    def _fork(self, index: int, run: Callable[[int], int]) -> Forked:
        pid = os.fork()
        if pid == 0:  # the worker: it never returns into the server's code
            code = 1
            try:
                os.environ["QUAERO_WORKER_INDEX"] = str(index)
                os.dup2(2, 1)  # stdout is the server's stderr, as for a spawned worker
                code = run(index)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        log.info("worker process %d started (pid %d, forked)", index, pid)
        return Forked(pid)

    def start(self, *, fork: Callable[[int], int] | None = None, preload: Callable[[], None] | None = None) -> None:
        """Start the workers: spawned, or, given ``fork`` (a worker's main, by index), forked from this process
        when it runs no other thread yet, after ``preload`` imported what they run
        (:mod:`quaero.runtime.worker_process` has both)."""
        forking = fork is not None and hasattr(os, "fork") and threading.active_count() == 1
        if forking and preload is not None:
            preload()
            forking = threading.active_count() == 1  # nothing that was imported started a thread
        for index in range(self.count):
            self.processes[index] = self._fork(index, fork) if forking and fork is not None else self._spawn(index)
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
                # A worker exits with 0 only when it was told to stop: on Ctrl-C the whole process group
                # gets the signal, and the server stops it too within the delay, so that is not news.
                if process.returncode != 0:
                    log.warning("worker process %d (pid %d) exited with %s; restarting in %.1f s",
                                index, process.pid, process.returncode, delay)
                if self._stopped.wait(delay):
                    return
                if process.returncode == 0:
                    log.warning("worker process %d (pid %d) stopped on its own; restarting it", index, process.pid)
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
