"""Engine benchmark: broker throughput beside Dramatiq's brokers, and end-to-end job throughput.

    python bench/engine.py [--json] [--children 10000] [--messages 20000] [--skip-broker]

- broker_*: a no-op actor on the SQLite broker (1 process × 8 threads, 2 × 8), Dramatiq's StubBroker and
  its Redis broker (null where no Redis answers on 127.0.0.1:6379), measured in this same run.
- e2e_jobs_per_s: one definition whose step fans out to ``--children`` no-op child jobs, from execute to
  the root completed, with `quaero`'s default deployment: this process as the server (orchestrator,
  monitor, event relay) and one worker process per core.
- completion_latency_ms_p50/p99: last child finished → its step parent completed, over many small
  executions.
- peak_rss_mb: the server process's peak resident memory (the workers' is reported beside it).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_figures

from quaero.runtime import Runtime
from quaero.settings import load_settings


def _settings(data_dir: str, workers: int | None):
    return load_settings(environ={}, overrides=dict(
        data_dir=data_dir, definitions_dir=os.path.join(data_dir, "none"), plugin_modules=["quaero.testing.actions"],
        worker_processes=workers, log_level="WARNING"))


def _wait_root(runtime: Runtime, root_id: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        root = runtime.jobs.get(root_id)
        if root.is_terminal:
            return root
        time.sleep(0.002)
    raise TimeoutError(f"execution {root_id} did not finish in {timeout} s")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker_cpu(runtime: Runtime) -> float:
    """CPU seconds the live worker processes used so far (from /proc; Linux only)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in runtime.supervisor.pids() if runtime.supervisor else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return total


def measure_e2e(children: int, latency_runs: int, workers: int | None) -> dict[str, Any]:
    """End-to-end throughput and completion latency with worker processes."""
    with tempfile.TemporaryDirectory(prefix="quaero-bench-") as data_dir:
        runtime = Runtime(_settings(data_dir, workers), role="run")
        runtime.start()
        try:
            # Warm up: worker processes import and connect before the clock starts.
            warm = runtime.definitions.parse(
                "name: warm\nsteps:\n  - {name: w, action: test_fanout, config: {count: 20}}\n")
            _wait_root(runtime, runtime.orchestrator.execute(warm))

            cpu_before = _cpu()
            big = runtime.definitions.parse(
                f"name: fanout\nsteps:\n  - {{name: fan, action: test_fanout, config: {{count: {children}}}}}\n")
            started = time.perf_counter()
            root = _wait_root(runtime, runtime.orchestrator.execute(big))
            elapsed = time.perf_counter() - started
            assert root.status == "completed", root.error_message
            cpu_server = _cpu() - cpu_before
            cpu_workers = _worker_cpu(runtime)

            small = runtime.definitions.parse(
                "name: small\nsteps:\n  - {name: s, action: test_fanout, config: {count: 50}}\n")
            latencies = []
            for _ in range(latency_runs):
                root_id = runtime.orchestrator.execute(small)
                _wait_root(runtime, root_id)
                [step] = runtime.jobs.children(root_id)
                last_child = max(c.finished_at for c in runtime.jobs.children(step.id, limit=1000))
                latencies.append((step.finished_at - last_child) * 1000)
        finally:
            runtime.stop()
    latencies.sort()
    p99_index = min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))
    return {
        "e2e_children": children,
        "e2e_seconds": round(elapsed, 3),
        "e2e_jobs_per_s": round(children / elapsed),
        "e2e_server_cpu_s": round(cpu_server, 2),
        "e2e_workers_cpu_s_total": round(cpu_workers, 2),
        "completion_latency_ms_p50": round(statistics.median(latencies), 2),
        "completion_latency_ms_p99": round(latencies[p99_index], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "worker_processes": runtime.worker_processes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--latency-runs", type=int, default=40)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per broker measurement")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--skip-broker", action="store_true", help="only the end-to-end figures")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {}
    if not args.skip_broker:
        import broker as broker_bench

        figures.update(broker_bench.measure(args.messages))
        redis = figures.get("redis_1x8_msgs_per_s")
        figures["ratio_1x8_vs_redis"] = round(figures["broker_1x8_msgs_per_s"] / redis, 2) if redis else None
        redis2 = figures.get("redis_2x8_msgs_per_s")
        figures["ratio_2x8_vs_redis"] = round(figures["broker_2x8_msgs_per_s"] / redis2, 2) if redis2 else None
        figures["ratio_1x8_vs_stub"] = round(figures["broker_1x8_msgs_per_s"] / figures["stub_1x8_msgs_per_s"], 2)
    figures.update(measure_e2e(args.children, args.latency_runs, args.workers))
    print_figures(figures, as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
