"""Chaos runs: a crawl by a real ``quaero serve`` that is killed and restarted, then checked for losses.

:class:`ChaosCrawl` runs ``python -m quaero serve`` as a subprocess, with its worker processes, over a data
directory of its own (SQLite by default; ``database_url`` / ``queue_url`` for PostgreSQL, Redis ...). It
starts a crawl of a :class:`~quaero.testing.site.LocalSite` through the HTTP API, and then, as a test or a
benchmark asks:

- :meth:`kill` sends SIGKILL to the server and to every one of its worker processes at once, the way a
  machine that loses power or an OOM killer stops them, and :meth:`start` starts the server again;
- :meth:`terminate` sends SIGTERM to the server, which drains: running jobs get their grace period, the
  other messages go back to the queue;
- :meth:`wait_progress` measures ``resume_to_progress_s``: from the restart (the moment the new server
  process is spawned) to the first page saved after it;
- :meth:`verify` reads what the run left: the execution's status, the documents (each page once), the jobs
  still pending or running, the queue's messages, and ``PRAGMA integrity_check`` of every SQLite file.

Used by ``tests/runtime/test_chaos.py`` (small, no timing assertions) and ``bench/chaos.py`` (the full size,
with the figures).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quaero.broker import inspector_for, make_broker
from quaero.engine.queue import QUEUE_NAME
from quaero.settings import Settings, load_settings
from quaero.stores.db import Database
from quaero.testing.site import LocalSite

__all__ = ["ChaosCrawl"]

DEFINITION_ID = "chaos-crawl"
LOCAL_NETWORKS = "127.0.0.0/8,::1/128"  # the outbound policy refuses loopback unless allowed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                text = file.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


class ChaosCrawl:
    """One crawl of ``site`` by a ``quaero serve`` subprocess that a test kills and restarts at will.

    Parameters:
      workdir: a directory of its own (the data directory, the definition, the server's log go there).
      site: the site to crawl; every page of it must end up saved once.
      database_url, queue_url: the backends (None: SQLite files in the data directory).
      workers, threads: ``quaero serve --workers --threads``.
      concurrency: the crawl's ``per_host_concurrency``.
      environ: more environment for the server (``QUAERO_*`` settings).
      python: the interpreter that runs ``-m quaero`` (another installation's, to compare releases).
    """

    def __init__(self, workdir: Path, site: LocalSite, *, database_url: str | None = None,
                 queue_url: str | None = None, workers: int = 2, threads: int = 4, concurrency: int = 8,
                 environ: Mapping[str, str] | None = None, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.workdir = Path(workdir)
        self.site = site
        self.workers = workers
        self.threads = threads
        self.data_dir = self.workdir / "data"
        self.definitions_dir = self.workdir / "definitions"
        self.definitions_dir.mkdir(parents=True, exist_ok=True)
        (self.definitions_dir / f"{DEFINITION_ID}.yaml").write_text(
            f"id: {DEFINITION_ID}\nname: chaos crawl\nsteps:\n  - name: crawl\n    action: crawl\n    config:\n"
            f"      start_urls: [\"{site.url('/')}\"]\n      max_depth: 10\n      max_pages: 1000000\n"
            f"      per_host_delay_ms: 0\n      per_host_concurrency: {concurrency}\n", encoding="utf-8")
        self.environ = {
            **os.environ, "QUAERO_ALLOW_PRIVATE_NETWORKS": LOCAL_NETWORKS, "QUAERO_LOG_LEVEL": "WARNING",
            **({"QUAERO_DATABASE_URL": database_url} if database_url else {}),
            **({"QUAERO_QUEUE_URL": queue_url} if queue_url else {}),
            **(environ or {}),
        }
        self.environ.pop("QUAERO_SETTINGS_JSON", None)
        # A deployed server's modules were compiled once, at install: without the .pyc files that this
        # switch forbids, every restart would spend most of its start-up compiling them again.
        self.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        self.settings: Settings = load_settings(environ={k: v for k, v in self.environ.items()
                                                         if k.startswith("QUAERO_")},
                                                overrides={"data_dir": self.data_dir})
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.root_id: str | None = None
        self._database: Database | None = None
        self._log = open(self.workdir / "server.log", "ab")  # kept open across restarts

    # ------------------------------------------------------------------ the server
    def start(self, *, wait: bool = False) -> float:
        """Spawn ``quaero serve``; returns when it was spawned (``time.monotonic()``). ``wait``: until it answers."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the server is still running")
        command = [self.python, "-m", "quaero", "serve", "--data-dir", str(self.data_dir), "--definitions",
                   str(self.definitions_dir), "--port", str(self.port), "--workers", str(self.workers),
                   "--threads", str(self.threads)]
        spawned = time.monotonic()
        # In its own directory: `python -m` puts the working directory first on the path, where a source
        # tree would shadow the installation being run.
        self.process = subprocess.Popen(command, env=self.environ, stdout=self._log, stderr=self._log,
                                        stdin=subprocess.DEVNULL, cwd=self.workdir)
        if wait:
            self._wait_ready()
        return spawned

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"quaero serve exited with {self.process.returncode}; see {self.workdir}/server.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"quaero serve did not answer within {timeout} s")

    def worker_pids(self) -> list[int]:
        """The server's worker processes now."""
        return _children(self.process.pid) if self.process is not None else []

    def kill(self) -> list[int]:
        """SIGKILL the server and every worker process, all at once; returns their pids."""
        assert self.process is not None
        pids = [self.process.pid, *self.worker_pids()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pids

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM the server and wait for it and its workers to stop; returns (exit code, seconds taken)."""
        assert self.process is not None
        workers = self.worker_pids()
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        while any(_alive(pid) for pid in workers) and time.monotonic() - started < timeout:
            time.sleep(0.01)
        return code, time.monotonic() - started

    # ------------------------------------------------------------------ the crawl
    def execute(self) -> str:
        """Start the crawl through the API; returns the execution's root job id."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/jobs/definitions/{DEFINITION_ID}/execute", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            self.root_id = json.loads(response.read())["job_id"]
        return self.root_id

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.settings.resolved_database_url)
        return self._database

    def documents(self) -> int:
        """Documents saved so far."""
        return int(self.database.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def root_status(self) -> str | None:
        row = self.database.execute("SELECT status FROM jobs WHERE id = ?", (self.root_id,)).fetchone()
        return row[0] if row else None

    def wait_documents(self, count: int, timeout: float = 300.0) -> int:
        """Wait until at least ``count`` documents are saved; returns how many there are."""
        deadline = time.monotonic() + timeout
        while (saved := self.documents()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{saved} documents after {timeout} s, waiting for {count}")
            self._check_running()
            time.sleep(0.02)
        return saved

    def wait_progress(self, after: int, since: float, timeout: float = 120.0) -> float:
        """Seconds from ``since`` until more than ``after`` documents are saved (the first new page)."""
        deadline = time.monotonic() + timeout
        while self.documents() <= after:
            if time.monotonic() > deadline:
                raise AssertionError(f"no new page saved within {timeout} s of the restart")
            self._check_running()
            time.sleep(0.005)
        return time.monotonic() - since

    def wait_done(self, timeout: float = 600.0) -> str:
        """Wait until the execution is finished; returns its status."""
        deadline = time.monotonic() + timeout
        while (status := self.root_status()) not in ("completed", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise AssertionError(f"the execution is {status} after {timeout} s ({self.documents()} documents)")
            self._check_running()
            time.sleep(0.05)
        return status or ""

    def _check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"quaero serve exited with {self.process.returncode}; "
                                 f"see {self.workdir / 'server.log'}")

    # ------------------------------------------------------------------ what it left
    def unfinished_jobs(self) -> dict[str, int]:
        """Jobs pending or running, by status."""
        rows = self.database.execute("SELECT status, COUNT(*) FROM jobs WHERE status IN ('pending', 'running') "
                                     "GROUP BY status").fetchall()
        return {status: count for status, count in rows}

    def running_tasks(self) -> list[str]:
        """The ids of the jobs that do work (not an execution's root or a step) marked running."""
        return [row[0] for row in self.database.execute(
            "SELECT id FROM jobs WHERE status = 'running' AND type NOT IN ('parent', 'step')").fetchall()]

    def statuses(self, job_ids: list[str]) -> dict[str, str]:
        """The status of each of these jobs."""
        marks = ", ".join("?" * len(job_ids))
        return dict(self.database.execute(f"SELECT id, status FROM jobs WHERE id IN ({marks})", job_ids).fetchall())

    def queue_counts(self) -> dict[str, Any]:
        """The queue's messages (ready, delayed, in flight, dead), as its inspector counts them."""
        broker = make_broker(self.settings.resolved_queue_url)
        try:
            broker.declare_queue(QUEUE_NAME)
            return dict(inspector_for(broker).stats().get(QUEUE_NAME, {}))
        finally:
            broker.close()

    def verify(self) -> dict[str, Any]:
        """What the run left, as figures a test asserts on (see the module docstring)."""
        database = self.database
        root = database.execute("SELECT status, result_count, error_message FROM jobs WHERE id = ?",
                                (self.root_id,)).fetchone()
        refs = [row[0] for row in database.execute("SELECT source_ref FROM documents").fetchall()]
        steps = database.execute("SELECT id, status, result_count FROM jobs WHERE parent_id = ?",
                                 (self.root_id,)).fetchall()
        expected = {self.site.url(path) for path in self.site.paths}
        report: dict[str, Any] = {
            "root_status": root[0] if root else None, "root_error": root[2] if root else None,
            "root_result_count": root[1] if root else None,
            "steps": [(status, count) for _, status, count in steps],
            "documents": len(refs), "distinct_urls": len(set(refs)), "site_pages": len(expected),
            "missing_pages": len(expected - set(refs)), "unexpected_documents": len(set(refs) - expected),
            "unfinished_jobs": self.unfinished_jobs(),
            "integrity": self.integrity(),
        }
        if self.process is None or self.process.poll() is not None:  # the queue, once nothing holds it
            report["queue"] = self.queue_counts()
        return report

    def integrity(self) -> dict[str, str]:
        """``PRAGMA integrity_check`` of every SQLite file of the data directory."""
        results = {}
        for path in sorted(self.data_dir.glob("*.db")):
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                results[path.name] = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
            finally:
                conn.close()
        return results

    def close(self) -> None:
        """Stop the server if it still runs (SIGKILL) and close what is open."""
        if self.process is not None and self.process.poll() is None:
            self.kill()
        if self._database is not None:
            self._database.close()
            self._database = None
        self._log.close()


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode("ascii", "replace")
    except OSError:
        return False
    return text[text.rfind(")") + 2] not in "ZX"
