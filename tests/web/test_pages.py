"""The pages over a real app and SQLite file: forms, filters, pagination, live fragments."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route
from support import csrf_of, execute, wait_done, wait_for

from quaero.stores.events import Event
from quaero.web.app import create_app
from quaero.web.live import VIEWS, JobScope, _render
from quaero.web.pages import dashboard_context

FAN = "id: fan\nname: Fan\nsteps:\n  - {name: fan, action: test_fanout, config: {count: 120}}\n"


def test_credentials_are_saved_from_the_form_and_never_shown_back(client, runtime):
    token = csrf_of(client, "/settings")
    saved = client.post("/settings/credentials", follow_redirects=False, data={
        "csrf_token": token, "id": "intranet", "base_url": "https://intranet.example/",
        "cookies": "session=VALUE-ONE\n", "headers": "X-Api-Key: VALUE-TWO"})
    assert saved.status_code == 303
    stored = runtime.credentials.get("intranet")
    assert stored.cookies == {"session": "VALUE-ONE"} and stored.headers == {"X-Api-Key": "VALUE-TWO"}
    page = client.get("/settings").text
    assert "intranet" in page and "session" in page and "X-Api-Key" in page
    assert "VALUE-ONE" not in page and "VALUE-TWO" not in page
    bad = client.post("/settings/credentials", data={"csrf_token": token, "id": "x", "cookies": "no equals sign"})
    assert bad.status_code == 400 and "cookies, line 1" in bad.text
    deleted = client.post("/settings/credentials/intranet/delete", data={"csrf_token": token}, follow_redirects=False)
    assert deleted.status_code == 303 and runtime.credentials.listing() == []


def test_job_page_pages_children_and_filters_the_log(client, runtime):
    root_id = execute(runtime, FAN)
    wait_done(runtime, root_id)
    step = runtime.jobs.children(root_id)[0]
    runtime.logs.write(step.id, "warn", "a <warning> line")
    runtime.logs.write(step.id, "info", "an info line")
    first = client.get(f"/jobs/{step.id}")
    assert "1–50 of 120" in first.text and 'href="/jobs/' + step.id + '?offset=50"' in first.text
    assert "&lt;warning&gt;" in first.text and "an info line" in first.text
    warnings = client.get(f"/jobs/{step.id}", params={"level": "warn"})
    assert "a &lt;warning&gt; line" in warnings.text and "an info line" not in warnings.text
    last = client.get(f"/jobs/{step.id}", params={"offset": 100})
    assert "101–120 of 120" in last.text and 'rel="next"' not in last.text
    roots = client.get("/jobs", params={"status": "completed"})
    assert "Fan" in roots.text and "1–1 of 1" in roots.text
    assert client.get("/jobs", params={"status": "bogus"}).status_code == 200  # ignored, not an error


def test_definition_enable_disable_and_run_from_the_pages(client, runtime):
    client.post("/api/jobs/definitions", content=FAN)
    token = csrf_of(client, "/definitions")
    client.post("/definitions/fan/disable", data={"csrf_token": token})
    assert "disabled" in client.get("/definitions").text
    refused = client.post("/definitions/fan/execute", data={"csrf_token": token})
    assert refused.status_code == 409 and "disabled" in refused.text
    client.post("/definitions/fan/enable", data={"csrf_token": token})
    ran = client.post("/definitions/fan/execute", data={"csrf_token": token}, follow_redirects=False)
    assert ran.status_code == 303 and ran.headers["location"].startswith("/jobs/job_")


def test_live_fragments_come_from_the_page_template_and_follow_the_log(runtime, settings):
    root_id = execute(runtime, FAN)
    wait_done(runtime, root_id)
    view = VIEWS["job"]
    state = {"after_id": 0}
    templates = create_app(settings, runtime=runtime).state.templates  # the app's, as a WebSocket gets it
    html = _render(runtime, view, {"id": root_id}, state, templates)
    assert 'id="job-header" hx-swap-oob="true"' in html and 'id="job-children" hx-swap-oob="true"' in html
    assert 'hx-swap-oob="beforeend:#log-lines"' in html and "execution completed" in html
    assert state["after_id"] > 0
    again = _render(runtime, view, {"id": root_id}, state, templates)
    assert "beforeend:#log-lines" not in again  # nothing new to append


def test_job_scope_learns_descendants_from_events(runtime):
    root_id = execute(runtime, FAN)
    wait_done(runtime, root_id)
    step_id = runtime.jobs.children(root_id)[0].id
    scope = JobScope(runtime, root_id)
    child = Event("job_status_change", {"job_id": "child-1", "parent_id": step_id, "status": "running"})
    assert child in scope and "child-1" in scope.ids
    assert Event("job_log", {"job_id": "child-1", "message": "x"}) in scope
    assert Event("job_status_change", {"job_id": "other", "parent_id": "elsewhere"}) not in scope


FLAKY = "id: flaky\nname: Flaky\nsteps:\n  - {name: flaky, action: test_flaky, config: {count: 1, failures: 4}}\n"


def test_queue_page_lists_dead_letters_and_requeues_them(client, runtime):
    root_id = execute(runtime, FLAKY)
    wait_done(runtime, root_id)
    page = wait_for(lambda: (text := client.get("/queue").text).count("/requeue") == 1 and text, 10)
    assert "fails on purpose" in page and "quaero.job.test_flaky" in page
    letter_id = re.search(r'action="/queue/dead/(\d+)/requeue"', page).group(1)
    child_id = re.search(r'href="/jobs/(job_[0-9a-f]+)" class="mono small"', page).group(1)
    # Attempts as the job's log counts them (each retry is a new message, delivered once).
    attempts = runtime.jobs.get(child_id).attempts
    assert attempts > 1 and f'<td class="num">{attempts}</td>' in page
    done = client.post(f"/queue/dead/{letter_id}/requeue", data={"csrf_token": csrf_of(client, "/queue")},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/queue?done=requeued"
    wait_for(lambda: runtime.jobs.get(child_id).status == "completed", 20)
    assert "No dead letters." in client.get("/queue").text
    assert client.post(f"/queue/dead/{letter_id}/requeue", data={"csrf_token": csrf_of(client)}).status_code == 404


ODD = ["", "-1", "9" * 5000, "\u00e9\U0001f4a9", "%00", "<script>x</script>"]
PAGE_PARAMS = ["offset", "status", "type", "definition_id", "parent_id", "level", "child_status", "q", "source",
               "tag", "after", "before", "before_id", "typing", "done", "removed"]


def test_no_page_answers_500_to_odd_input(client):
    """Every page route, with odd path ids, query values and form fields (with a valid CSRF token)."""
    token = csrf_of(client)
    routes = [r for r in client.app.routes
              if isinstance(r, Route) and not r.path.startswith(("/api", "/metrics", "/mcp"))]
    assert len(routes) > 20
    for route in routes:
        for odd in ODD:
            path = re.sub(r"{(\w+)(:\w+)?}", lambda m, odd=odd: "cancel" if m.group(1) == "action" else odd or "x",
                          route.path)
            for method in route.methods - {"HEAD"}:
                if method == "GET":
                    responses = [client.get(path, params={name: odd}) for name in PAGE_PARAMS]
                else:
                    fields = {"csrf_token": token, **{name: odd for name in ("source", "id", "cookies", "headers",
                                                                             "token", "tag", "after")}}
                    responses = [client.post(path, data=fields)]
                for response in responses:
                    assert response.status_code < 500, (method, path[:80], odd[:20], response.text[:300])


def test_dashboard_counts_the_jobs_finished_this_hour(client, runtime):
    root_id = execute(runtime, FAN)
    wait_done(runtime, root_id)
    context = dashboard_context(runtime, {})
    assert context["throughput"]["total"] == 122  # 120 children, their step and the execution
    assert context["executions"]["completed"] == 1 and context["running"] == []
    assert "122 in all" in client.get("/").text


def test_the_dashboard_offers_the_first_crawl_until_something_has_run(client, runtime):
    assert "Nothing has run yet" not in client.get("/").text  # the example is not stored here
    shipped = (Path(__file__).resolve().parents[2] / "job-definitions" / "crawl-quaero-guide.yaml").read_text()
    runtime.definitions.create(shipped)
    page = client.get("/").text
    assert "Nothing has run yet" in page and 'href="/definitions/crawl-quaero-guide"' in page
    wait_done(runtime, execute(runtime, FAN))
    assert "Nothing has run yet" not in client.get("/").text


def test_a_live_page_is_brought_up_to_date_as_soon_as_it_connects(client, runtime):
    """What changed between a page's render and its live connection (no event is left to tell it) is sent
    at once on connecting, not at the next event or the minute's refresh."""
    import queue
    import threading

    root_id = execute(runtime, FAN)
    page = client.get(f"/jobs/{root_id}").text  # rendered while it may still run
    wait_done(runtime, root_id)
    frames: queue.Queue[str] = queue.Queue()

    def listen() -> None:
        with client.websocket_connect(f"/live/job/{root_id}") as ws:
            frames.put(ws.receive_text())

    threading.Thread(target=listen, daemon=True).start()
    first = frames.get(timeout=20)  # the idle refresh would come only after 60 s
    assert 'id="job-header"' in first and "status-completed" in first
    assert "job-header" in page


def test_every_page_names_an_icon_that_is_served(client):
    page = client.get("/").text
    assert 'rel="icon" type="image/svg+xml"' in page
    href = page.split('rel="icon" type="image/svg+xml" href="', 1)[1].split('"', 1)[0]
    icon = client.get(href)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_job_figures_read_as_text_not_as_python():
    from quaero.web.render import figure

    assert figure({"robots": 3, "http_404": 1}) == "robots 3, http_404 1"
    assert figure(["a", "b"]) == "a, b" and figure([]) == "none" and figure({}) == "none"
    assert figure(12.3456) == "12.35" and figure(2.0) == "2" and figure(True) == "yes" and figure(None) == "—"
    assert figure(1234) == "1234" and figure("text") == "text"
