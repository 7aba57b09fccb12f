"""The job page's Notifications section in a real Chromium: a webhook retried after a 500, then delivered."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from support import execute, make_settings, wait_for
from webhook_receiver import receiving

SECRET = "whsec-Bw4Nq7Lz2Xc9Vt5R"


@pytest.fixture
def receiver():
    with receiving(500) as receiver:
        yield receiver


@pytest.fixture
def settings(tmp_path, receiver):
    return make_settings(tmp_path, webhook_backoff=0.5, webhooks=[
        {"url": receiver.url + "/hook?channel=ops", "secret": SECRET, "events": ["completed"]}])


def test_a_delivery_retried_after_a_500_shows_on_the_job_page(live_server, receiver, page):
    job_id = execute(live_server.runtime, """name: Notified
steps:
  - {name: fan, action: test_fanout, config: {count: 20, work_ms: 100}}
""")
    page.goto(f"{live_server.url}/jobs/{job_id}")
    section = page.locator("#job-webhooks")
    expect(section.get_by_role("heading", name="Notifications")).to_be_visible()
    # Loaded by htmx and refreshed in place until the delivery settles.
    row = section.locator("tbody tr")
    expect(row.locator("td").nth(2)).to_have_text("delivered", timeout=30_000)
    expect(row.locator("td[data-attempts]")).to_have_text("2")
    expect(row).to_contain_text("HTTP 200")
    expect(row).to_contain_text(receiver.url + "/hook")
    expect(section).not_to_contain_text("channel=ops")
    assert SECRET not in page.content()
    wait_for(lambda: len(receiver.requests) == 2)
    assert all(request.signed_with(SECRET) for request in receiver.requests)
    assert page.js_errors == []
