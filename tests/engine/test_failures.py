"""How a job that fails for good is told to its worker, whatever stopped it (an Exception or not)."""

from __future__ import annotations

from support import execute, make_settings, wait_done

from quaero.api import Action, ChildSpec, JobWorker, StepManager, StepOptions, hookimpl
from quaero.runtime import Runtime


class Interrupted(BaseException):
    """Not an Exception: what dramatiq's TimeLimitExceeded is, and what `except Exception` misses."""


class StopOptions(StepOptions):
    how: str = "base"  # base | error | time_limit


class StopManager(StepManager):
    def start_step(self, ctx):
        ctx.spawn_many([ChildSpec("test_stop", "stop", {})])


class StopWorker(JobWorker):
    worker_type = "test_stop"

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []

    def execute(self, ctx, job):
        how = ctx.options.how
        if how == "base":
            raise Interrupted("stopped from outside")
        if how == "error":
            raise ValueError("plain error")
        while True:  # past the time limit
            sum(range(1000))

    def after_failure(self, ctx, job, error):
        self.failures.append((job.id, type(error).__name__))


def test_every_way_of_failing_for_good_reaches_after_failure_once(tmp_path):
    worker = StopWorker()

    class Plugin:
        @hookimpl
        def register_actions(self, register):
            register(Action(name="test_stop", manager=StopManager(), workers=[worker], options=StopOptions))

    runtime = Runtime(make_settings(tmp_path, time_limit=1), role="run", extra_plugins=[("stop", Plugin())])
    runtime.start()
    try:
        for how, kind, error in [("base", "Interrupted", "Interrupted: stopped from outside"),
                                 ("error", "ValueError", "ValueError: plain error"),
                                 ("time_limit", "TimeLimitExceeded", "exceeded the time limit of 1 s")]:
            worker.failures.clear()
            root_id = execute(runtime, f"""
name: stop {how}
steps:
  - {{name: stop, action: test_stop, config: {{how: {how}}}}}
""")
            # Before: a BaseException left the job running for good, its message dead-lettered.
            assert wait_done(runtime, root_id, timeout=20).status == "failed"
            [step] = runtime.jobs.children(root_id)
            [child] = runtime.jobs.children(step.id)
            assert (child.status, child.error_message) == ("failed", error)
            assert worker.failures == [(child.id, kind)]
    finally:
        runtime.stop()
