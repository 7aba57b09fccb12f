"""Fixtures of the broker tests: real Dramatiq workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dramatiq
import pytest


@pytest.fixture
def start_worker() -> Iterator[Callable[..., dramatiq.Worker]]:
    """Start real Dramatiq workers and stop them afterwards."""
    workers: list[dramatiq.Worker] = []

    def start(broker: dramatiq.Broker, threads: int = 4) -> dramatiq.Worker:
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop(10_000)
