"""The REST API and WebSocket over a real runtime and SQLite file."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient
from support import wait_for

from quaero.web.app import create_app

DEFINITION = """
id: api-fan
name: API fan
steps:
  - {name: fan, action: test_fanout, config: {count: 5}}
"""


@pytest.fixture
def client(runtime, settings):
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield client


def test_definition_crud_yaml_and_json(client):
    created = client.post("/api/jobs/definitions", content=DEFINITION, headers={"content-type": "application/yaml"})
    assert created.status_code == 201 and created.json()["id"] == "api-fan"
    assert client.post("/api/jobs/definitions", content=DEFINITION).status_code == 409
    as_json = json.dumps({"id": "json-one", "name": "JSON", "steps": [{"name": "a", "action": "test_fanout"}]})
    assert client.post("/api/jobs/definitions", content=as_json,
                       headers={"content-type": "application/json"}).status_code == 201
    assert [d["id"] for d in client.get("/api/jobs/definitions").json()["items"]] == ["api-fan", "json-one"]
    got = client.get("/api/jobs/definitions/api-fan").json()
    assert got["definition"]["steps"][0]["config"] == {"count": 5}
    updated = client.put("/api/jobs/definitions/api-fan", content=DEFINITION.replace("count: 5", "count: 7"))
    assert updated.status_code == 200 and updated.json()["definition"]["steps"][0]["config"]["count"] == 7
    assert client.delete("/api/jobs/definitions/json-one").status_code == 200
    assert client.get("/api/jobs/definitions/json-one").status_code == 404


def test_invalid_definition_is_a_400_with_locations(client):
    response = client.post("/api/jobs/definitions", content="name: x\nsteps:\n  - {name: a, action: nope}\n")
    assert response.status_code == 400
    body = response.json()
    assert "unknown action 'nope'" in body["error"]
    assert body["detail"][0]["path"] == "steps[0].action" and body["detail"][0]["line"] == 3
    check = client.post("/api/jobs/definitions/validate", content="name: x\nsteps: {}\n").json()
    assert check["valid"] is False and check["detail"][0]["path"] == "steps"
    bad_json = client.post("/api/jobs/definitions", content="{oops", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400 and "invalid JSON" in bad_json.json()["error"]


def test_execute_and_follow_a_job(client):
    client.post("/api/jobs/definitions", content=DEFINITION)
    response = client.post("/api/jobs/definitions/api-fan/execute")
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    job = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] == "completed" and j, 20)
    assert job["type"] == "parent"
    [step] = client.get(f"/api/jobs/{job_id}/children").json()["items"]
    assert step["counts"]["completed"] == 5
    listing = client.get("/api/jobs", params={"parent_id": step["id"], "limit": 2}).json()
    assert listing["total"] == 5 and len(listing["items"]) == 2 and listing["limit"] == 2
    wait_for(lambda: any("execution completed" in line["message"]
                         for line in client.get(f"/api/jobs/{job_id}/logs").json()["items"]), 5)
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 409
    rerun = client.post(f"/api/jobs/{job_id}/rerun")
    assert rerun.status_code == 202 and rerun.json()["job_id"] != job_id


def test_errors_are_json_never_500(client):
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs", params={"limit": "lots"}).status_code == 400
    assert client.post("/api/jobs/definitions/missing/execute").status_code == 404
    assert client.post("/api/jobs/definitions", content="x" * 2_000_000).status_code == 413
    assert client.get("/api/nothing-here").status_code == 404


def test_running_job_cannot_be_deleted(client, runtime):
    client.post("/api/jobs/definitions", content=DEFINITION.replace("count: 5", "count: 3, work_ms: 5000"))
    job_id = client.post("/api/jobs/definitions/api-fan/execute").json()["job_id"]
    assert client.delete(f"/api/jobs/{job_id}").status_code == 409
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    assert client.delete(f"/api/jobs/{job_id}").status_code == 200
    assert client.get(f"/api/jobs/{job_id}").status_code == 404


def test_websocket_streams_events_and_filters_types(client):
    client.post("/api/jobs/definitions", content=DEFINITION)
    with client.websocket_connect("/ws?types=job_progress") as ws:
        job_id = client.post("/api/jobs/definitions/api-fan/execute").json()["job_id"]
        while True:
            message = ws.receive_json()
            assert message["type"] == "job_progress"
            if message["payload"]["job_id"] == job_id and message["payload"]["status"] == "completed":
                break
    with client.websocket_connect("/ws?types=bogus") as ws:
        assert ws.receive_json()["type"] == "error"


def test_hostile_bodies_get_clear_errors(client):
    assert client.post("/api/jobs/definitions", content=b"\xff\xfe\x00garbage").status_code == 400
    assert client.post("/api/jobs/definitions", content="[1, 2").status_code == 400
    assert client.post("/api/jobs/definitions", content="just a string").status_code == 400
    assert client.put("/api/jobs/definitions/missing", content="name: x").status_code == 404
    assert client.get("/api/jobs", params={"offset": "-1"}).status_code == 400
    assert client.get("/api/jobs/x/logs", params={"after_id": "abc"}).status_code in (400, 404)


def test_index_is_the_dashboard_and_points_to_the_api(client):
    page = client.get("/")
    assert page.status_code == 200 and "<h1>Dashboard</h1>" in page.text
    assert 'href="/jobs"' in page.text and 'href="/api/openapi.json"' in page.text


def test_bad_filters_are_400s(client):
    client.post("/api/jobs/definitions", content=DEFINITION)
    job_id = client.post("/api/jobs/definitions/api-fan/execute").json()["job_id"]
    bad_level = client.get(f"/api/jobs/{job_id}/logs", params={"level": "bogus"})
    assert bad_level.status_code == 400 and "debug, info, warn, error" in bad_level.json()["error"]
    assert client.get(f"/api/jobs/{job_id}/logs", params={"level": "WARNING"}).status_code == 200
    assert client.get("/api/jobs", params={"status": "done"}).status_code == 400
    assert client.get(f"/api/jobs/{job_id}/children", params={"status": "done"}).status_code == 400


def test_a_disabled_definition_is_a_409_until_enabled(client):
    client.post("/api/jobs/definitions", content=DEFINITION)
    assert client.post("/api/jobs/definitions/api-fan/disable").json()["enabled"] is False
    refused = client.post("/api/jobs/definitions/api-fan/execute")
    assert refused.status_code == 409 and "disabled" in refused.json()["error"]
    assert client.post("/api/jobs/definitions/api-fan/enable").json()["enabled"] is True
    assert client.post("/api/jobs/definitions/api-fan/execute").status_code == 202
    assert client.post("/api/jobs/definitions/nope/enable").status_code == 404


def test_errors_name_the_bad_field(client):
    limit = client.get("/api/jobs", params={"limit": "0"})
    assert limit.status_code == 400 and limit.json()["detail"] == [
        {"path": "limit", "in": "query", "message": "query parameter 'limit' must be between 1 and 1000, got 0"}]
    assert client.get("/api/jobs", params={"before": "j" * 201}).json()["detail"][0]["path"] == "before"
    assert client.get("/api/jobs/x/logs", params={"include_children": "maybe"}).json()["detail"][0]["path"] == \
        "include_children"
    unknown = client.post("/api/auth", json={"id": "a", "cookie": {}})
    assert unknown.status_code == 400 and unknown.json()["detail"][0] == {
        "path": "cookie", "in": "body", "message": "unknown key 'cookie'; accepted: id, base_url, cookies, headers"}
    assert client.post("/api/auth", json={"id": "a", "headers": []}).json()["detail"][0]["path"] == "headers"
    assert client.post("/api/jobs/quick-crawl", json={"max_depth": 1}).json()["detail"][0]["path"] == "url"
    not_an_object = client.post("/api/auth", content=b"[1]", headers={"content-type": "application/json"})
    assert not_an_object.json()["detail"][0] == {
        "path": "", "in": "body", "message": "the body must be a JSON object"}


def test_wrong_method_is_a_json_405(client):
    response = client.put("/api/jobs")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed", "detail": None}
    assert client.patch("/api/jobs/definitions/x").status_code == 405


def test_an_oversized_body_is_refused_from_its_declared_length(client):
    response = client.post("/api/jobs/definitions", content=b"x" * 10, headers={"content-length": "2000000"})
    assert response.status_code == 413 and "larger than 1000000 bytes" in response.json()["error"]


def test_queue_stats_have_the_seeds_pending_and_processing(client):
    stats = client.get("/api/queue/stats").json()
    assert stats["queues"]["quaero"] == {"ready": 0, "delayed": 0, "in_flight": 0, "dead": 0}
    assert (stats["pending"], stats["processing"], stats["dead"]) == (0, 0, 0)
