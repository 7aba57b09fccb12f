"""The API's contract: its OpenAPI document, no 500 for any input, metrics, dead letters, pagination."""

from __future__ import annotations

import re
import sqlite3
import time

import peewee
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from starlette.routing import Route, WebSocketRoute
from starlette.schemas import SchemaGenerator
from starlette.testclient import TestClient
from support import make_settings, wait_for

from quaero.runtime import Runtime
from quaero.stores.jobs import ChildSpec
from quaero.stores.models import bind_models
from quaero.web.app import create_app
from quaero.web.security import is_page

FANOUT = """
id: fan
name: Fan
steps:
  - {name: fan, action: test_fanout, config: {count: 5}}
"""
# Fails its four attempts (one plus three retries), then succeeds on a fifth: run again from the dead letters.
FLAKY = """
id: flaky
name: Flaky
steps:
  - {name: flaky, action: test_flaky, config: {count: 1, failures: 4}}
"""


# The idle app needs a credential: the generated requests create users, and the first one closes the server.
ADMIN = {"Authorization": "Bearer contract-admin-token"}


@pytest.fixture(scope="module")
def idle_app(tmp_path_factory):
    """An app over a runtime that was never started: nothing executes what the tests throw at it."""
    runtime = Runtime(make_settings(tmp_path_factory.mktemp("idle"), access_token="contract-admin-token"), role="run")
    yield create_app(runtime.settings, runtime=runtime)
    runtime.stop()


@pytest.fixture(scope="module")
def idle_client(idle_app):
    with TestClient(idle_app, raise_server_exceptions=False, headers=ADMIN) as client:
        yield client


@pytest.fixture(scope="module")
def viewer(idle_app):
    """The headers of a viewer's API token on the idle app."""
    accounts = idle_app.state.runtime.accounts
    accounts.add("contract-viewer", "viewer", "viewer-password")
    return {"Authorization": f"Bearer {accounts.create_token('contract-viewer', 'contract')[1]}"}


@pytest.fixture
def client(runtime, settings):
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield client


def described_routes(app) -> list[tuple[str, str]]:
    """(path, method) of every HTTP endpoint the document must describe."""
    return [(e.path, e.http_method) for e in SchemaGenerator({}).get_endpoints(app.routes)
            if e.path.startswith("/api/") or e.path == "/metrics"]


# ---------------------------------------------------------------------------------------------- OpenAPI
def test_openapi_document_is_valid_and_describes_every_route(idle_app, idle_client):
    document = idle_client.get("/api/openapi.json").json()
    validate(document)
    endpoints = described_routes(idle_app)
    assert len(endpoints) > 30
    for path, method in endpoints:
        operation = document["paths"].get(path, {}).get(method)
        assert operation is not None, f"{method.upper()} {path} has no OpenAPI description in its docstring"
        assert operation["summary"] and any(code.startswith("2") for code in operation["responses"])
        for name in re.findall(r"{(\w+)}", path):
            assert any(p.get("name") == name and p["in"] == "path" for p in operation["parameters"])
    sockets = [r.path for r in idle_app.routes if isinstance(r, WebSocketRoute) and not is_page(r.path)]
    assert sockets and all(path in document["x-websocket"] for path in sockets)
    assert set(document["x-websocket"]["/ws"]["payloads"]) >= {"job_progress", "job_log", "job_spawn"}


# Checks that do not apply: a schema cannot say which YAML text is a valid definition (positive data), and
# the validation endpoint answers 200 with the errors for an invalid definition (negative data).
NOT_APPLICABLE = {"POST /api/jobs/definitions/validate": [schemathesis.checks.negative_data_rejection]}


def conformance_check(operation, mode, headers):
    """A Hypothesis test that sends ``operation`` generated requests and validates each answer."""
    excluded = [schemathesis.checks.positive_data_acceptance, *NOT_APPLICABLE.get(operation.label, [])]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    return check


@pytest.mark.parametrize("role, mode", [("admin", schemathesis.GenerationMode.POSITIVE),
                                        ("admin", schemathesis.GenerationMode.NEGATIVE),
                                        ("viewer", schemathesis.GenerationMode.POSITIVE)])
def test_every_operation_answers_as_its_document_says(idle_app, viewer, role, mode):
    """Schemathesis: generated requests (valid ones, then invalid ones) get documented statuses and bodies,
    from an admin and from a viewer (whose writes and reads of /api/users answer the documented 403)."""
    headers = ADMIN if role == "admin" else viewer
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", idle_app, headers=headers)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode == schemathesis.GenerationMode.NEGATIVE and not (operation.query.items or operation.body.items):
            continue  # nothing to make invalid: a path id is any text
        try:
            conformance_check(operation, mode, headers)()
        except Unsatisfiable:
            pass  # every parameter takes any text: nothing to make invalid
        except (Exception, BaseExceptionGroup) as exc:  # gather every operation's failure
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert not failures, "\n\n".join(failures)


# ---------------------------------------------------------------------------------------------- no 500s
# Starlette's ``{id:int}`` convertor raises (a 500) on a path number of more than 4300 digits, in routing,
# before any view runs: routes take ``{id}`` and parse it themselves (``web.http.int_path``).
HUGE = "9" * 5000
ODD_IDS = ["-1", HUGE, "%00", "%FF%FE", "%F0%9F%92%A9", "x" * 300]
ODD_VALUES = ["", "-1", HUGE, "\u00e9\U0001f4a9\x00"]
QUERY_NAMES = ["limit", "offset", "before", "after_id", "status", "type", "parent_id", "definition_id", "level",
               "include_children", "queue", "q", "sort", "source", "tag", "after", "job_id", "all", "top_tags"]
ODD_BODIES = [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe\x00binary", b"[" * 50_000, b"{\"id\": {\"deep\": " * 5000,
              b"a: &a [*a, *a]\n", b"x" * 1_100_000, b"{\"id\": " + HUGE.encode() + b"}",
              b"{\"id\": 7, \"url\": [], \"cookies\": \"no\", \"headers\": {\"a\": 1}, \"name\": null}"]


def fill(path: str, value: str) -> str:
    return re.sub(r"{(\w+)(:\w+)?}", value, path)


def assert_no_500(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.request.url.path.startswith("/api/") and response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "detail"}, f"{what}: {body}"


def odd_queries(path: str) -> list[dict[str, str]]:
    """Every odd value in every parameter at once (cut to fit a URL); on the API, also each parameter alone."""
    together = [dict.fromkeys(QUERY_NAMES, value[:3000]) for value in ODD_VALUES]
    alone = [{name: value} for name in QUERY_NAMES for value in ODD_VALUES]
    return together + (alone if path.startswith("/api/") or path == "/metrics" else [])


def endless_streams(client) -> set[str]:
    """Paths whose GET answers an endless event stream: a request would never end."""
    paths = client.get("/api/openapi.json").json()["paths"]
    return {path for path, operations in paths.items()
            if "text/event-stream" in operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})}


def test_no_input_makes_any_route_answer_500(idle_app, idle_client):
    """Every route with odd ids, query values and bodies: 4xx (JSON on the API) or 2xx, never a 500."""
    streams = endless_streams(idle_client)
    for route in idle_app.routes:
        if not isinstance(route, Route):
            continue
        methods = sorted((route.methods or {"GET"}) - {"HEAD"} - ({"GET"} if route.path in streams else set()))
        methods.append("PATCH")
        for odd in ODD_IDS:
            url = fill(route.path, odd)
            for method in methods:
                assert_no_500(idle_client.request(method, url), f"{method} {url[:80]}")
        url = fill(route.path, "0")
        for params in odd_queries(route.path) if "GET" in methods else []:
            assert_no_500(idle_client.get(url, params=params), f"GET {url} with {str(params)[:60]}")
        for method in set(methods) & {"POST", "PUT", "DELETE"}:
            for body in ODD_BODIES:
                for content_type in ("application/json", "application/yaml"):
                    response = idle_client.request(method, url, content=body, headers={"content-type": content_type})
                    assert_no_500(response, f"{method} {url} with {body[:20]!r}")


def test_http_on_the_websocket_path_and_bad_event_types(idle_client):
    assert idle_client.get("/ws").status_code == 404
    with idle_client.websocket_connect("/ws?types=" + "%F0%9F%92%A9," * 50) as ws:
        assert ws.receive_json()["type"] == "error"


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_show_jobs_queue_durations_and_the_process(client, runtime):
    client.post("/api/jobs/definitions", content=FANOUT)
    job_id = client.post("/api/jobs/definitions/fan/execute").json()["job_id"]
    wait_for(lambda: client.get(f"/api/jobs/{job_id}").json()["status"] == "completed", 20)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'quaero_jobs{status="completed",type="test_task"} 5.0' in text
    assert 'quaero_jobs{status="completed",type="parent"} 1.0' in text
    assert re.search(r'quaero_queue_messages\{queue="quaero",state="ready"\} 0\.0', text)
    assert 'quaero_job_duration_seconds_bucket{le="+Inf",status="completed",type="test_task"} 5.0' in text
    assert 'quaero_job_duration_seconds_gcount{status="completed",type="test_task"} 5.0' in text
    assert "process_cpu_seconds_total" in text and "python_info" in text
    openmetrics = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_job_durations_read_only_recent_jobs(runtime):
    jobs = runtime.jobs
    old = jobs.create_job("test_task", "old")
    jobs.transition(old.id, "running")
    jobs.transition(old.id, "completed")
    assert jobs.durations(since=time.time() - 60, bounds=(1.0,))[0][:3] == ("test_task", "completed", 1)
    assert jobs.durations(since=time.time() + 1, bounds=(1.0,)) == []


# ---------------------------------------------------------------------------------------------- dead letters
def test_dead_letters_listed_requeued_and_deleted(client, runtime):
    client.post("/api/jobs/definitions", content=FLAKY)
    root_id = client.post("/api/jobs/definitions/flaky/execute").json()["job_id"]
    wait_for(lambda: client.get(f"/api/jobs/{root_id}").json()["status"] == "failed", 20)
    letters = wait_for(lambda: (page := client.get("/api/queue/dead").json())["total"] == 1 and page, 10)
    [letter] = letters["items"]
    assert letter["job_status"] == "failed" and "fails on purpose" in letter["job_error"]
    assert client.get("/api/queue/stats").json()["dead"] == 1

    requeued = client.post(f"/api/queue/dead/{letter['id']}/requeue")
    assert requeued.status_code == 200 and requeued.json()["job_id"] == letter["job_id"]
    wait_for(lambda: client.get(f"/api/jobs/{letter['job_id']}").json()["status"] == "completed", 20)
    assert client.get("/api/queue/dead").json() == {"items": [], "total": 0, "limit": 50, "offset": 0, "next": None}
    assert client.post(f"/api/queue/dead/{letter['id']}/requeue").status_code == 404

    # A second failing execution: its letter can be thrown away, and requeue-all skips a finished job.
    root_id = client.post(f"/api/jobs/{root_id}/rerun").json()["job_id"]
    wait_for(lambda: client.get("/api/queue/dead").json()["total"] == 1, 20)
    [letter] = client.get("/api/queue/dead").json()["items"]
    assert client.delete(f"/api/queue/dead/{letter['id']}").json() == {"deleted": letter["id"]}
    assert client.delete(f"/api/queue/dead/{letter['id']}").status_code == 404
    assert client.get(f"/api/jobs/{letter['job_id']}").json()["status"] == "failed"
    assert client.post("/api/queue/dead/requeue").json() == {"requeued": 0, "skipped": 0}


def test_a_dead_letter_whose_job_is_gone_cannot_be_requeued(client, runtime):
    client.post("/api/jobs/definitions", content=FLAKY)
    root_id = client.post("/api/jobs/definitions/flaky/execute").json()["job_id"]
    wait_for(lambda: client.get("/api/queue/dead").json()["total"] == 1, 20)
    wait_for(lambda: client.get(f"/api/jobs/{root_id}").json()["status"] == "failed", 20)
    assert client.delete(f"/api/jobs/{root_id}").status_code == 200
    [letter] = client.get("/api/queue/dead").json()["items"]
    assert letter["job_status"] is None
    conflict = client.post(f"/api/queue/dead/{letter['id']}/requeue")
    assert conflict.status_code == 409 and "no longer exists" in conflict.json()["error"]
    assert client.post("/api/queue/dead/requeue").json() == {"requeued": 0, "skipped": 1}
    assert client.delete("/api/queue/dead").json() == {"deleted": 1}


# ---------------------------------------------------------------------------------------------- pagination
def make_jobs(runtime, children: int = 120) -> tuple[str, list[str]]:
    """A parent with ``children`` children, a third of them failed; returns their ids."""
    jobs = runtime.jobs
    parent = jobs.create_job("parent", "p", definition_id="paged")
    ids = jobs.create_children(parent, [ChildSpec("test_task", f"c{i}", {"i": i}) for i in range(children)], depth=0)
    for job_id in ids[::3]:
        jobs.transition(job_id, "failed")
    return parent.id, ids


def test_jobs_page_by_key_and_by_offset_with_filters(client, runtime):
    parent_id, created = make_jobs(runtime)
    ids = sorted(created)  # ids order jobs by creation, to the millisecond
    first = client.get("/api/jobs", params={"parent_id": parent_id, "limit": 50}).json()
    assert first["total"] == 120 and [j["id"] for j in first["items"]] == ids[::-1][:50]
    seen, cursor = [], first["next"]
    seen += [j["id"] for j in first["items"]]
    while cursor:
        page = client.get("/api/jobs", params={"parent_id": parent_id, "limit": 50, "before": cursor}).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next"]
    assert seen == ids[::-1]
    offset = client.get("/api/jobs", params={"parent_id": parent_id, "limit": 50, "offset": 100}).json()
    assert [j["id"] for j in offset["items"]] == ids[::-1][100:] and offset["next"] is None
    failed = client.get("/api/jobs", params={"parent_id": parent_id, "status": "failed", "limit": 5}).json()
    assert failed["total"] == 40 and all(j["status"] == "failed" for j in failed["items"])
    by_definition = client.get("/api/jobs", params={"definition_id": "paged", "type": "parent"}).json()
    assert by_definition["total"] == 1 and by_definition["items"][0]["id"] == parent_id
    assert client.get("/api/jobs", params={"status": "failed"}).json()["total"] == 40
    assert client.get("/api/jobs", params={"parent_id": "job_nobody"}).json()["total"] == 0


def test_children_total_follows_the_status_filter(client, runtime):
    parent_id, _ = make_jobs(runtime, children=9)
    page = client.get(f"/api/jobs/{parent_id}/children", params={"status": "failed", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["offset"] == 0
    assert client.get(f"/api/jobs/{parent_id}/children").json()["total"] == 9


def test_logs_tail_with_after_id_level_and_children(client, runtime):
    parent_id, ids = make_jobs(runtime, children=3)
    logs = runtime.logs
    for i in range(5):
        logs.write(parent_id, "info", f"parent line {i}")
    logs.write(ids[0], "error", "a child failed")
    first = client.get(f"/api/jobs/{parent_id}/logs", params={"limit": 3}).json()
    assert first["total"] == 5 and len(first["items"]) == 3 and first["next"] == first["items"][-1]["id"]
    rest = client.get(f"/api/jobs/{parent_id}/logs", params={"after_id": first["next"]}).json()
    assert [line["message"] for line in rest["items"]] == ["parent line 3", "parent line 4"]
    idle = client.get(f"/api/jobs/{parent_id}/logs", params={"after_id": rest["next"]}).json()
    assert idle["items"] == [] and idle["next"] == rest["next"]
    family = client.get(f"/api/jobs/{parent_id}/logs", params={"include_children": "true", "level": "error"}).json()
    assert family["total"] == 1 and family["items"][0]["job_id"] == ids[0]


def test_every_list_has_the_same_page_shape(client):
    client.post("/api/jobs/definitions", content=FANOUT)
    client.post("/api/auth", json={"id": "site", "base_url": "https://site.example/", "cookies": {"session": "s"}})
    for path in ("/api/jobs", "/api/jobs/definitions", "/api/auth", "/api/plugins", "/api/queue/dead"):
        page = client.get(path, params={"limit": 1}).json()
        assert set(page) == {"items", "total", "limit", "offset", "next"}, path
        assert page["limit"] == 1 and len(page["items"]) <= 1 and page["total"] >= len(page["items"]), path
    assert client.get("/api/plugins", params={"offset": 1000}).json()["items"] == []


# ---------------------------------------------------------------------------------------------- indexes
@pytest.mark.parametrize("where", ["status = 'failed'", "type = 'parent'", "parent_id = 'x'", "definition_id = 'x'"])
def test_each_jobs_filter_reads_an_index_in_id_order(runtime, where):
    plan = runtime.database.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE {where} ORDER BY id DESC LIMIT 50").fetchall()
    text = " ".join(row[-1] for row in plan)
    assert "USING INDEX" in text and "TEMP B-TREE" not in text, text


def test_an_existing_database_gets_the_new_indexes(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, parent_id TEXT, root_id TEXT, definition_id TEXT, "
                "discovered_by TEXT, type TEXT, name TEXT, phase TEXT, status TEXT, previous_status TEXT, "
                "error_message TEXT, progress_current INT, progress_total INT, payload TEXT, depth INT, attempts INT, "
                "count_pending INT, count_running INT, count_completed INT, count_failed INT, count_cancelled INT, "
                "result_count INT, created_at REAL, updated_at REAL, started_at REAL, finished_at REAL)")
    old.execute("CREATE INDEX job_created_at ON jobs (created_at)")
    old.commit()
    old.close()
    database = peewee.SqliteDatabase(path)
    bind_models(database)
    names = {row[0] for row in database.execute_sql("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"job_status_id", "job_type_id", "job_parent_id_id", "job_definition_id_id"} <= names
    assert "job_created_at" not in names
    database.close()
