"""A crawl's ``headers:`` hold no secret in clear: credential headers are refused unless written as
``${ENV_VAR}``, which stays unread in the definition and every job payload and is read by the worker."""

from __future__ import annotations

import json

import pytest
import sitekit
from starlette.testclient import TestClient
from support import make_settings, wait_done

from quaero.runtime import Runtime
from quaero.web.app import create_app

TOKEN = "hdr-secret-6b1d0e4f"


def definition(site, headers) -> str:
    return json.dumps({"id": "hdr", "name": "headers", "steps": [{"name": "crawl", "action": "crawl", "config": {
        "start_urls": [site.url("/")], "max_depth": 0, "per_host_delay_ms": 0, "headers": headers}}]})


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("CRAWL_TEST_TOKEN", TOKEN)
    settings = make_settings(tmp_path)
    with Runtime(settings, role="run") as runtime, TestClient(create_app(settings, runtime=runtime)) as client:
        client.runtime = runtime
        yield client


@pytest.mark.parametrize("name", ["Authorization", "cookie", "Proxy-Authorization", "X-Api-Key", "X-Auth-Token"])
def test_a_literal_credential_header_is_refused_with_what_to_use_instead(api, make_site, name):
    site = make_site(sitekit.basic)
    response = api.post("/api/jobs/definitions", content=definition(site, {name: "literal-value"}),
                        headers={"content-type": "application/json"})
    assert response.status_code == 400
    message = response.json()["error"]
    assert "auth_id" in message and "${" in message and "literal-value" not in response.text


def test_an_env_reference_is_read_by_the_worker_only(api, make_site):
    site = make_site(sitekit.basic)
    headers = {"Authorization": "Bearer ${CRAWL_TEST_TOKEN}", "X-Trace": "plain"}
    created = api.post("/api/jobs/definitions", content=definition(site, headers),
                       headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    root_id = api.post("/api/jobs/definitions/hdr/execute").json()["job_id"]
    root = wait_done(api.runtime, root_id)
    assert root.status == "completed"
    [request] = site.requests_for(path="/")
    assert request.headers.get("Authorization") == f"Bearer {TOKEN}" and request.headers.get("X-Trace") == "plain"
    answers = [created.text, api.get("/api/jobs/definitions/hdr").text, api.get(f"/api/jobs/{root_id}").text]
    for step in api.get(f"/api/jobs/{root_id}/children").json()["items"]:
        answers.append(api.get(f"/api/jobs/{step['id']}").text)
        for child in api.get(f"/api/jobs/{step['id']}/children").json()["items"]:
            answers.append(api.get(f"/api/jobs/{child['id']}").text)
    assert len(answers) >= 5
    assert all(TOKEN not in text for text in answers)
    assert "${CRAWL_TEST_TOKEN}" in answers[1]
    assert any("${CRAWL_TEST_TOKEN}" in text for text in answers[2:])  # the step's payload keeps the reference
    api.runtime.logs.flush()
    data_dir = api.runtime.settings.data_dir
    stored = b"".join(path.read_bytes() for path in data_dir.rglob("*") if path.is_file())
    assert TOKEN.encode() not in stored  # nor any database, log or queue file


def test_an_unset_variable_fails_the_job_naming_it(api, make_site, monkeypatch):
    monkeypatch.delenv("CRAWL_TEST_TOKEN")
    site = make_site(sitekit.basic)
    api.post("/api/jobs/definitions", content=definition(site, {"Authorization": "${CRAWL_TEST_TOKEN}"}),
             headers={"content-type": "application/json"})
    root = wait_done(api.runtime, api.post("/api/jobs/definitions/hdr/execute").json()["job_id"])
    assert root.status == "failed"
    [step] = api.runtime.jobs.children(root.id)
    [child] = api.runtime.jobs.children(step.id)
    assert "${CRAWL_TEST_TOKEN} is not set" in child.error_message
    assert site.requests_for(path="/") == []
