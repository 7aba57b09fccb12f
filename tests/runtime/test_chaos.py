"""Chaos: a crawl by a real `quaero serve` (a subprocess, with its worker processes) of a local site, killed
with SIGKILL (the server and every worker at once) at random moments and restarted through the CLI, or
stopped with SIGTERM and restarted: the execution completes, every page is saved exactly once, no job is
left pending or running, and every SQLite file passes its integrity check. On SQLite, and on PostgreSQL with
Redis. The figures (resume_to_progress_s) come from bench/chaos.py; no timing is asserted here."""

from __future__ import annotations

import random
import signal
import time

import pytest
from support import need_service, wait_for

from quaero.testing.chaos import ChaosCrawl
from quaero.testing.site import LocalSite

PAGES = 300
KILLS = 3
SEED = 12
# How `quaero serve` ends after SIGTERM: uvicorn shuts down cleanly, then raises the signal again, as a
# process stopped by it conventionally ends.
STOPPED = (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def site():
    # Every 25th page answers after half a second: jobs that are in flight when the kill comes.
    with LocalSite(PAGES, slow_every=25, slow_s=0.5) as served:
        yield served


def kill_and_restart(crawl: ChaosCrawl, kills: int, rng: random.Random) -> list[float]:
    """Start the crawl, kill everything ``kills`` times at random moments and restart; the resume times."""
    crawl.start(wait=True)
    crawl.execute()
    marks = sorted(rng.sample(range(PAGES // 10, PAGES * 7 // 10), kills))
    resumed = []
    for mark in marks:
        crawl.wait_documents(mark)
        time.sleep(rng.uniform(0, 0.3))
        crawl.kill()
        before = crawl.documents()
        spawned = crawl.start()
        if before < PAGES:
            resumed.append(crawl.wait_progress(before, spawned))
    return resumed


def assert_every_page_once(crawl: ChaosCrawl) -> dict:
    assert crawl.wait_done(timeout=300) == "completed", crawl.verify()
    assert crawl.terminate()[0] in STOPPED
    report = crawl.verify()
    assert report["root_status"] == "completed"
    assert report["documents"] == report["distinct_urls"] == PAGES, report
    assert report["missing_pages"] == report["unexpected_documents"] == 0, report
    # Each page counted once as a result, though some of their jobs ran more than once.
    assert report["steps"] == [("completed", PAGES)] and report["root_result_count"] == PAGES, report
    assert report["unfinished_jobs"] == {}, report
    assert all(result == "ok" for result in report["integrity"].values()), report
    queue = report["queue"]
    assert (queue["ready"], queue["delayed"], queue["dead"]) == (0, 0, 0) and not queue["in_flight"], report
    return report


def test_kill_9_of_the_server_and_its_workers_loses_nothing_and_saves_nothing_twice(tmp_path, site):
    crawl = ChaosCrawl(tmp_path, site)
    try:
        kill_and_restart(crawl, KILLS, random.Random(SEED))
        report = assert_every_page_once(crawl)
        assert set(report["integrity"]) >= {"queue.db", "events.db"}
    finally:
        crawl.close()


def test_kill_9_on_postgresql_and_redis_loses_nothing_and_saves_nothing_twice(tmp_path, site, postgres_url):
    need_service("Redis", "127.0.0.1", 6379)
    import redis

    queue_url = "redis://127.0.0.1:6379/12"
    redis.Redis.from_url(queue_url).flushdb()
    crawl = ChaosCrawl(tmp_path, site, database_url=postgres_url, queue_url=queue_url)
    try:
        kill_and_restart(crawl, KILLS, random.Random(SEED + 1))
        assert_every_page_once(crawl)
    finally:
        crawl.close()
        redis.Redis.from_url(queue_url).flushdb()


def test_sigterm_drains_then_a_restart_completes_every_page_once(tmp_path, site):
    crawl = ChaosCrawl(tmp_path, site)
    try:
        crawl.start(wait=True)
        crawl.execute()
        crawl.wait_documents(PAGES // 3)
        running = wait_for(crawl.running_tasks, 30, interval=0.005, what="pages being fetched")
        assert crawl.terminate()[0] in STOPPED
        # The pages being fetched had their grace period and were saved; the other jobs went back to the
        # queue, where no message is left leased to the stopped processes.
        assert set(crawl.statuses(running).values()) == {"completed"}
        assert crawl.running_tasks() == []
        queue = crawl.queue_counts()
        assert queue["in_flight"] == 0 and queue["ready"] > 0 and queue["dead"] == 0
        crawl.start()
        assert_every_page_once(crawl)
    finally:
        crawl.close()
