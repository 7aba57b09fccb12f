"""Re-running a crawl's failed pages: a site that fails some pages at first, then serves them."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from flakysite import FlakySite
from support import make_settings, served, wait_done, wait_for

from quaero.runtime import Runtime


@pytest.fixture
def site():
    FlakySite.hits = Counter()
    with served(FlakySite) as url:
        yield url


@pytest.fixture
def crawler(tmp_path):
    runtime = Runtime(make_settings(tmp_path, worker_threads=4), role="run")
    runtime.start()
    yield runtime
    runtime.stop()


def crawl(runtime, url):
    definition = runtime.definitions.parse(json.dumps({"id": "flaky-crawl", "name": "flaky crawl", "steps": [{
        "name": "crawl", "action": "crawl",
        "config": {"start_urls": [url + "/"], "max_depth": 1, "per_host_delay_ms": 0}}]}))
    return runtime.orchestrator.execute(definition)


def test_rerun_failed_pages_fetches_and_saves_them(crawler, site):
    root = wait_done(crawler, crawl(crawler, site), timeout=90)
    [step] = crawler.jobs.children(root.id)
    assert root.status == "completed" and step.count_failed == 2
    stats = crawler.step_stats(step)
    assert stats["pages_saved"] == 5 and stats["pages_failed"] == 2
    assert crawler.documents.count() == 5

    outcome = crawler.recovery.rerun_failed(step.id)
    assert outcome["requeued"] == 2
    assert crawler.jobs.get(step.id).status == "running" and crawler.jobs.get(root.id).status == "running"
    wait_for(lambda: crawler.jobs.get(root.id).status == "completed", 60, what="the execution to end again")

    root, step = crawler.jobs.get(root.id), crawler.jobs.get(step.id)
    stats = crawler.step_stats(step)
    # The two pages were fetched again (their fourth request) and saved; nothing was saved twice.
    assert FlakySite.hits["/p2"] == 4 and FlakySite.hits["/p5"] == 4
    assert stats["pages_saved"] == 7 and stats["pages_failed"] == 0
    assert crawler.documents.count() == 7
    assert step.status == "completed" and step.count_failed == 0 and step.count_completed == 7
    assert crawler.jobs.counts(step.id) == crawler.jobs.recount(step.id)
    assert root.result_count == step.result_count == 7
    assert crawler.jobs.counts(root.id).completed == 1
