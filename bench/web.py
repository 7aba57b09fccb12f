"""Web benchmark: the ``/ws`` event stream under real work, and the jobs pages and API at 100,000 jobs.

    python bench/web.py [--json] [--clients 50] [--children 10000] [--paced-children 2000]
                        [--paced-work-ms 200] [--ws-compression deflate|none] [--jobs 100000]
                        [--detail-children 10000] [--log-lines 20000] [--requests 200] [--skip-ws] [--skip-pages]

Everything runs against ``quaero serve`` started as a subprocess on 127.0.0.1 (a free port, its own
temporary data directory, ``QUAERO_PLUGIN_MODULES=quaero.testing.actions``, the default worker processes).

- ws_*: ``--clients`` WebSocket clients of ``/ws`` listen while an execution runs. The clients run in
  a separate process (this script in client mode, asyncio + the ``websockets`` library), so they do not
  take the server's GIL. Every event payload carries its ISO 8601 UTC ``timestamp`` (milliseconds,
  truncated): latency is client receipt minus that, on the same clock, so it includes any time the
  client process waited for a CPU. Each client stops on the root job's terminal ``job_status_change``.
  *_events_per_s is deliveries summed over the clients / (last receipt - the execute request);
  *_events_emitted is the most any client got plus what it was told it missed (``events_dropped``);
  *_latency_ms_p99_each_second shows whether a backlog builds up. Four runs:
  ws_* and ws_batch_*: the target's load, ``--paced-children`` children of ``--paced-work-ms`` each
  (about 240 events/s emitted, 12,000 deliveries/s to 50 clients), one event per frame and then with
  ``?batch=1`` (a JSON array of the waiting events per frame). ws_flood_* and ws_flood_batch_*: a
  ``--children``-wide fan-out of no-op children (about 4,500 events/s emitted, 220,000 deliveries/s
  wanted), to show where each mode stops keeping up; ws_baseline_execution_s is that execution with no
  client listening.
  ws_server_shutdown_s: how long ``quaero serve`` took to stop after SIGINT (a second SIGINT comes
  after 15 s).
- *_ms_p50/p95: ``--requests`` sequential GETs (httpx, keep-alive, after a warm-up) of the jobs page,
  the jobs API (plain, filtered, the second page and a deep page by the ``next`` cursor, and a deep
  offset for contrast) and the detail page of a step with ``--detail-children`` children and
  ``--log-lines`` log lines in its subtree (and of its execution's root). The rows are written straight
  into the server's SQLite file before it starts (schema from ``quaero.stores.models.bind_models``, no ANALYZE
  statistics, as on a fresh install): executions of several definitions spread over 30 days, each a root
  (``parent``), 1-3 steps and their children, all finished (completed, failed, cancelled: a running
  one would be resumed by the server and change under the measurement).
- *_server_rss_mb: the server process's resident memory at the end of each part (its worker processes
  beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_figures

SEED = 20240601
DAY = 86400.0


# ------------------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class QuaeroServer:
    """``quaero serve`` in a subprocess on a free port of 127.0.0.1, over ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
        env.update(QUAERO_PLUGIN_MODULES="quaero.testing.actions", QUAERO_LOG_LEVEL="WARNING")
        (data_dir / "definitions").mkdir(parents=True, exist_ok=True)
        self._stderr = open(data_dir / "serve.stderr", "wb")  # closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quaero", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(data_dir), "--definitions", str(data_dir / "definitions")],
            cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._stderr)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get("/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"quaero serve did not start: {(data_dir / 'serve.stderr').read_text()[-2000:]}")
            time.sleep(0.1)

    def workers(self) -> list[int]:
        return _children_of(self.process.pid)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the server process and by its worker processes."""
        return _cpu_s(self.process.pid), sum(_cpu_s(pid) for pid in self.workers())

    def memory(self) -> dict[str, Any]:
        workers = self.workers()
        return {"server_rss_mb": _rss_mb(self.process.pid),
                "workers_rss_mb": round(sum(_rss_mb(pid) for pid in workers), 1), "worker_processes": len(workers)}

    def close(self) -> None:
        self.http.close()
        started = time.monotonic()
        # A second SIGINT makes uvicorn stop waiting for open connections; then there is only SIGKILL.
        for stop, wait in ((signal.SIGINT, 15), (signal.SIGINT, 10), (signal.SIGKILL, 10)):
            if self.process.poll() is not None:
                break
            self.process.send_signal(stop)
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self.shutdown_s = round(time.monotonic() - started, 1)
        self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fanout_definition(definition_id: str, children: int, work_ms: float = 0) -> str:
    return (f"id: {definition_id}\nname: {definition_id}\nsteps:\n"
            f"  - {{name: fan, action: test_fanout, config: {{count: {children}, work_ms: {work_ms}}}}}\n")


def _execute(server: QuaeroServer, definition_id: str) -> str:
    response = server.http.post(f"/api/jobs/definitions/{definition_id}/execute")
    response.raise_for_status()
    return response.json()["job_id"]


def _wait_finished(server: QuaeroServer, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = server.http.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"execution {job_id} did not finish in {timeout} s")


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


# ------------------------------------------------------------------------------------------------------
# WebSocket clients (the client-mode process)
# ------------------------------------------------------------------------------------------------------

# A message's type and its payload's timestamp (the last key of every event's payload).
_STAMPED = re.compile(r'"type":\s*"(\w+)",\s*"payload":\s*\{.*?"timestamp":\s*"([^"]+)"')


def _messages(text: str) -> list[dict[str, Any]]:
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


async def _frames(ws: Any) -> Any:
    """The socket's frames until it closes, however it closes."""
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        while True:
            yield await ws.recv()


async def _listen(url: str, clients: int, compression: str | None) -> dict[str, Any]:
    """Connect ``clients`` sockets, say "ready", read the root id from stdin, receive until it finishes."""
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=compression, max_size=None, ping_interval=None,
                               close_timeout=1)
               for _ in range(clients)]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    root: dict[str, str] = {}
    stamps: dict[str, float] = {}  # many events share a millisecond: parse each stamp once
    by_type: dict[str, list[float]] = {}

    async def receive(ws: Any, got: dict[str, Any]) -> None:
        # No json.loads per frame: at 100,000 events/s this one process would be the bottleneck. The
        # server writes compact JSON, so a key in the text is a key of some message.
        latencies = got["latencies"]
        async for text in _frames(ws):
            now = time.time()
            got["frames"] += 1
            got["array_frames"] += text.startswith("[")
            messages = text.count('"payload":')
            if '"events_dropped"' in text:
                for message in _messages(text):
                    if message.get("type") == "events_dropped":
                        got["dropped"] += message["payload"]["count"]
                        messages -= 1
            got["events"] += messages
            for kind, stamp in _STAMPED.findall(text):
                epoch = stamps.get(stamp)
                if epoch is None:
                    epoch = stamps[stamp] = _epoch(stamp)
                latencies.append((now, (now - epoch) * 1000))
                by_type.setdefault(kind, []).append((now - epoch) * 1000)
            got["first"] = got["first"] or now
            got["last"] = now
            if root.get("id") and root["id"] in text and any(
                    m.get("type") == "job_status_change" and m["payload"].get("job_id") == root["id"]
                    and m["payload"].get("status") in ("completed", "failed", "cancelled") for m in _messages(text)):
                got["done"] = True
                break
        await ws.close()

    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:  # a daemon thread: a blocked read must not keep the process alive
        for line in itertools.chain(sys.stdin, ["stop"]):
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(lines.put_nowait, line.strip())

    threading.Thread(target=read_stdin, daemon=True).start()
    results = [{"events": 0, "dropped": 0, "frames": 0, "array_frames": 0, "first": None, "last": None,
                "latencies": [], "done": False} for _ in sockets]
    tasks = [asyncio.create_task(receive(ws, got)) for ws, got in zip(sockets, results)]
    root["id"], started = (await lines.get()).split()
    begin = float(started)
    stop = asyncio.ensure_future(lines.get())  # "stop" (or EOF): give up on the clients still waiting
    await asyncio.wait([asyncio.gather(*tasks, return_exceptions=True), stop], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    latencies = sorted(x for r in results for _, x in r["latencies"])
    per_second: dict[int, list[float]] = {}
    for r in results:
        for when, x in r["latencies"]:
            per_second.setdefault(int(when - begin), []).append(x)
    usage = resource.getrusage(resource.RUSAGE_SELF)

    return {
        "finished_clients": sum(r["done"] for r in results), "clients": clients,
        "per_client": [{k: r[k] for k in ("events", "dropped", "frames", "array_frames", "first", "last")}
                       for r in results],
        "latency_ms_p50": _pick(latencies, 0.5), "latency_ms_p99": _pick(latencies, 0.99),
        "latency_ms_max": _pick(latencies, 1.0),
        "latency_ms_p99_by_type": {kind: _pick(sorted(values), 0.99) for kind, values in sorted(by_type.items())},
        "latency_ms_p99_each_second": [_pick(sorted(per_second.get(second, [])), 0.99)
                                       for second in range(max(per_second, default=-1) + 1)],
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def _pick(ordered: list[float], q: float) -> float | None:
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1) if ordered else None


def client_main(args: argparse.Namespace) -> int:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    compression = None if args.ws_compression == "none" else "deflate"
    result = asyncio.run(_listen(args.client_url, args.clients, compression))
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------------------------
# The event stream
# ------------------------------------------------------------------------------------------------------

def _run_clients(server: QuaeroServer, definition_id: str, clients: int, query: str,
                 compression: str) -> dict[str, Any]:
    """One execution with ``clients`` listeners; the clients' report and the server's side of it."""
    url = f"ws://127.0.0.1:{server.port}/ws" + (f"?{query}" if query else "")
    process = subprocess.Popen(
        [sys.executable, __file__, "--client-url", url, "--clients", str(clients), "--ws-compression", compression],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin and process.stdout
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the WebSocket clients did not connect")
        server_cpu, worker_cpu = server.cpu()
        started = time.time()
        root_id = _execute(server, definition_id)
        process.stdin.write(f"{root_id} {started}\n")
        process.stdin.flush()
        root = _wait_finished(server, root_id)
        try:
            process.wait(timeout=30)  # each client stops on the root's last event
        except subprocess.TimeoutExpired:  # some client missed it (dropped)
            process.stdin.write("stop\n")
            process.stdin.flush()
            process.wait(timeout=30)
        report = json.loads(process.stdout.read().strip().splitlines()[-1])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    server_cpu2, worker_cpu2 = server.cpu()
    per_client = report["per_client"]
    delivered = sum(c["events"] for c in per_client)
    emitted = max((c["events"] + c["dropped"] for c in per_client), default=0)
    last = max((c["last"] for c in per_client if c["last"]), default=started)
    finished = _epoch(root["finished_at"])
    return {
        "status": root["status"], "execution_s": round(finished - started, 2),
        "events_emitted": emitted, "emitted_per_s": round(emitted / (finished - started)),
        "events_delivered": delivered, "events_dropped": sum(c["dropped"] for c in per_client),
        "events_per_s": round(delivered / (last - started)),
        "events_per_s_per_client": round(delivered / (last - started) / clients),
        "events_per_client_min": min((c["events"] for c in per_client), default=0),
        "events_per_client_max": max((c["events"] for c in per_client), default=0),
        "frames": sum(c["frames"] for c in per_client), "array_frames": sum(c["array_frames"] for c in per_client),
        "last_event_after_finish_ms": round((last - finished) * 1000),
        "latency_ms_p50": report["latency_ms_p50"], "latency_ms_p99": report["latency_ms_p99"],
        "latency_ms_max": report["latency_ms_max"], "latency_ms_p99_by_type": report["latency_ms_p99_by_type"],
        "latency_ms_p99_each_second": report["latency_ms_p99_each_second"],
        "clients_finished": report["finished_clients"],
        "client_cpu_s": report["client_cpu_s"], "server_cpu_s": round(server_cpu2 - server_cpu, 2),
        "workers_cpu_s": round(worker_cpu2 - worker_cpu, 2),
    }


def measure_ws(children: int, clients: int, compression: str, paced_children: int,
               paced_work_ms: float) -> dict[str, Any]:
    """The event stream to ``clients`` listeners during a ``children``-wide fan-out (and a paced one)."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="quaero-bench-web-") as tmp:
        server = QuaeroServer(Path(tmp))
        try:
            for definition_id, count, work_ms in (("bench-warm", 200, 0), ("bench-fanout", children, 0),
                                                   ("bench-paced", paced_children, paced_work_ms)):
                response = server.http.post("/api/jobs/definitions", headers={"content-type": "application/yaml"},
                                            content=_fanout_definition(definition_id, count, work_ms))
                response.raise_for_status()
            _wait_finished(server, _execute(server, "bench-warm"))  # the workers import and connect first

            started = time.time()
            baseline = _wait_finished(server, _execute(server, "bench-fanout"))
            figures["ws_baseline_execution_s"] = round(_epoch(baseline["finished_at"]) - started, 2)

            # The target's load (paced: about 240 events/s, 12,000 deliveries/s to 50 clients), one event per
            # frame and then in batches; then a flood (the no-op fan-out) in both modes, to show the ceiling.
            runs = {}
            if paced_children:
                runs["ws_"] = _run_clients(server, "bench-paced", clients, "", compression)
                runs["ws_batch_"] = _run_clients(server, "bench-paced", clients, "batch=1", compression)
            runs["ws_flood_"] = _run_clients(server, "bench-fanout", clients, "", compression)
            runs["ws_flood_batch_"] = _run_clients(server, "bench-fanout", clients, "batch=1", compression)
            for prefix, run in runs.items():
                figures[prefix + "events_per_s"] = run.pop("events_per_s")
                figures[prefix + "latency_ms_p99"] = run.pop("latency_ms_p99")
            for prefix, run in runs.items():
                figures.update({prefix + key: value for key, value in run.items()
                                if "batch" in prefix or key != "array_frames"})
            figures.update({f"ws_{key}": value for key, value in server.memory().items()})
        finally:
            server.close()
    figures.update(ws_server_shutdown_s=server.shutdown_s, ws_clients=clients, ws_children=children,
                   ws_paced_children=paced_children, ws_paced_work_ms=paced_work_ms, ws_compression=compression)
    return figures


# ------------------------------------------------------------------------------------------------------
# Seeding 100,000 jobs
# ------------------------------------------------------------------------------------------------------

# definition id: (steps as (name, action, child type), how often it runs)
DEFINITIONS = {
    "docs-crawl": ([("crawl", "crawl", "crawler_url"), ("transform", "transform", "transform_document"),
                    ("reindex", "reindex", "reindex_batch")], 4),
    "blog-crawl": ([("crawl", "crawl", "crawler_url"), ("enrich", "agent", "agent_document")], 3),
    "transform-documents": ([("transform", "transform", "transform_document")], 2),
    "maintenance-nightly": ([("vacuum", "maintenance", "maintenance_task"),
                             ("prune", "maintenance", "maintenance_task")], 1),
}


def _job_id(stamp: float, rng: random.Random) -> str:
    """Like ``quaero.stores.jobs.new_job_id`` at ``stamp``: time-ordered, so listing by id lists by creation."""
    return f"job_{int(stamp * 1000):012x}{rng.getrandbits(48):012x}"


class Seeder:
    """Rows for the jobs and job_logs tables, in creation order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.jobs: list[tuple] = []
        self.logs: list[tuple] = []

    def job(self, *, stamp: float, parent: str | None, root: str | None, definition: str, type: str, name: str,
            status: str, payload: dict, took: float, counts: tuple[int, ...] = (0, 0, 0, 0, 0), results: int = 0,
            error: str | None = None) -> str:
        job_id = _job_id(stamp, self.rng)
        started = stamp + (0.002 if type in ("parent", "step") else self.rng.uniform(0.01, 2.0))
        finished = (started + took if status != "cancelled" or type in ("parent", "step") or self.rng.random() < 0.5
                    else None)
        if status == "cancelled" and finished is None:
            started, finished = None, stamp + took  # cancelled while pending
        self.jobs.append((job_id, parent, root or job_id, definition, None, type, name, "execution", status,
                          "running" if started else "pending", error, 0, 0, json.dumps(payload), 0,
                          1 if started else 0, *counts, results, stamp, finished, started, finished))
        return job_id

    def log(self, job_id: str, stamp: float, level: str, message: str) -> None:
        self.logs.append((job_id, level, message, stamp))

    def execution(self, definition: str, stamp: float, children_per_step: list[int], status: str,
                  child_type: str | None = None, child_logs: int = 0) -> tuple[str, list[str]]:
        """A root, its steps and their children; returns the root's and the steps' ids."""
        rng = self.rng
        steps, _ = DEFINITIONS.get(definition, ([("fan", "test_fanout", "test_task")], 0))
        steps = steps[: len(children_per_step)]
        root_payload = {"definition": {"id": definition, "name": definition, "steps": [
            {"name": n, "action": a, "config": {}} for n, a, _ in steps]}, "trigger": "schedule",
            "step_index": len(steps) - 1, "retries": {}, "timeout": 3600.0}
        # The root's row comes first (ids are time-ordered); its counts are filled in below.
        root_index = len(self.jobs)
        root_id = self.job(stamp=stamp, parent=None, root=None, definition=definition, type="parent",
                           name=definition, status=status, payload=root_payload, took=0)
        self.log(root_id, stamp + 0.001, "info",
                 f"execution of {definition!r} started (schedule), {len(steps)} step(s)")
        step_ids, step_statuses, clock = [], [], stamp + 0.01
        for index, ((name, action, kind), count) in enumerate(zip(steps, children_per_step)):
            kind = child_type or kind
            step_status = status if index == len(steps) - 1 or status == "completed" else "completed"
            tally = dict.fromkeys(("pending", "running", "completed", "failed", "cancelled"), 0)
            step_index = len(self.jobs)
            step_id = self.job(stamp=clock, parent=root_id, root=root_id, definition=definition, type="step",
                               name=name, status=step_status, payload={"action": action, "step": name, "config": {},
                                                                       "handled": True}, took=0)
            self.log(root_id, clock + 0.001, "info",
                     f"step {index + 1}/{len(steps)} {name!r} ({action}) started as {step_id}")
            child_stamp = clock + 0.02
            for i in range(count):
                if step_status == "completed":
                    child_status = "failed" if rng.random() < 0.02 else "completed"
                elif step_status == "failed":
                    child_status = "failed" if rng.random() < 0.3 else ("completed" if i < count / 2 else "cancelled")
                else:
                    child_status = "completed" if i < count * rng.random() else "cancelled"
                tally[child_status] += 1
                took = rng.expovariate(1 / 0.4)
                error = f"item {i} failed: HTTP 503 from the origin" if child_status == "failed" else None
                child_id = self.job(stamp=child_stamp, parent=step_id, root=root_id, definition=definition, type=kind,
                                    name=f"item {i}", status=child_status, took=took, error=error,
                                    payload={"config": {"url": f"https://docs.example.com/{definition}/{i}.html"},
                                             "item_ref": f"https://docs.example.com/{definition}/{i}.html"})
                when = child_stamp + i * 0.05
                for line in range(child_logs):
                    self.log(child_id, when + line * took / max(child_logs, 1), "info",
                             f"fetched https://docs.example.com/{definition}/{i}.html (200, 18 KB) "
                             f"in {took * 1000:.0f} ms" if line else f"item {i}: started on attempt 1")
                if error:
                    self.log(child_id, when + took, "error", f"failed: {error}")
            clock = child_stamp + count * 0.05 + 1
            self._finish(step_index, clock, tally, tally["completed"])
            self.log(step_id, clock, "info" if step_status == "completed" else "error",
                     f"step {step_status}: {tally['pending']} pending, {tally['running']} running, "
                     f"{tally['completed']} completed, {tally['failed']} failed")
            step_ids.append(step_id)
            step_statuses.append(step_status)
        tally = {s: step_statuses.count(s) for s in ("pending", "running", "completed", "failed", "cancelled")}
        self._finish(root_index, clock + 0.01, tally, 0)
        self.log(root_id, clock + 0.01, "info", f"execution {status}")
        return root_id, step_ids

    def _finish(self, index: int, finished: float, tally: dict[str, int], results: int) -> None:
        row = list(self.jobs[index])
        row[16:21] = [tally["pending"], tally["running"], tally["completed"], tally["failed"], tally["cancelled"]]
        row[21] = results
        row[23] = row[25] = finished  # updated_at, finished_at
        self.jobs[index] = tuple(row)


def seed(db_path: Path, total: int, detail_children: int, log_lines: int, rng_seed: int = SEED) -> dict[str, str]:
    """Fill a fresh database with ``total`` jobs; the ids of the big execution and a few others to ask for."""
    from quaero.stores.db import Database
    from quaero.stores.models import bind_models

    database = Database(f"sqlite:///{db_path}")
    bind_models(database.db)  # the schema, indexes and triggers the server would create
    database.close()

    rng = random.Random(rng_seed)
    seeder = Seeder(rng)
    now = time.time()
    start = now - 30 * DAY
    big_at = now - 3 * DAY
    budget = total - detail_children - 2
    plan: list[tuple[float, str, list[int], str]] = []
    weighted = [name for name, (_, weight) in DEFINITIONS.items() for _ in range(weight)]
    while budget > 0:
        definition = rng.choice(weighted)
        steps = len(DEFINITIONS[definition][0])
        counts = [min(budget, max(1, int(rng.expovariate(1 / 25)))) for _ in range(steps)]
        used = 1 + len(counts) + sum(counts)
        if used > budget:  # the last execution takes what is left
            if budget < 2:
                break
            counts, used = [budget - 2], budget
        budget -= used
        status = rng.choices(("completed", "failed", "cancelled"), (88, 7, 5))[0]
        plan.append((rng.uniform(start, now - 3600), definition, counts, status))
    plan.sort()
    big = None
    for stamp, definition, counts, status in plan:
        if big is None and stamp > big_at:
            per_child = max(1, round(log_lines / max(detail_children, 1)))
            big = seeder.execution("bench-fanout", big_at, [detail_children], "completed", "test_task", per_child)
        seeder.execution(definition, stamp, counts, status, child_logs=1 if rng.random() < 0.3 else 0)
    if big is None:
        big = seeder.execution("bench-fanout", big_at, [detail_children], "completed", "test_task",
                               max(1, round(log_lines / max(detail_children, 1))))
    seeder.logs.sort(key=lambda line: line[3])

    with sqlite3.connect(db_path) as conn:
        marks = ", ".join("?" * len(seeder.jobs[0]))
        conn.executemany(
            "INSERT INTO jobs (id, parent_id, root_id, definition_id, discovered_by, type, name, phase, status, "
            "previous_status, error_message, progress_current, progress_total, payload, depth, attempts, "
            "count_pending, count_running, count_completed, count_failed, count_cancelled, result_count, "
            f"created_at, updated_at, started_at, finished_at) VALUES ({marks})", seeder.jobs)
        conn.executemany("INSERT INTO job_logs (job_id, level, message, timestamp) VALUES (?, ?, ?, ?)", seeder.logs)
    root_id, [step_id] = big
    return {"root": root_id, "step": step_id, "jobs": str(len(seeder.jobs)), "log_lines": str(len(seeder.logs))}


# ------------------------------------------------------------------------------------------------------
# The pages and the API
# ------------------------------------------------------------------------------------------------------

def _time_get(http: httpx.Client, path: str, requests: int, warmup: int = 10) -> tuple[dict[str, float], Any]:
    """p50 and p95 in ms of ``requests`` sequential GETs of ``path``; and the last response."""
    for _ in range(warmup):
        response = http.get(path)
        response.raise_for_status()
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        response = http.get(path)
        took.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    took.sort()
    return {"p50": round(statistics.median(took), 1),
            "p95": round(took[min(len(took) - 1, round(0.95 * (len(took) - 1)))], 1)}, response


def measure_pages(total: int, detail_children: int, log_lines: int, requests: int) -> dict[str, Any]:
    """Latency of the jobs page, the jobs API and the job detail page over ``total`` stored jobs."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="quaero-bench-web-") as tmp:
        started = time.perf_counter()
        ids = seed(Path(tmp) / "quaero.stores.db", total, detail_children, log_lines)
        figures.update(seeded_jobs=int(ids["jobs"]), seeded_log_lines=int(ids["log_lines"]),
                       seed_s=round(time.perf_counter() - started, 1))
        with QuaeroServer(Path(tmp)) as server:
            http = server.http

            def measure(name: str, path: str) -> Any:
                times, response = _time_get(http, path, requests)
                figures[f"{name}_ms_p50"], figures[f"{name}_ms_p95"] = times["p50"], times["p95"]
                return response

            measure("jobs_page", "/jobs")
            measure("jobs_page_failed", "/jobs?status=failed")
            measure("jobs_page_children", "/jobs?type=crawler_url")
            first = measure("api_jobs", "/api/jobs").json()
            measure("api_jobs_completed", "/api/jobs?status=completed")
            measure("api_jobs_parents", "/api/jobs?type=parent")
            measure("api_jobs_children", "/api/jobs?type=crawler_url")
            measure("api_jobs_definition", "/api/jobs?definition_id=docs-crawl")
            if first.get("next"):
                measure("api_jobs_page2", f"/api/jobs?before={first['next']}")
                deep = http.get("/api/jobs", params={"limit": 1, "offset": total * 9 // 10}).json()["items"][0]["id"]
                measure("api_jobs_deep_cursor", f"/api/jobs?before={deep}")
            measure("api_jobs_deep_offset", f"/api/jobs?offset={total * 9 // 10}")
            measure("job_detail", f"/jobs/{ids['step']}")
            measure("job_detail_root", f"/jobs/{ids['root']}")
            measure("api_job_children", f"/api/jobs/{ids['step']}/children?offset={detail_children // 2}")
            figures.update({f"pages_{key}": value for key, value in server.memory().items()})
    figures.update(requests_each=requests, detail_children=detail_children)
    return figures


# ------------------------------------------------------------------------------------------------------

TARGETS = {"ws_events_per_s": (">=", 10_000), "ws_latency_ms_p99": ("<", 250),
           "ws_batch_events_per_s": (">=", 10_000), "ws_batch_latency_ms_p99": ("<", 250),
           "jobs_page_ms_p95": ("<", 100), "api_jobs_ms_p95": ("<", 100), "job_detail_ms_p95": ("<", 150)}


def _misses(figures: dict[str, Any]) -> list[str]:
    missed = []
    for name, (op, bound) in TARGETS.items():
        value = figures.get(name)
        if value is not None and not (value >= bound if op == ">=" else value < bound):
            missed.append(f"{name} {value} (target {op} {bound})")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--clients", type=int, default=50, help="WebSocket clients of /ws")
    parser.add_argument("--children", type=int, default=10_000, help="children of the fan-out the clients watch")
    parser.add_argument("--paced-children", type=int, default=2000,
                        help="children of the paced fan-out (0: skip it)")
    parser.add_argument("--paced-work-ms", type=float, default=200,
                        help="work of each paced child: about 240 events/s, 12,000 deliveries/s to 50 clients")
    parser.add_argument("--ws-compression", choices=("deflate", "none"), default="deflate",
                        help="permessage-deflate offered by the clients (browsers offer it)")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs stored for the pages")
    parser.add_argument("--detail-children", type=int, default=10_000, help="children of the detail page's step")
    parser.add_argument("--log-lines", type=int, default=20_000, help="log lines of the detail page's step")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per URL")
    parser.add_argument("--skip-ws", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--client-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client_url:
        return client_main(args)

    figures: dict[str, Any] = {}
    if not args.skip_ws:
        figures.update(measure_ws(args.children, args.clients, args.ws_compression, args.paced_children,
                                  args.paced_work_ms))
    if not args.skip_pages:
        figures.update(measure_pages(args.jobs, args.detail_children, args.log_lines, args.requests))
    figures["targets_missed"] = _misses(figures)
    print_figures(figures, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
