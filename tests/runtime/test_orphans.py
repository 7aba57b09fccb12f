"""Pending jobs whose message was lost are enqueued again on every broker, and run once even when the message
was not lost after all (a message generation fences the old one off)."""

from __future__ import annotations

import pytest
from dramatiq.message import Message
from support import execute, make_settings, need_service, wait_done, wait_for

from quaero.engine.queue import QUEUE_NAME, actor_name
from quaero.runtime import Runtime
from quaero.stores.jobs import ChildSpec

ONE = """
name: one
steps:
  - {name: one, action: test_fanout, config: {count: 1}}
"""


def a_finished_step(runtime, definition=ONE):
    root_id = execute(runtime, definition)
    assert wait_done(runtime, root_id, timeout=30).status == "completed"
    [step] = runtime.jobs.children(root_id)
    return step


@pytest.fixture
def amqp_url():
    need_service("RabbitMQ", "127.0.0.1", 5672)
    return "amqp://guest:guest@127.0.0.1:5672/%2F"


def test_a_lost_message_is_sent_again_on_rabbitmq_while_nothing_waits_on_the_queue(tmp_path, amqp_url):
    runtime = Runtime(make_settings(tmp_path, queue_url=amqp_url), role="run")
    runtime.start()
    try:
        runtime.broker.flush_all()
        step = a_finished_step(runtime)
        # A process died after writing this job and before enqueueing it.
        [orphan] = runtime.jobs.create_children(step, [ChildSpec("test_task", "orphan", {"i": 5})], depth=0)
        assert runtime.monitor.requeue_orphans(older_than=3600) == []  # too young to judge
        # Before: RabbitMQ cannot look for a message, so nothing was ever sent again.
        assert runtime.monitor.requeue_orphans(older_than=0) == [orphan]
        wait_for(lambda: runtime.jobs.get(orphan).status == "completed", 30, what="the orphan to run")
        assert runtime.jobs.get(orphan).attempts == 1
        assert runtime.monitor.requeue_orphans(older_than=0) == []
    finally:
        runtime.broker.flush_all()
        runtime.stop()


def test_a_message_thought_lost_and_its_replacement_run_the_job_once(tmp_path):
    runtime = Runtime(make_settings(tmp_path), role="run")
    runtime.start()
    try:
        # Its jobs take a while: the second message arrives while the first one runs.
        step = a_finished_step(runtime, ONE.replace("count: 1", "count: 1, work_ms: 500"))
        runtime.worker.pause()  # nothing runs until both messages wait on the queue
        try:
            [job] = runtime.jobs.create_children(step, [ChildSpec("test_task", "late", {"i": 7})], depth=0)
            assert runtime.monitor.requeue_orphans(older_than=0) == [job]  # its message "was lost"...
            # ... and turns up after all (a process that was slow, not dead): the original, generation 0.
            runtime.queue.enqueue_many([Message(queue_name=QUEUE_NAME, actor_name=actor_name("test_task"),
                                                args=(job,), kwargs={}, options={}, message_id=job)])
        finally:
            runtime.worker.resume()
        wait_for(lambda: runtime.jobs.get(job).status == "completed", 30, what="the job to run")
        runtime.broker.join(QUEUE_NAME, timeout=30_000)
        # Before: the second message took the running job over ("resuming"), and it ran twice.
        assert runtime.jobs.get(job).attempts == 1 and runtime.jobs.get(job).generation == 1
        assert not any("resuming" in line["message"] for line in runtime.logs.read([job]))
    finally:
        runtime.stop()


def test_a_jobs_table_without_generations_gets_the_column(tmp_path):
    import sqlite3

    from quaero.stores.db import Database
    from quaero.stores.models import bind_models

    path = tmp_path / "old.db"
    database = Database(f"sqlite:///{path}")
    bind_models(database.db)
    database.close()
    conn = sqlite3.connect(path)
    with conn:  # the table as an older release made it
        conn.execute("ALTER TABLE jobs DROP COLUMN generation")
        conn.execute("INSERT INTO jobs (id, type, name, phase, status, payload, depth, attempts, count_pending, "
                     "count_running, count_completed, count_failed, count_cancelled, result_count, "
                     "progress_current, progress_total, created_at, updated_at) "
                     "VALUES ('job_old', 't', 'n', 'execution', 'pending', '{}', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)")
    conn.close()
    database = Database(f"sqlite:///{path}")
    try:
        models = bind_models(database.db)
        assert models.Job.get_by_id("job_old").generation == 0
    finally:
        database.close()
