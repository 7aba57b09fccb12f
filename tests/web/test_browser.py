"""The pages in a real Chromium: live progress, inline definition errors, cancel, escaping, CSRF."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from support import execute, wait_for

FANOUT = """id: ui-fan
name: UI fan-out
steps:
  - {name: fan, action: test_fanout, config: {count: 40, work_ms: 300}}
"""

SLOW = """id: ui-slow
name: Slow one
steps:
  - {name: fan, action: test_fanout, config: {count: 400, work_ms: 500}}
"""


def test_execute_from_the_ui_and_watch_it_complete_without_a_reload(live_server, page):
    live_server.runtime.definitions.create(FANOUT)
    page.goto(live_server.url + "/definitions")
    page.get_by_role("button", name="Run UI fan-out").click()
    expect(page).to_have_url(re.compile(r"/jobs/job_"))
    page.evaluate("window.__loaded_once = true")
    header = page.locator("#job-header")
    # The page opened while the execution was still going (about 3 s of work on 4 threads).
    assert header.locator(".status").inner_text() in ("pending", "running")
    expect(page.locator("#live-state")).to_have_text("live")
    expect(header.locator(".status")).to_have_text("completed", timeout=30_000)
    expect(header.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(header).to_contain_text("1 completed")  # the seed's progress text, for the one step
    # The page was updated in place: the marker set after the first load survived.
    assert page.evaluate("window.__loaded_once") is True
    # The steps table followed too, and the log got the execution's lines.
    expect(page.locator("#job-children .status")).to_have_text("completed")
    expect(page.locator("#log-lines")).to_contain_text("execution of 'ui-fan' started")
    assert page.js_errors == []


def test_a_definition_with_an_error_shows_it_inline(live_server, page):
    page.goto(live_server.url + "/definitions/new")
    editor = page.get_by_label("Definition (YAML)")
    editor.fill("id: broken\nname: Broken\nsteps:\n  - name: one\n    action: no_such_action\n")
    # As the user types, the check runs and the problem appears without saving...
    expect(page.locator("#problems")).to_contain_text("unknown action 'no_such_action'")
    expect(page.locator("#problems")).to_contain_text("line 5")
    # ...and saving shows the same problem, with the text kept for fixing.
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#problems")).to_contain_text("steps[0].action")
    expect(editor).to_have_value(re.compile("no_such_action"))
    editor.fill("id: fixed\nname: Fixed\nsteps:\n  - {name: one, action: test_fanout}\n")
    expect(page.locator("#problems")).to_contain_text("Valid")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/definitions/fixed"))
    assert live_server.runtime.definitions.record("fixed").name == "Fixed"


def test_cancel_a_running_job_from_its_page(live_server, page):
    root_id = execute(live_server.runtime, SLOW)
    wait_for(lambda: live_server.runtime.jobs.get(root_id).count_running > 0
             or any(j.count_running for j in live_server.runtime.jobs.children(root_id)), 20)
    page.goto(f"{live_server.url}/jobs/{root_id}")
    expect(page.locator("#job-header .status")).to_have_text("running")
    page.get_by_role("link", name="Cancel…").click()
    expect(page.get_by_role("heading", name="Cancel this job?")).to_be_visible()
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator(".flash")).to_have_text("The job was cancelled.")
    expect(page.locator("#job-header .status")).to_have_text("cancelled", timeout=15_000)
    assert live_server.runtime.jobs.get(root_id).status == "cancelled"


def test_hostile_names_are_escaped_and_forms_need_their_token(live_server, page):
    hostile = "<img src=x onerror=\"window.__xss=1\">"
    live_server.runtime.definitions.create(
        f"id: hostile\nname: '{hostile}'\nsteps:\n  - {{name: a, action: test_fanout, config: {{count: 1}}}}\n")
    page.goto(live_server.url + "/definitions")
    expect(page.get_by_role("link", name=hostile)).to_be_visible()
    assert page.evaluate("window.__xss") is None
    # A form posted without the page's token is refused.
    response = page.request.post(live_server.url + "/definitions/hostile/execute", form={"x": "1"})
    assert response.status == 403


def test_every_page_renders_and_links_work(live_server, page):
    for path, heading in [("/", "Dashboard"), ("/jobs", "Jobs"), ("/definitions", "Job definitions"),
                          ("/queue", "Queue"), ("/plugins", "Plugins"), ("/settings", "Settings")]:
        page.goto(live_server.url + path)
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page).to_have_url(live_server.url + "/jobs")
    assert page.js_errors == []


def test_search_as_you_type_and_a_hostile_document_stays_inert(live_server, page):
    from quaero.stores.documents import DocumentInput

    store = live_server.runtime.documents
    store.upsert(DocumentInput("web", "https://x.example/a", title="Asyncio event loop",
                               markdown="The event loop runs <b>callbacks</b> and tasks."))
    hostile = store.upsert(DocumentInput(
        "web", "https://x.example/evil", title="Evil page",
        markdown='<script>window.__xss=1</script><img src=x onerror="window.__xss=2">\n\n'
                 '[x](javascript:window.__xss=3)\n\nHarmless words about loops.')).id
    page.goto(live_server.url + "/search")
    page.get_by_label("Search the knowledge base").press_sequentially("event lo", delay=40)
    results = page.locator("#results")
    expect(results).to_contain_text("Asyncio event loop")
    expect(results.locator("mark").first).to_have_text(re.compile("event|loop", re.I))
    expect(page).to_have_url(re.compile(r"/search\?q=event"))
    page.goto(f"{live_server.url}/documents/{hostile}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Evil page")
    # The javascript: link is not a link at all, and the script and handler never ran.
    expect(page.locator("article.doc-body").get_by_role("link")).to_have_count(0)
    expect(page.locator("article.doc-body")).to_contain_text("Harmless words about loops.")
    assert page.evaluate("window.__xss") is None
    assert page.js_errors == []


def test_the_dashboard_and_jobs_list_follow_an_execution_live(live_server, page):
    page.goto(live_server.url + "/")
    expect(page.locator("#live-state")).to_have_text("live")
    root_id = execute(live_server.runtime, FANOUT)
    expect(page.locator("#dash-running")).to_contain_text("UI fan-out", timeout=10_000)
    expect(page.locator("#dash-summary a[href='/jobs?status=completed']")).to_have_text("1", timeout=30_000)
    expect(page.locator("#dash-running")).not_to_contain_text("UI fan-out")
    page.goto(live_server.url + "/jobs")
    expect(page.locator("#live-state")).to_have_text("live")
    second = live_server.runtime.orchestrator.rerun(root_id)
    row = page.locator(f"#job-row-{second}")
    expect(row).to_be_visible(timeout=10_000)
    expect(row.locator(".status")).to_have_text("completed", timeout=30_000)
    assert page.js_errors == []


def test_a_document_with_remote_images_makes_the_browser_call_no_other_host(live_server, page):
    import http.server
    import threading

    hits: list[str] = []

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "image/gif")
            self.end_headers()
            self.wfile.write(b"GIF89a")

        def log_message(self, *args):
            pass

    tracker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    pixel = f"http://127.0.0.1:{tracker.server_address[1]}"
    try:
        from quaero.stores.documents import DocumentInput

        doc_id = live_server.runtime.documents.upsert(DocumentInput(
            "web", "https://x.example/pixel", title="Pixel page",
            markdown=f"Hello ![tracker]({pixel}/md.gif) and [![logo]({pixel}/logo.gif)](https://example.org/)")).id
        page.goto(f"{live_server.url}/documents/{doc_id}")
        expect(page.locator("article.doc-body")).to_contain_text("[image: tracker]")
        # Should an <img> get past the renderer, the policy still keeps the browser from loading it.
        blocked = page.evaluate("""src => new Promise(done => {
            document.addEventListener('securitypolicyviolation', e => done(e.blockedURI), {once: true});
            setTimeout(() => done(null), 5000);
            const img = document.createElement('img'); img.src = src;
            document.querySelector('article.doc-body').append(img);
        })""", f"{pixel}/injected.gif")
        assert blocked == f"{pixel}/injected.gif"
        page.wait_for_timeout(300)
        assert hits == []
        # The server does answer: the same browser fetching it directly reaches it.
        assert page.request.get(f"{pixel}/direct.gif").status == 200 and hits == ["/direct.gif"]
    finally:
        tracker.shutdown()
        tracker.server_close()


def _sign_in(page, url: str, name: str, password: str) -> None:
    page.goto(url + "/login?next=/definitions")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(url + "/definitions")


def test_a_viewer_sees_no_write_buttons_and_an_admin_runs_a_definition(live_server, page):
    runtime = live_server.runtime
    runtime.accounts.add("ada", "admin", "admin-password-1")
    runtime.accounts.add("vic", "viewer", "viewer-password-1")
    runtime.definitions.create(FANOUT)
    # Not signed in: the pages send to the sign-in form.
    page.goto(live_server.url + "/definitions")
    expect(page).to_have_url(re.compile(r"/login\?next=/definitions"))
    page.get_by_label("User name").fill("vic")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")

    _sign_in(page, live_server.url, "vic", "viewer-password-1")
    expect(page.locator("header .who")).to_contain_text("vic (viewer)")
    expect(page.get_by_role("link", name="UI fan-out")).to_be_visible()
    expect(page.get_by_role("button", name="Run UI fan-out")).to_have_count(0)
    expect(page.get_by_role("link", name="New definition")).to_have_count(0)
    expect(page.locator("header").get_by_role("link", name="Users")).to_have_count(0)
    page.get_by_role("link", name="UI fan-out").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("UI fan-out")
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    # A write sent by hand, with the page's own CSRF token, is refused all the same.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    response = page.request.post(live_server.url + "/definitions/ui-fan/execute", form={"csrf_token": token})
    assert response.status == 403 and "viewer role" in response.text()
    assert runtime.jobs.executions(definition_id="ui-fan", limit=1) == []
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    _sign_in(page, live_server.url, "ada", "admin-password-1")
    expect(page.locator("header .who")).to_contain_text("ada (admin)")
    page.get_by_role("button", name="Run UI fan-out").click()
    expect(page).to_have_url(re.compile(r"/jobs/job_"))
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.locator("#job-header .status")).to_have_text("completed", timeout=30_000)
    assert page.js_errors == []


def test_an_admin_makes_a_token_on_the_users_page_and_sees_it_once(live_server, page):
    runtime = live_server.runtime
    runtime.accounts.add("ada", "admin", "admin-password-1")
    _sign_in(page, live_server.url, "ada", "admin-password-1")
    page.locator("header").get_by_role("link", name="Users").click()
    page.get_by_label("User name").fill("vic")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_label("Password (at least 8 characters)").fill("viewer-password-1")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator(".flash")).to_have_text("The user was added.")
    expect(page.locator("#user-vic")).to_contain_text("viewer")
    page.get_by_label("For user").select_option("vic")
    page.get_by_label("Name (what it is for)").fill("wall screen")
    page.get_by_role("button", name="Make token").click()
    token = page.get_by_label("new token").inner_text().strip()
    assert token.startswith("qk_")
    import httpx

    me = httpx.get(live_server.url + "/api/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me == {"kind": "token", "role": "viewer", "name": "vic"}
    page.goto(live_server.url + "/users")
    assert token not in page.content()  # shown once
    page.get_by_role("button", name=re.compile(r"Revoke token \d+")).click()
    expect(page.locator(".flash")).to_contain_text("revoked")
    assert httpx.get(live_server.url + "/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert page.js_errors == []
