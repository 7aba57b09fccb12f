"""Cron schedules: firing, never overlapping a running execution, and the real scheduler thread."""

from __future__ import annotations

import time

from support import make_settings, wait_done, wait_for

from quaero.engine.scheduler import Scheduler
from quaero.runtime import Runtime


def test_due_schedule_fires_once_and_never_overlaps(runtime):
    runtime.definitions.create("""
id: every-minute
name: every minute
schedule: "* * * * *"
steps:
  - {name: slow, action: test_fanout, config: {count: 1, work_ms: 3000}}
""")
    scheduler = Scheduler(runtime.definitions, runtime.jobs, runtime.orchestrator)
    now = time.time()
    assert scheduler.run_due(now) == []  # a new schedule counts from now
    [first] = scheduler.run_due(now + 61)
    assert scheduler.run_due(now + 62) == []  # not due again yet
    assert scheduler.run_due(now + 122) == []  # due, but the first execution still runs
    wait_done(runtime, first)
    [second] = scheduler.run_due(now + 183)
    assert second != first
    runtime.orchestrator.cancel(second)


def test_disabled_definition_does_not_fire(runtime):
    runtime.definitions.create("""
id: sleeping
name: sleeping
enabled: false
schedule: "* * * * *"
steps:
  - {name: a, action: test_fanout}
""")
    scheduler = Scheduler(runtime.definitions, runtime.jobs, runtime.orchestrator)
    now = time.time()
    scheduler.run_due(now)
    assert scheduler.run_due(now + 61) == []


def test_server_scheduler_thread_fires_a_per_second_schedule(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "tick.yaml").write_text("""
name: tick
schedule: "* * * * * *"
steps:
  - {name: a, action: test_fanout, config: {count: 1}}
""")
    runtime = Runtime(make_settings(tmp_path), role="server")
    runtime.start()
    try:
        Job = runtime.models.Job
        executions = lambda: list(Job.select().where(Job.type == "parent", Job.definition_id == "tick"))  # noqa: E731
        wait_for(lambda: len(executions()) >= 2, 10, what="two scheduled executions")
        assert all("schedule" in e.data["trigger"] for e in executions())
    finally:
        runtime.stop()
