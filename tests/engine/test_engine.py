"""The engine end to end in one process: orchestrator, managers, processor, spawner, monitor."""

from __future__ import annotations

import threading
import time

from support import execute, wait_done, wait_for

from quaero.stores.events import EVENT_TYPES, JOB_PROGRESS, JOB_SPAWN, JOB_STATUS_CHANGE, RESULT_SAVED, Event


def steps_of(runtime, root_id):
    return runtime.jobs.children(root_id, limit=100)


def test_fanout_completes_and_counts_every_child(runtime):
    root_id = execute(runtime, """
name: fan
steps:
  - {name: fan, action: test_fanout, config: {count: 300}}
""")
    root = wait_done(runtime, root_id)
    assert root.status == "completed"
    [step] = steps_of(runtime, root_id)
    assert step.status == "completed"
    counts = runtime.jobs.counts(step.id)
    assert counts.completed == 300 and counts.total == 300
    assert runtime.jobs.recount(step.id) == counts
    assert step.finished_at >= max(c.finished_at for c in runtime.jobs.children(step.id, limit=1000))


def test_steps_run_in_order(runtime):
    root_id = execute(runtime, """
name: two steps
steps:
  - {name: first, action: test_fanout, config: {count: 20, work_ms: 20}}
  - {name: second, action: test_fanout, config: {count: 5}}
""")
    assert wait_done(runtime, root_id).status == "completed"
    first, second = steps_of(runtime, root_id)
    assert (first.name, second.name) == ("first", "second")
    first_children = runtime.jobs.children(first.id, limit=100)
    second_children = runtime.jobs.children(second.id, limit=100)
    assert max(c.finished_at for c in first_children) <= min(c.started_at for c in second_children)


def test_events_carry_the_seed_payload_fields(runtime):
    seen: list[Event] = []
    runtime.bus.subscribe(seen.append)
    root_id = execute(runtime, """
name: events
steps:
  - {name: docs, action: test_fanout, config: {count: 3, save_documents: true}}
""")
    wait_done(runtime, root_id)
    # The root's last job_progress follows its status change: wait for that one, not any earlier one.
    wait_for(lambda: any(e.type == JOB_PROGRESS and e.payload["job_id"] == root_id
                         and e.payload["status"] == "completed" for e in seen), 5)
    by_type = {t: [e.payload for e in seen if e.type == t] for t in EVENT_TYPES}
    progress = [p for p in by_type[JOB_PROGRESS] if p["status"] == "completed"]
    assert progress, "a final job_progress for a finished parent"
    assert set(progress[0]) >= {"job_id", "status", "total_subtasks", "pending_subtasks", "running_subtasks",
                                "completed_subtasks", "failed_subtasks", "cancelled_subtasks", "progress_text",
                                "result_count", "timestamp"}
    step_progress = [p for p in progress if p["job_id"] != root_id][0]
    assert step_progress["completed_subtasks"] == 3 and step_progress["result_count"] == 3
    assert step_progress["progress_text"] == "0 pending, 0 running, 3 completed, 0 failed"
    assert set(by_type[JOB_STATUS_CHANGE][0]) >= {"job_id", "parent_id", "status", "job_type", "timestamp"}
    assert len(by_type[RESULT_SAVED]) == 3
    assert set(by_type[RESULT_SAVED][0]) >= {"result_id", "job_id", "parent_job_id", "title", "item_reference",
                                             "timestamp"}
    assert len(by_type[JOB_SPAWN]) == 3
    assert set(by_type[JOB_SPAWN][0]) >= {"parent_job_id", "discovered_by", "child_job_id", "job_type",
                                          "item_reference", "depth", "timestamp"}
    assert by_type["job_log"] and set(by_type["job_log"][0]) >= {"job_id", "level", "message", "timestamp"}


def test_max_depth_limits_spawned_children(runtime):
    root_id = execute(runtime, """
name: tree
steps:
  - {name: tree, action: test_tree, config: {branching: 2, max_depth: 3}}
""")
    assert wait_done(runtime, root_id).status == "completed"
    [step] = steps_of(runtime, root_id)
    children = runtime.jobs.children(step.id, limit=1000)
    assert len(children) == 1 + 2 + 4 + 8
    assert max(c.depth for c in children) == 3
    deep = [c for c in children if c.depth == 3][0]
    parent = runtime.jobs.get(deep.discovered_by)
    assert parent.depth == 2 and deep.parent_id == step.id


def test_retries_with_backoff_then_success(runtime):
    root_id = execute(runtime, """
name: flaky
steps:
  - {name: flaky, action: test_flaky, config: {count: 2, failures: 2}}
""")
    assert wait_done(runtime, root_id).status == "completed"
    [step] = steps_of(runtime, root_id)
    for child in runtime.jobs.children(step.id):
        assert child.status == "completed" and child.attempts == 3
        lines = runtime.logs.read([child.id])
        assert sum("retry" in line["message"] for line in lines) == 2


def test_exhausted_retries_fail_the_job_and_dead_letter_it(runtime):
    root_id = execute(runtime, """
name: hopeless
steps:
  - {name: flaky, action: test_flaky, config: {count: 1, failures: 10}}
""")
    root = wait_done(runtime, root_id)
    assert root.status == "failed" and "all 1 child jobs failed" in root.error_message
    [step] = steps_of(runtime, root_id)
    [child] = runtime.jobs.children(step.id)
    assert child.status == "failed" and child.attempts == 4 and "fails on purpose" in child.error_message
    log_text = "\n".join(line["message"] for line in runtime.logs.read([child.id]))
    assert "Traceback" in log_text and "RuntimeError" in log_text
    wait_for(lambda: runtime.queue.dead_letters(), 5, what="the dead letter")
    assert runtime.queue.dead_letters()[0]["message_id"] == child.id


def test_on_error_continue_and_fail(runtime):
    cont = execute(runtime, """
name: continue
steps:
  - {name: bad, action: test_fanout, on_error: continue, config: {count: 2, fail_every: 1}}
  - {name: good, action: test_fanout, config: {count: 2}}
""")
    assert wait_done(runtime, cont).status == "completed"
    assert [s.status for s in steps_of(runtime, cont)] == ["failed", "completed"]
    fail = execute(runtime, """
name: fail
steps:
  - {name: bad, action: test_fanout, config: {count: 2, fail_every: 1}}
  - {name: never, action: test_fanout, config: {count: 2}}
""")
    root = wait_done(runtime, fail)
    assert root.status == "failed" and "step 'bad' failed" in root.error_message
    assert [s.name for s in steps_of(runtime, fail)] == ["bad"]


def test_on_error_retry_reruns_the_step(runtime):
    root_id = execute(runtime, """
name: retry
steps:
  - {name: bad, action: test_fanout, on_error: retry, max_retries: 2, config: {count: 1, fail_every: 1}}
""")
    root = wait_done(runtime, root_id)
    assert root.status == "failed"
    assert [s.status for s in steps_of(runtime, root_id)] == ["failed"] * 3


def test_error_tolerance_fails_the_step_and_cancels_pending_children(runtime):
    root_id = execute(runtime, """
name: tolerance
error_tolerance: {max_child_failures: 2, failure_action: fail}
steps:
  - {name: many, action: test_fanout, config: {count: 200, fail_every: 2, work_ms: 5}}
""")
    root = wait_done(runtime, root_id)
    assert root.status == "failed"
    [step] = steps_of(runtime, root_id)
    assert step.status == "failed" and "more than the 2 tolerated" in step.error_message
    counts = wait_for(lambda: (c := runtime.jobs.recount(step.id)).active == 0 and c, 10)
    assert counts.cancelled > 0 and counts.failed >= 3


def test_tolerated_failures_complete_the_step(runtime):
    root_id = execute(runtime, """
name: tolerated
steps:
  - {name: some fail, action: test_fanout, config: {count: 10, fail_every: 5}}
""")
    assert wait_done(runtime, root_id).status == "completed"
    [step] = steps_of(runtime, root_id)
    counts = runtime.jobs.counts(step.id)
    assert (counts.completed, counts.failed) == (8, 2)


def test_cancel_stops_pending_and_running_children(runtime):
    root_id = execute(runtime, """
name: slow
steps:
  - {name: slow, action: test_fanout, config: {count: 50, work_ms: 30000}}
""")
    step = wait_for(lambda: steps_of(runtime, root_id) and steps_of(runtime, root_id)[0], 10)
    wait_for(lambda: runtime.jobs.counts(step.id).running >= 2, 10)
    started = time.monotonic()
    runtime.orchestrator.cancel(root_id)
    assert runtime.jobs.get(root_id).status == "cancelled"
    counts = runtime.jobs.recount(step.id)
    assert counts.pending == 0 and counts.completed == 0
    # Running children see the cancellation and stop within 2 s.
    wait_for(lambda: not runtime.processor.watcher._running, 5, what="running children to stop")
    assert time.monotonic() - started < 2.5
    assert runtime.jobs.recount(step.id).cancelled == 50


def test_uncooperative_worker_is_interrupted_on_cancel(runtime):
    root_id = execute(runtime, """
name: stubborn
steps:
  - {name: stubborn, action: test_fanout, config: {count: 1, work_ms: 20000, cooperative: false}}
""")
    step = wait_for(lambda: steps_of(runtime, root_id) and steps_of(runtime, root_id)[0], 10)
    wait_for(lambda: runtime.jobs.counts(step.id).running == 1, 10)
    started = time.monotonic()
    runtime.orchestrator.cancel(root_id)
    wait_for(lambda: not runtime.processor.watcher._running, 5, what="the stubborn child to stop")
    assert time.monotonic() - started < 2.5


def test_execution_timeout_fails_and_cancels(runtime):
    root_id = execute(runtime, """
name: too slow
timeout: 1s
steps:
  - {name: slow, action: test_fanout, config: {count: 3, work_ms: 30000}}
""")
    root = wait_done(runtime, root_id, timeout=10)
    assert root.status == "failed" and "timed out" in root.error_message
    [step] = steps_of(runtime, root_id)
    wait_for(lambda: runtime.jobs.recount(step.id).active == 0, 5)


def test_finished_job_never_runs_again(runtime):
    root_id = execute(runtime, """
name: once
steps:
  - {name: one, action: test_fanout, config: {count: 1, save_documents: true}}
""")
    wait_done(runtime, root_id)
    [step] = steps_of(runtime, root_id)
    [child] = runtime.jobs.children(step.id)
    before = runtime.jobs.get(child.id)
    runtime.job_queue.enqueue(child.type, [child.id])  # a redelivered message
    runtime.broker.join("quaero", timeout=5000)
    after = runtime.jobs.get(child.id)
    assert (after.status, after.attempts, after.finished_at) == ("completed", before.attempts, before.finished_at)
    assert runtime.jobs.get(step.id).result_count == 1


def test_rerun_starts_a_fresh_execution(runtime):
    runtime.definitions.create("""
id: again
name: again
steps:
  - {name: one, action: test_fanout, config: {count: 2}}
""")
    first = runtime.orchestrator.execute("again")
    wait_done(runtime, first)
    second = runtime.orchestrator.rerun(first)
    assert second != first
    root = wait_done(runtime, second)
    assert root.status == "completed" and root.definition_id == "again"


def test_disabled_definition_cannot_execute(runtime):
    import pytest

    from quaero.errors import Conflict

    runtime.definitions.create("id: offline\nname: offline\nenabled: false\n"
                               "steps:\n  - {name: a, action: test_fanout}\n")
    with pytest.raises(Conflict, match="disabled"):
        runtime.orchestrator.execute("offline")


def test_completion_follows_the_last_child_quickly(runtime):
    finished: dict[str, float] = {}
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            finished[event.payload["job_id"]] = time.monotonic()

    runtime.bus.subscribe(record, [JOB_STATUS_CHANGE])
    root_id = execute(runtime, """
name: latency
steps:
  - {name: fan, action: test_fanout, config: {count: 200}}
""")
    wait_done(runtime, root_id)
    [step] = steps_of(runtime, root_id)
    children = runtime.jobs.children(step.id, limit=1000)
    last_child = max(finished[c.id] for c in children)
    assert finished[step.id] - last_child < 0.5  # the 100 ms target is measured by bench/engine.py


def test_time_limit_stops_a_runaway_job(tmp_path):
    from support import make_settings

    from quaero.runtime import Runtime

    runtime = Runtime(make_settings(tmp_path, time_limit=1), role="run")
    runtime.start()
    try:
        root_id = execute(runtime, """
name: runaway
steps:
  - {name: spin, action: test_fanout, config: {count: 1, work_ms: 60000, cooperative: false}}
""")
        root = wait_done(runtime, root_id, timeout=20)
        [step] = steps_of(runtime, root_id)
        [child] = runtime.jobs.children(step.id)
        assert child.status == "failed" and child.error_message == "exceeded the time limit of 1 s"
        assert root.status == "failed"
    finally:
        runtime.stop()


def test_pending_job_whose_message_was_lost_is_enqueued_again(runtime):
    from quaero.stores.jobs import ChildSpec

    root_id = execute(runtime, """
name: lost
steps:
  - {name: one, action: test_fanout, config: {count: 1}}
""")
    wait_done(runtime, root_id)
    [step] = steps_of(runtime, root_id)
    # A process died after writing this job and before enqueueing it.
    [orphan] = runtime.jobs.create_children(step, [ChildSpec("test_task", "orphan", {"i": 5})], depth=0)
    assert runtime.monitor.requeue_orphans(older_than=3600) == []  # too young to judge
    assert runtime.monitor.requeue_orphans(older_than=0) == [orphan]
    wait_for(lambda: runtime.jobs.get(orphan).status == "completed", 10)
    assert runtime.monitor.requeue_orphans(older_than=0) == []
