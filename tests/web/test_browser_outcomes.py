"""The job page in a real Chromium: a crawl's children show their outcomes as coloured badges, and the
outcome filter (with its counts) narrows the list."""

from __future__ import annotations

import json

from outcome_site import EXPECTED, outcome_site
from playwright.sync_api import expect
from support import ARTIFACTS, wait_done


def test_the_job_page_shows_each_childs_outcome_and_filters_by_it(live_server, page):
    runtime = live_server.runtime
    with outcome_site() as site:
        definition = runtime.definitions.parse(json.dumps({"id": "outcomes", "name": "outcomes", "steps": [
            {"name": "crawl", "action": "crawl",
             "config": {"start_urls": [site("/")], "per_host_delay_ms": 0, "max_depth": 1}}]}))
        root = wait_done(runtime, runtime.orchestrator.execute(definition), timeout=60)
    runtime.orchestrator.wait_idle()
    [step] = runtime.jobs.children(root.id)

    page.goto(f"{live_server.url}/jobs/{step.id}")
    children = page.locator("#job-children")
    badges = children.locator("tbody .outcome")
    expect(badges).to_have_count(len(EXPECTED))
    shown = sorted(badges.evaluate_all("els => els.map(e => e.dataset.outcome)"))
    assert shown == sorted(EXPECTED.values())
    assert len(set(shown)) == 4  # saved, skipped:robots, skipped:http_404, failed
    # Each kind has its own colour: saved green, skipped amber, failed red.
    colours = {kind: children.locator(f"tbody .outcome-{kind}").first.evaluate(
        "e => getComputedStyle(e).backgroundColor") for kind in ("saved", "skipped", "failed")}
    assert len(set(colours.values())) == 3, colours
    # The outcome filter lists every outcome with its count, next to the status filter.
    options = children.locator("#c-outcome option").all_inner_texts()
    assert [o.strip() for o in options] == ["any", "saved (2)", "skipped (2)", "skipped:http_404 (1)",
                                            "skipped:robots (1)", "failed (1)"]
    expect(children.locator("#c-status")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "job-outcomes-all.png"), full_page=True)

    children.locator("#c-outcome").select_option("skipped:robots")
    children.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{live_server.url}/jobs/{step.id}?child_status=&child_outcome=skipped%3Arobots")
    expect(badges).to_have_count(1)
    expect(badges.first).to_have_attribute("data-outcome", "skipped:robots")
    expect(children.locator("tbody tr")).to_have_count(1)
    expect(children.locator("tbody")).to_contain_text("/private/secret")

    # A chip filters by its outcome too (a plain link: no JavaScript needed).
    children.locator(".outcome-chips a[data-outcome='failed']").click()
    expect(badges).to_have_count(1)
    expect(badges.first).to_have_attribute("data-outcome", "failed")
    expect(children.locator("tbody")).to_contain_text("/reset")

    # The log is in time order; a live line older than those shown (another process's) moves to its place.
    stamps = page.locator("#log-lines .line").evaluate_all("els => els.map(e => e.dataset.ts)")
    assert len(stamps) >= 5 and stamps == sorted(stamps)
    page.evaluate("""() => {
        const lines = document.getElementById("log-lines");
        const late = document.createElement("div");
        late.className = "line"; late.dataset.id = "999999"; late.dataset.ts = "2000-01-01T00:00:00.000Z";
        late.textContent = "a line stamped before all the others";
        lines.appendChild(late);
        document.body.dispatchEvent(new CustomEvent("htmx:oobAfterSwap", {bubbles: true, detail: {target: lines}}));
    }""")
    expect(page.locator("#log-lines .line").first).to_have_text("a line stamped before all the others")
    assert page.js_errors == []
