"""JSON bodies only as JSON: what a cross-site HTML form can send (text/plain, form encodings) is a 415."""

from __future__ import annotations

import json

import pytest

CREDENTIALS = json.dumps({"id": "site", "base_url": "https://site.example/", "cookies": {"sid": "v-1234567"}})
DEFINITION = "id: typed\nname: typed\nsteps:\n  - {name: a, action: test_fanout, config: {count: 1}}\n"


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          None])
def test_a_json_body_not_sent_as_json_is_a_415(client, runtime, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/auth", content=CREDENTIALS, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert runtime.credentials.listing() == []
    quick = client.post("/api/jobs/quick-crawl", content=json.dumps({"url": "https://example.com/"}),
                        headers=headers)
    assert quick.status_code == 415


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/merge-patch+json"])
def test_json_and_plus_json_bodies_are_read(client, runtime, content_type):
    response = client.post("/api/auth", content=CREDENTIALS, headers={"content-type": content_type})
    assert response.status_code == 201
    assert [item["id"] for item in runtime.credentials.listing()] == ["site"]


def test_definitions_come_as_yaml_or_json_never_as_a_form_type(client):
    for refused in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = client.post("/api/jobs/definitions", content=DEFINITION, headers={"content-type": refused})
        assert response.status_code == 415 and "application/yaml" in response.json()["error"]
    assert client.post("/api/jobs/definitions", content=DEFINITION,
                       headers={"content-type": "application/yaml"}).status_code == 201
    assert client.put("/api/jobs/definitions/typed", content=DEFINITION).status_code == 200  # no type: YAML
