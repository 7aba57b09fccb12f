"""Prometheus metrics at ``GET /metrics``: jobs by status and type, the queue's depth, job durations, the process.

Nothing is counted as it happens: a collector reads the figures when Prometheus scrapes, each with one
bounded query, so the numbers are right whichever process (server or worker) did the work. Durations
are a gauge histogram over the jobs created in the last :data:`DURATION_WINDOW` seconds (at most
:data:`DURATION_SAMPLE` of them): the present spread, not a running total.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CollectorRegistry, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quaero import __version__
from quaero.runtime import Runtime
from quaero.web.http import runtime_of

DURATION_WINDOW = 3600.0
DURATION_SAMPLE = 10_000
DURATION_BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
QUEUE_STATES: Final = ("ready", "delayed", "in_flight", "dead")  # Final: mypy keeps them as QueueStats keys


class QuaeroCollector(Collector):
    """Reads a runtime's jobs and queue at each scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """Every Quaero metric, read now."""
        yield from self._info()
        yield self._jobs()
        yield self._queue()
        yield self._durations()

    def _info(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("quaero_info", "Quaero's version and this process's role (always 1)",
                                 labels=["version", "role"])
        info.add_metric([__version__, self.runtime.role], 1)
        yield info
        yield GaugeMetricFamily("quaero_worker_processes", "Worker processes this server supervises "
                                "(0: workers run as threads in it)", value=self.runtime.worker_processes)

    def _jobs(self) -> Metric:
        jobs = GaugeMetricFamily("quaero_jobs", "Jobs stored, by status and type", labels=["status", "type"])
        for status, job_type, count in self.runtime.jobs.census():
            jobs.add_metric([status, job_type], count)
        return jobs

    def _queue(self) -> Metric:
        queue = GaugeMetricFamily("quaero_queue_messages",
                                  "Messages on the queue by state: ready, delayed, in_flight (held by a worker), dead",
                                  labels=["queue", "state"])
        for name, counts in sorted(self.runtime.queue.stats().items()):
            for state in QUEUE_STATES:
                value = counts[state]
                if value is not None:  # no sample rather than a made-up 0 (RabbitMQ's in_flight)
                    queue.add_metric([name, state], value)
        return queue

    def _durations(self) -> Metric:
        histogram = GaugeHistogramMetricFamily(
            "quaero_job_duration_seconds",
            f"How long finished jobs ran, over the jobs created in the last {DURATION_WINDOW:g} s "
            f"(the newest {DURATION_SAMPLE} at most)", labels=["type", "status"])
        rows = self.runtime.jobs.durations(since=time.time() - DURATION_WINDOW, bounds=DURATION_BOUNDS,
                                                    limit=DURATION_SAMPLE)
        for job_type, status, count, seconds, *within in rows:
            buckets = [(f"{bound:g}", n) for bound, n in zip(DURATION_BOUNDS, within)] + [("+Inf", count)]
            histogram.add_metric([job_type, status], buckets, gsum_value=seconds)
        return histogram


def registry_for(runtime: Runtime) -> CollectorRegistry:
    """A registry of Quaero's figures and the process's own (CPU, memory, file descriptors, GC, Python)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QuaeroCollector(runtime))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


async def metrics(request: Request) -> Response:
    """Prometheus metrics: jobs by status and type, queue depth, job durations, the process.
    ---
    responses:
      200:
        description: the Prometheus text format, or OpenMetrics when the Accept header asks for it
        content:
          text/plain: {schema: {type: string}}
          application/openmetrics-text: {schema: {type: string}}
    """
    registry = registry_for(runtime_of(request))
    encode, content_type = choose_encoder(request.headers.get("accept", ""))  # OpenMetrics when asked for
    return Response(await asyncio.to_thread(encode, registry), headers={"content-type": content_type})


routes = [Route("/metrics", metrics, methods=["GET"])]
