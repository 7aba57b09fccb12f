"""Actions for tests and benchmarks, loaded with ``plugin_modules = ["quaero.testing.actions"]``.

They exercise the engine without touching the network: fan out no-op children, fail and retry, sleep
until cancelled, spawn trees of children, and save documents.
"""

from __future__ import annotations

import os
import time

from quaero.api import Action, ChildSpec, DocumentInput, JobError, JobWorker, StepManager, StepOptions, hookimpl


class FanoutOptions(StepOptions):
    """``count`` children that each wait ``work_ms``; every ``fail_every``-th one fails."""

    count: int = 10
    work_ms: float = 0.0
    fail_every: int = 0
    save_documents: bool = False
    cooperative: bool = True
    log_pid: bool = False


class TreeOptions(StepOptions):
    """Each child spawns ``branching`` children until ``max_depth``."""

    branching: int = 2
    max_depth: int = 2


class FlakyOptions(StepOptions):
    """``count`` children that each fail ``failures`` times before they succeed."""

    count: int = 1
    failures: int = 1


class _FanoutManager(StepManager):
    # One class serves three actions, so it leaves the informative manager_type (a ClassVar) unset.
    def __init__(self, child_type: str) -> None:
        self.child_type = child_type

    def start_step(self, ctx):
        options = ctx.options
        if isinstance(options, TreeOptions):
            ctx.set_max_depth(options.max_depth)
        count = getattr(options, "count", 1)
        ctx.spawn_many([ChildSpec(self.child_type, f"item {i}", {"i": i}, item_ref=f"item-{i}") for i in range(count)])


class FanoutWorker(JobWorker):
    worker_type = "test_task"

    def execute(self, ctx, job):
        options = ctx.options
        index = job.config["i"]
        if options.log_pid:
            ctx.log("info", f"pid={os.getpid()}")
        if options.save_documents:  # before the work, so a crash mid-work has already saved it
            ctx.save_document(DocumentInput(source_type="test", source_ref=f"test://{job.root_id}/{index}",
                                            title=f"Item {index}", markdown=f"# Item {index}\n\nbody {index}"))
        if options.work_ms:
            if options.cooperative:
                ctx.sleep(options.work_ms / 1000)
            else:
                # Python bytecode that never looks at the context: what an interrupt has to stop.
                deadline = time.monotonic() + options.work_ms / 1000
                while time.monotonic() < deadline:
                    sum(range(1000))
        if options.fail_every and (index + 1) % options.fail_every == 0:
            raise JobError(f"item {index} failed on purpose")


class TreeWorker(JobWorker):
    worker_type = "test_tree"

    def execute(self, ctx, job):
        for i in range(ctx.options.branching):
            ctx.spawn("test_tree", f"{job.name}.{i}", {"i": i}, item_ref=f"{job.name}.{i}")


class FlakyWorker(JobWorker):
    worker_type = "test_flaky"
    max_retries = 3
    min_backoff_ms = 50
    max_backoff_ms = 200

    def execute(self, ctx, job):
        if job.attempts <= ctx.options.failures:
            raise RuntimeError(f"attempt {job.attempts} fails on purpose")
        ctx.log("info", f"succeeded on attempt {job.attempts}")


@hookimpl
def register_actions(register):
    register(Action(name="test_fanout", manager=_FanoutManager("test_task"),
                    workers=[FanoutWorker()], options=FanoutOptions,
                    description="Fan out no-op (or slow, failing, document-saving) children."))
    register(Action(name="test_tree", manager=_FanoutManager("test_tree"),
                    workers=[TreeWorker()], options=TreeOptions, description="Spawn a tree of children."))
    register(Action(name="test_flaky", manager=_FanoutManager("test_flaky"),
                    workers=[FlakyWorker()], options=FlakyOptions, description="Children that fail, then succeed."))
