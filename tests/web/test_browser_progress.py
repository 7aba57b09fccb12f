"""In a real Chromium: a running multi-child execution's bar moves with its children, the timeline is drawn and
follows the run, and "Run again" waits for the end."""

from __future__ import annotations

from playwright.sync_api import expect
from support import execute, wait_for

RUN = """id: ui-progress
name: Progress that moves
steps:
  - {name: warm up, action: test_fanout, config: {count: 4}}
  - {name: fan out, action: test_fanout, config: {count: 60, work_ms: 200}}
"""


def test_the_bar_of_a_running_execution_moves_with_its_childrens_work(live_server, page):
    runtime = live_server.runtime
    root_id = execute(runtime, RUN)
    wait_for(lambda: any(s.name == "fan out" and s.count_completed for s in runtime.jobs.steps_of([root_id])[root_id]),
             what="the second step's first children to finish")
    page.goto(f"{live_server.url}/jobs/{root_id}")
    header = page.locator("#job-header")
    bar = header.get_by_role("progressbar")
    expect(header.locator(".status")).to_have_text("running")
    first = int(bar.get_attribute("aria-valuenow"))
    assert 0 < first < 100  # children done of children known, not 0 of 2 steps done
    expect(page.locator("#job-progress-text")).to_contain_text("step 2/2 fan out: ")
    # The bar moves while the page stays open (the live stream re-renders the header).
    value = "Number(document.querySelector('#job-header [role=progressbar]').getAttribute('aria-valuenow'))"
    page.wait_for_function(f"() => {value} > {first}", timeout=20_000)
    second = int(bar.get_attribute("aria-valuenow"))
    assert second > first
    # The timeline shows both steps; no "Run again" while it runs.
    timeline = page.locator("#job-timeline")
    expect(timeline.locator('svg[aria-label="steps over time"]')).to_be_visible()
    expect(timeline.locator("svg.timeline text.name")).to_have_text(["warm up", "fan out"])
    expect(timeline.locator('svg.chart[aria-label="jobs/s over the step\'s run"]')).to_be_visible()
    assert page.get_by_role("link", name="Run again…").count() == 0
    expect(header.locator(".status")).to_have_text("completed", timeout=30_000)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#job-progress-text")).to_contain_text("2 steps: 64/64")
    expect(page.get_by_role("link", name="Run again…")).to_be_visible()
    # The timeline polled while the run went on and stops once it is over.
    expect(timeline).not_to_have_attribute("hx-trigger", "every 3s", timeout=10_000)
    page.locator("#job-timeline").scroll_into_view_if_needed()
    assert page.js_errors == []
