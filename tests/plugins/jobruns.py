"""Helpers of the built-in plugins' tests: run a definition through the real runtime and read what it did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import execute, wait_done

from quaero.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "job-definitions"


def run(runtime: Runtime, yaml_text: str, *, timeout: float = 60.0) -> Any:
    """Execute a definition and wait for it; returns the finished root job."""
    root = wait_done(runtime, execute(runtime, yaml_text), timeout=timeout)
    runtime.orchestrator.wait_idle()
    runtime.logs.flush()
    return root


def run_example(runtime: Runtime, name: str, **kwargs: Any) -> Any:
    """Execute one of the example definitions in ``job-definitions/``."""
    return run(runtime, (EXAMPLES / name).read_text(), **kwargs)


def only_step(runtime: Runtime, root: Any) -> Any:
    """The step job of a one-step execution."""
    [step] = runtime.jobs.children(root.id)
    return step


def children(runtime: Runtime, root: Any) -> list[Any]:
    """The child jobs of a one-step execution, oldest first."""
    return runtime.jobs.children(only_step(runtime, root).id, limit=1000)


def log_lines(runtime: Runtime, job: Any) -> list[str]:
    """The messages of a job's log."""
    return [line["message"] for line in runtime.logs.read([job.id])]
