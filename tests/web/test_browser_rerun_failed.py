"""In a real Chromium: re-run a crawl's failed pages from its step's page, confirm, watch them run again."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from flakysite import FlakySite
from playwright.sync_api import expect
from support import served, wait_done


@pytest.fixture
def site():
    FlakySite.hits = Counter()
    with served(FlakySite) as url:
        yield url


def test_rerun_failed_children_from_the_step_page(live_server, page, site):
    runtime = live_server.runtime
    definition = runtime.definitions.parse(json.dumps({"id": "flaky-ui", "name": "flaky ui", "steps": [{
        "name": "crawl", "action": "crawl",
        "config": {"start_urls": [site + "/"], "max_depth": 1, "per_host_delay_ms": 0}}]}))
    root = wait_done(runtime, runtime.orchestrator.execute(definition), timeout=90)
    [step] = runtime.jobs.children(root.id)
    assert step.count_failed == 2

    page.goto(f"{live_server.url}/jobs/{step.id}")
    page.get_by_role("link", name="Re-run failed children (2)…").click()
    expect(page.get_by_role("heading", name="Re-run failed children?")).to_be_visible()
    expect(page.locator("#rerun-count")).to_have_text("2 failed child jobs.")
    page.get_by_role("button", name="Re-run failed children").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{step.id}\?done=rerun-failed"))
    expect(page.locator(".flash")).to_have_text("The failed children were queued to run again.")
    # The page follows live: the step runs again, then completes with all seven pages saved.
    expect(page.locator("#job-header .status")).to_have_text("completed", timeout=60_000)
    wait_done(runtime, root.id)
    step = runtime.jobs.get(step.id)
    assert step.count_failed == 0 and step.count_completed == 7 and runtime.documents.count() == 7
    assert runtime.jobs.get(root.id).status == "completed"
    page.reload()
    expect(page.get_by_role("link", name=re.compile("Re-run failed children"))).to_have_count(0)
    assert page.js_errors == []
