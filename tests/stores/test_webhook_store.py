"""The webhook tables on SQLite and PostgreSQL: one event per execution transition whatever makes it, events
turned into deliveries once, and due deliveries claimed by exactly one of several processes."""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.fernet import Fernet

from quaero.settings import load_settings
from quaero.stores.db import Database
from quaero.stores.events import EventBus
from quaero.stores.jobs import JobManager
from quaero.stores.models import bind_models
from quaero.stores.sealing import Sealer
from quaero.stores.webhooks import WebhookStore

KEY = Fernet.generate_key()


def webhook_store(database: Database, tmp_path: Path, **settings) -> WebhookStore:
    models = bind_models(database.db)
    values = {"data_dir": tmp_path, "webhooks": [{"url": "https://hooks.example/q?token=t0k", "secret": "s3cr3t"}],
              **settings}
    return WebhookStore(database, models, JobManager(database, models, EventBus()), Sealer([KEY], source="test"),
                        load_settings(environ={}, overrides=values))


def events(stores) -> list[tuple[str, str]]:
    return [tuple(row) for row in stores.database.execute("SELECT job_id, status FROM webhook_events ORDER BY id")]


def test_each_transition_of_an_execution_raises_one_event(stores):
    jobs = stores.jobs
    root = jobs.create_job("parent", "run", phase="orchestration")
    step = jobs.create_job("step", "one", parent=root)
    jobs.transition(root.id, "running")
    jobs.transition(root.id, "running", allowed_from=("running",))  # taken over after a crash: no new event
    jobs.transition(step.id, "running")
    jobs.transition(step.id, "completed")  # a step's transitions raise none
    jobs.transition(root.id, "completed")
    other = jobs.create_job("parent", "other", phase="orchestration")
    jobs.transition(other.id, "running")
    jobs.cancel(other.id)  # the bulk UPDATE of a cancellation counts too
    assert events(stores) == [(root.id, "running"), (root.id, "completed"), (other.id, "running"),
                              (other.id, "cancelled")]


def test_events_become_deliveries_once_with_the_url_and_secret_sealed(stores, tmp_path):
    store = webhook_store(stores.database, tmp_path)
    jobs = store.jobs
    root = jobs.create_job("parent", "run", phase="orchestration", definition_id="crawl-docs")
    jobs.transition(root.id, "running")
    jobs.transition(root.id, "failed", error="it broke")
    assert store.expand_events() == 2
    assert store.expand_events() == 0 and events(stores) == []
    items, total = store.for_job(root.id)
    assert total == 2 and [item["event"] for item in items] == ["started", "failed"]
    assert items[0]["url"] == "https://hooks.example/q" and items[0]["status"] == "pending"
    stored = stores.database.execute("SELECT target, secret, body FROM webhook_deliveries").fetchall()
    for target, secret, body in stored:
        assert "t0k" not in target and "s3cr3t" not in secret and target.startswith("sealed1:")
        assert "s3cr3t" not in body and "t0k" not in body
    assert store.open(stored[0][0]) == "https://hooks.example/q?token=t0k"
    # Deleting the execution takes its deliveries along.
    jobs.deletion_listeners.append(store.forget_jobs)
    jobs.delete(root.id)
    assert stores.database.execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()[0] == 0


def test_a_global_webhook_can_be_limited_to_some_definitions_and_events(stores, tmp_path):
    store = webhook_store(stores.database, tmp_path, webhooks=[
        {"url": "https://a.example/", "definitions": ["crawl-*"], "events": ["completed"]},
        {"url": "https://b.example/"}])
    jobs = store.jobs
    crawl = jobs.create_job("parent", "c", phase="orchestration", definition_id="crawl-docs")
    other = jobs.create_job("parent", "o", phase="orchestration", definition_id="agent")
    assert [hook.url for hook in store.targets(crawl, "completed")] == ["https://a.example/", "https://b.example/"]
    assert [hook.url for hook in store.targets(crawl, "started")] == ["https://b.example/"]
    assert [hook.url for hook in store.targets(other, "completed")] == ["https://b.example/"]


def test_two_processes_never_claim_the_same_delivery(stores, tmp_path):
    """Two stores on their own connections (as two processes have) claim at once, from many threads."""
    first = webhook_store(stores.database, tmp_path)
    second_database = Database(stores.database.url)
    try:
        second = webhook_store(second_database, tmp_path)
        jobs = first.jobs
        for number in range(30):
            root = jobs.create_job("parent", f"run {number}", phase="orchestration")
            jobs.transition(root.id, "running")
        first.expand_events()
        claimed: list[str] = []
        lock = threading.Lock()

        def claim(store: WebhookStore, owner: str) -> None:
            while True:
                taken = store.claim(owner, limit=3, lease=60)
                if not taken:
                    return
                with lock:
                    claimed.extend(item.id for item in taken)

        threads = [threading.Thread(target=claim, args=(store, f"{name}-{index}"))
                   for index in range(3) for name, store in (("one", first), ("two", second))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(claimed) == 30 and len(set(claimed)) == 30
        assert first.claim("late", limit=10, lease=60) == []  # all leased
    finally:
        second_database.close()


def test_a_settled_claim_cannot_be_settled_by_a_process_whose_lease_lapsed(stores, tmp_path):
    store = webhook_store(stores.database, tmp_path)
    root = store.jobs.create_job("parent", "run", phase="orchestration")
    store.jobs.transition(root.id, "running")
    store.expand_events()
    (stale,) = store.claim("slow", limit=1, lease=0)  # its lease is over at once
    (fresh,) = store.claim("quick", limit=1, lease=60)
    assert fresh.id == stale.id and fresh.attempts == 2
    assert store.settle(fresh, "quick", status="delivered", status_code=204)
    assert not store.settle(stale, "slow", status="failed", error="too late")
    (item,) = store.for_job(root.id)[0]
    assert item["status"] == "delivered" and item["last_status_code"] == 204 and item["attempts"] == 2
