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


def test_a_cron_that_never_fires_is_a_validation_error(runtime):
    import pytest

    from quaero.errors import DefinitionError

    with pytest.raises(DefinitionError) as caught:
        runtime.definitions.create('name: never\nschedule: "0 0 31 2 *"\nsteps:\n  - {name: a, action: test_fanout}\n')
    assert "never fires" in str(caught.value) and "0 0 31 2 *" in str(caught.value)
    # A rare one that does fire (29 February) is fine.
    runtime.definitions.create('name: leap\nschedule: "0 0 29 2 *"\nsteps:\n  - {name: a, action: test_fanout}\n')


def test_one_bad_schedule_is_logged_and_skipped_while_the_others_fire(runtime, caplog):
    for name in ("a-bad", "b-good"):
        runtime.definitions.create(f'id: {name}\nname: {name}\nschedule: "* * * * *"\nsteps:\n'
                                   f'  - {{name: a, action: test_fanout, config: {{count: 1}}}}\n')
    # Stored by a release that did not check (or written to the database by hand): it cannot be computed.
    Record = runtime.models.JobDefinitionRecord
    Record.update(schedule="0 0 31 2 *").where(Record.id == "a-bad").execute()
    scheduler = Scheduler(runtime.definitions, runtime.jobs, runtime.orchestrator)
    now = time.time()
    assert scheduler.run_due(now) == []
    [fired] = scheduler.run_due(now + 61)
    assert runtime.jobs.get(fired).definition_id == "b-good"
    messages = [r.getMessage() for r in caplog.records if r.name == "quaero.engine.scheduler"]
    assert any("'0 0 31 2 *' of a-bad cannot be computed" in m for m in messages)
    caplog.clear()
    wait_done(runtime, fired)
    [again] = scheduler.run_due(now + 122)  # still firing; the bad one is not logged every pass
    assert runtime.jobs.get(again).definition_id == "b-good"
    assert not [r for r in caplog.records if "cannot be computed" in r.getMessage()]
