"""Scale-out paths: Dramatiq's Redis and RabbitMQ brokers, and PostgreSQL for the data.

These need the services; on a machine without them they skip, in CI (CI=true) they fail.
"""

from __future__ import annotations

import pytest
from support import execute, make_settings, need_service, wait_done, wait_for

from quaero.runtime import Runtime
from quaero.stores.events import RESULT_SAVED

PIPELINE = """
name: scaled
steps:
  - {name: docs, action: test_fanout, config: {count: 30, save_documents: true}}
  - {name: flaky, action: test_flaky, config: {count: 2, failures: 1}}
  - {name: tree, action: test_tree, config: {branching: 2, max_depth: 2}}
"""


@pytest.fixture
def redis_url():
    need_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/15"


@pytest.fixture
def amqp_url():
    need_service("RabbitMQ", "127.0.0.1", 5672)
    return "amqp://guest:guest@127.0.0.1:5672/%2F"


def run_pipeline(settings, *, expect_remote_events: bool = False) -> None:
    runtime = Runtime(settings, role="run")
    saved = []
    runtime.bus.subscribe(lambda e: saved.append(e), [RESULT_SAVED])
    runtime.start()
    try:
        runtime.broker.flush_all()
        root_id = execute(runtime, PIPELINE)
        root = wait_done(runtime, root_id, timeout=90)
        assert root.status == "completed", root.error_message
        docs, flaky, tree = runtime.jobs.children(root_id)
        assert runtime.jobs.counts(docs.id).completed == 30
        assert runtime.documents.count(source_type="test") == 30
        assert all(c.attempts == 2 for c in runtime.jobs.children(flaky.id))
        assert runtime.jobs.counts(tree.id).completed == 7
        counts = runtime.queue.stats()["quaero"]  # whatever the backend, it counts its queue
        assert (counts["ready"], counts["dead"]) == (0, 0)
        if runtime.database.is_postgres:  # the full-text column follows every write
            found = runtime.database.execute(
                "SELECT COUNT(*) FROM documents WHERE search @@ plainto_tsquery('english', 'item body')").fetchone()
            assert found[0] == 30
        if expect_remote_events:
            wait_for(lambda: len(saved) == 30, 10, what="result_saved events from the worker processes")
    finally:
        runtime.stop()


def test_redis_queue(tmp_path, redis_url):
    run_pipeline(make_settings(tmp_path, queue_url=redis_url))


def test_rabbitmq_queue(tmp_path, amqp_url):
    run_pipeline(make_settings(tmp_path, queue_url=amqp_url))


def test_postgresql_data_with_redis_queue_and_worker_processes(tmp_path, postgres_url, redis_url):
    run_pipeline(make_settings(tmp_path, database_url=postgres_url, queue_url=redis_url, worker_processes=2),
                 expect_remote_events=True)


def test_redis_dead_letters_and_lost_messages_are_repaired_through_the_runtime(tmp_path):
    from quaero.stores.jobs import ChildSpec

    need_service("Redis", "127.0.0.1", 6379)
    # A database of its own: test_redis_queue flushes the default namespace of db 15.
    runtime = Runtime(make_settings(tmp_path, queue_url="redis://127.0.0.1:6379/14"), role="run")
    runtime.start()
    try:
        runtime.broker.flush_all()
        assert runtime.queue.can_find_messages and runtime.dead_letters.supported
        root_id = execute(runtime, """
name: doomed
steps:
  - {name: flaky, action: test_flaky, config: {count: 1, failures: 4}}
""")
        assert wait_done(runtime, root_id, timeout=60).status == "failed"
        [letter], total = wait_for(lambda: (page := runtime.dead_letters.page())[1] == 1 and page, 10,
                                   what="the dead letter on Redis")
        assert letter["job_status"] == "failed" and "fails on purpose" in letter["job_error"]
        assert runtime.dead_letters.requeue(letter["id"])["job_id"] == letter["job_id"]
        wait_for(lambda: runtime.jobs.get(letter["job_id"]).status == "completed", 30, what="the requeued job")
        assert runtime.dead_letters.page() == ([], 0)

        # A process died after writing this job and before enqueueing it: the monitor finds it on Redis too.
        other_id = execute(runtime, """
name: one
steps:
  - {name: one, action: test_fanout, config: {count: 1}}
""")
        assert wait_done(runtime, other_id, timeout=30).status == "completed"
        [step] = runtime.jobs.children(other_id)
        [orphan] = runtime.jobs.create_children(step, [ChildSpec("test_task", "orphan", {"i": 5})], depth=0)
        assert runtime.monitor.requeue_orphans(older_than=3600) == []
        assert runtime.monitor.requeue_orphans(older_than=0) == [orphan]
        wait_for(lambda: runtime.jobs.get(orphan).status == "completed", 30, what="the orphan to run")
        assert runtime.monitor.requeue_orphans(older_than=0) == []
    finally:
        runtime.broker.flush_all()
        runtime.stop()


def test_rabbitmq_queue_figures_reach_the_api_metrics_and_page_without_made_up_counts(tmp_path, amqp_url):
    from starlette.testclient import TestClient

    from quaero.web.app import create_app

    settings = make_settings(tmp_path, queue_url=amqp_url)
    runtime = Runtime(settings, role="run")
    runtime.start()
    try:
        runtime.broker.flush_all()
        with TestClient(create_app(settings, runtime=runtime)) as client:
            stats = client.get("/api/queue/stats").json()
            # AMQP cannot count the messages a consumer holds: null, not 0.
            assert stats["queues"]["quaero"] == {"ready": 0, "delayed": 0, "in_flight": None, "dead": 0}
            assert (stats["pending"], stats["processing"], stats["dead"]) == (0, None, 0)
            metrics = client.get("/metrics").text
            assert 'quaero_queue_messages{queue="quaero",state="ready"} 0.0' in metrics
            assert 'state="in_flight"' not in metrics
            page = client.get("/queue")
            assert page.status_code == 200 and "keeps its dead letters itself" in page.text
            assert client.get("/api/queue/dead").status_code == 501
    finally:
        runtime.stop()
