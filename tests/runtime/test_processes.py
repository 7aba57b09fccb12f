"""Worker processes: sharing one data dir, SIGKILL mid-job, events across processes, restarts."""

from __future__ import annotations

import os
import signal

from support import execute, make_settings, wait_done, wait_for

from quaero.runtime import Runtime
from quaero.stores.events import RESULT_SAVED


def started(settings) -> Runtime:
    runtime = Runtime(settings, role="run")
    runtime.start()
    return runtime


def test_two_worker_processes_share_one_data_dir(tmp_path):
    runtime = started(make_settings(tmp_path, worker_processes=2, worker_threads=2))
    try:
        root_id = execute(runtime, """
name: shared
steps:
  - {name: fan, action: test_fanout, config: {count: 60, work_ms: 50, log_pid: true}}
""")
        assert wait_done(runtime, root_id, timeout=60).status == "completed"
        [step] = runtime.jobs.children(root_id)
        children = runtime.jobs.children(step.id, limit=100)
        lines = runtime.logs.read([c.id for c in children], limit=1000)
        pids = {line["message"] for line in lines if line["message"].startswith("pid=")}
        assert len(pids) == 2, pids
        assert str(os.getpid()) not in {p.split("=")[1] for p in pids}
        assert all(c.attempts == 1 for c in children)
    finally:
        runtime.stop()


def test_events_from_worker_processes_reach_the_server(tmp_path):
    runtime = started(make_settings(tmp_path, worker_processes=1))
    saved = []
    runtime.bus.subscribe(lambda e: saved.append(e.payload), [RESULT_SAVED])
    try:
        root_id = execute(runtime, """
name: remote events
steps:
  - {name: docs, action: test_fanout, config: {count: 5, save_documents: true}}
""")
        assert wait_done(runtime, root_id, timeout=60).status == "completed"
        wait_for(lambda: len(saved) == 5, 5, what="five result_saved events from the worker process")
        assert {p["item_reference"] for p in saved} == {f"test://{root_id}/{i}" for i in range(5)}
    finally:
        runtime.stop()


def test_sigkill_of_a_worker_mid_job_loses_nothing_and_saves_nothing_twice(tmp_path):
    runtime = started(make_settings(tmp_path, worker_processes=1, worker_threads=4, queue_lease_ms=1500))
    try:
        root_id = execute(runtime, """
name: crash
steps:
  - {name: docs, action: test_fanout, config: {count: 6, save_documents: true, work_ms: 2500}}
""")
        step = wait_for(lambda: (s := runtime.jobs.children(root_id)) and s[0], 30)
        wait_for(lambda: runtime.jobs.counts(step.id).running == 4, 30, what="four running children")
        [pid] = runtime.supervisor.pids()
        os.kill(pid, signal.SIGKILL)
        root = wait_done(runtime, root_id, timeout=60)
        assert root.status == "completed"
        children = runtime.jobs.children(step.id)
        assert [c.status for c in children] == ["completed"] * 6
        assert sorted(c.attempts for c in children) == [1, 1, 2, 2, 2, 2]
        assert runtime.documents.count(source_type="test") == 6
        assert runtime.jobs.get(step.id).result_count == 6
        assert runtime.supervisor.pids() and runtime.supervisor.pids() != [pid]
    finally:
        runtime.stop()


def test_restart_resumes_running_executions(tmp_path):
    settings = make_settings(tmp_path)
    first = started(settings)
    root_id = execute(first, """
name: resume
steps:
  - {name: one, action: test_fanout, config: {count: 10, work_ms: 20}}
  - {name: two, action: test_fanout, config: {count: 3}}
""")
    first.orchestrator.wait_idle()
    first.monitor.close()  # the server "dies" before it sees the step finish
    step = first.jobs.children(root_id)[0]
    wait_for(lambda: first.jobs.counts(step.id).completed == 10, 20)
    first.stop()
    assert first.jobs.get(step.id).status == "running"

    second = started(settings)
    try:
        root = wait_done(second, root_id)
        assert root.status == "completed"
        assert [s.status for s in second.jobs.children(root_id)] == ["completed", "completed"]
    finally:
        second.stop()


def test_cancel_reaches_children_running_in_a_worker_process(tmp_path):
    import time

    runtime = started(make_settings(tmp_path, worker_processes=1, worker_threads=3))
    try:
        root_id = execute(runtime, """
name: cancel remote
steps:
  - {name: slow, action: test_fanout, config: {count: 9, work_ms: 30000}}
""")
        step = wait_for(lambda: (s := runtime.jobs.children(root_id)) and s[0], 30)
        wait_for(lambda: runtime.jobs.counts(step.id).running == 3, 30, what="three running children")
        running = [c.id for c in runtime.jobs.children(step.id, status="running")]
        begun = time.monotonic()
        runtime.orchestrator.cancel(root_id)

        def stopped():
            lines = runtime.logs.read(running)
            return sum("stopped: the job was cancelled" in line["message"] for line in lines) == 3

        wait_for(stopped, 5, what="the worker process to stop its three running children")
        assert time.monotonic() - begun < 2.5
        assert runtime.jobs.recount(step.id).cancelled == 9
    finally:
        runtime.stop()
