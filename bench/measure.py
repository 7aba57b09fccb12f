"""What the crawl benchmarks share: a site server in its own process, and measuring a crawler run.

- :class:`SiteProcess` runs a benchmark's site server in a subprocess (the benchmark's own script with
  ``--serve-fd``): the socket is bound here and handed over, so the port is known at once, and the server's
  CPU is not the harness's.
- :func:`run_measured` runs a crawler to its exit and samples the summed resident memory of its whole
  process tree (its worker processes, a browser and the browser's helpers) from ``/proc`` every 50 ms;
  the tree's CPU time is measured too.
- :func:`crawl_definition` is the benchmarks' crawl; :func:`run_quaero` is ``quaero run`` of a definition on a
  fresh data directory, the benchmark site's private address allowed, with a look at the data directory
  before it is deleted.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

# ------------------------------------------------------------------------------------------------------
# The site server
# ------------------------------------------------------------------------------------------------------


def serve_app(sock: socket.socket, app: Any) -> None:
    """Serve an ASGI app on ``sock`` with uvicorn (uvloop, httptools, no access log) until terminated."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, workers=1, loop="uvloop",
                            http="httptools", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


class SiteProcess:
    """``python <script> --serve-fd <fd> <args>`` on a socket bound here; ready once ``/robots.txt`` answers."""

    def __init__(self, script: str, args: list[str]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [sys.executable, script, "--serve-fd", str(self.sock.fileno()), *args],
            pass_fds=[self.sock.fileno()], stdin=subprocess.DEVNULL)
        self.sock.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the site server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "robots.txt", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the site server did not answer within {timeout} s")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------------
# Memory of a process tree
# ------------------------------------------------------------------------------------------------------

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class TreeRssSampler:
    """Samples the summed RSS of a process and its descendants every ``interval`` s; keeps the maxima.

    With ``pss_every`` n > 0, every n-th sample also sums their PSS (each shared page divided among the
    processes that map it): a browser's many processes share most of their pages, which RSS counts once
    for each of them. Reading PSS makes the kernel walk every mapping, hence not at every sample.
    """

    def __init__(self, pid: int, interval: float = 0.05, pss_every: int = 0) -> None:
        self.pid = pid
        self.interval = interval
        self.pss_every = pss_every
        self.peak_pss = 0
        self.peak_total = 0
        self.peak_single = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        samples = 0
        while not self._stop.is_set():
            tree = _process_tree(self.pid)
            if self.pss_every and samples % self.pss_every == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss_bytes(pid) for pid in tree))
            samples += 1
            sizes = [_rss_bytes(pid) for pid in tree]
            sizes = [s for s in sizes if s]
            if sizes:
                self.peak_total = max(self.peak_total, sum(sizes))
                self.peak_single = max(self.peak_single, max(sizes))
                self.max_processes = max(self.max_processes, len(sizes))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    """A crawler's run: its exit, output, wall time, the CPU time of its process tree and its memory."""

    returncode: int
    stdout: str
    stderr: str
    wall: float
    cpu: float  # seconds, user + system, of the processes of the tree that were waited for
    sampler: TreeRssSampler


def run_measured(command: list[str], cwd: str, timeout: float, env: dict[str, str] | None = None,
                 pss_every: int = 0) -> Measured:
    """Run a crawler to its exit, its process tree's memory sampled meanwhile.

    The CPU time is what this process's children gained over the run: the crawler's and every descendant's
    that its parent waited for (the site servers, also children, are waited for only at the end).
    """
    before = os.times()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, env=env)
    sampler = TreeRssSampler(process.pid, pss_every=pss_every)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += f"\n(killed after {timeout} s)"
    wall = time.perf_counter() - started
    sampler.stop()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return Measured(process.returncode, stdout, stderr, wall, cpu, sampler)


def mb(n: int) -> float:
    """Bytes as megabytes, one decimal."""
    return round(n / 1024 / 1024, 1)


# ------------------------------------------------------------------------------------------------------
# Quaero
# ------------------------------------------------------------------------------------------------------

#: The benchmark sites are served on 127.0.0.1, which the outbound policy refuses unless allowed.
ALLOW_LOCALHOST = {"QUAERO_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128"}


@dataclass
class QuaeroRun(Measured):
    """One ``quaero run``: how it ran, its ``--json`` summary and what was inspected of its data directory."""

    summary: dict[str, Any] = field(default_factory=dict)
    inspected: Any = None

    def error(self) -> str | None:
        """Why the run failed, in one line, or None if it exited 0."""
        if self.returncode == 0:
            return None
        message = (self.stderr.strip() or self.stdout.strip() or "no output").splitlines()
        return (f"quaero run exited with {self.returncode} (status {self.summary.get('status')}, "
                f"{self.summary.get('error') or ''}): " + " | ".join(message[-5:]))


def crawl_definition(name: str, url: str, concurrency: int, **options: Any) -> str:
    """The benchmarks' one-step crawl of ``url``: every page (max_depth 10), no delay, ``concurrency`` requests
    at once, robots.txt obeyed; ``options`` are more of the step's options (``render="always"``)."""
    config = {"start_urls": [url], "max_depth": 10, "max_pages": 100_000, "per_host_delay_ms": 0,
              "per_host_concurrency": concurrency, "concurrency": concurrency, "respect_robots_txt": True, **options}
    return json.dumps({"name": name, "steps": [{"name": "crawl", "action": "crawl", "config": config}]})


def run_quaero(definition: str, *, workers: int | None, timeout: float, env: dict[str, str] | None = None,
               inspect: Callable[[Path], Any] | None = None, pss_every: int = 0) -> QuaeroRun:
    """``quaero run --json`` of the definition (YAML text) on a fresh data directory, as a subprocess.

    ``env`` is added to this process's environment (and the localhost allowance); ``inspect(data_dir)``
    runs after the exit, before the data directory is deleted, and its value is kept in ``inspected``;
    ``pss_every`` is the sampler's (see :class:`TreeRssSampler`).
    """
    with tempfile.TemporaryDirectory(prefix="quaero-bench-") as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(definition, encoding="utf-8")
        data_dir = Path(tmp) / "data"
        command = [sys.executable, "-m", "quaero", "run", str(path), "--json", "--data-dir", str(data_dir)]
        if workers is not None:
            command += ["--workers", str(workers)]
        measured = run_measured(command, tmp, timeout, env={**os.environ, **ALLOW_LOCALHOST, **(env or {})},
                                pss_every=pss_every)
        run = QuaeroRun(**vars(measured))
        for line in reversed(run.stdout.strip().splitlines()):
            try:
                run.summary = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        if inspect is not None:
            run.inspected = inspect(data_dir)
    return run


def open_documents(data_dir: Path) -> sqlite3.Connection | None:
    """The data directory's document database, read-only, or None when there is none."""
    db_path = data_dir / "quaero.stores.db"
    if not db_path.is_file():
        return None
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)


def count_documents(data_dir: Path) -> int | None:
    """Rows of the ``documents`` table, or None when it cannot be read."""
    conn = open_documents(data_dir)
    if conn is None:
        return None
    try:
        return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        conn.close()
