"""JSON request bodies: typed models that check a body (a 400 naming the field) and describe it in OpenAPI."""

from __future__ import annotations

import json

import pytest
from support import wait_for

from quaero.web.bodies import BODIES
from quaero.web.schemas import component_schemas
from quaero_plugins.crawler.quick_crawl import QuickCrawlInput

AUTH_FIELDS = "accepted: id, base_url, cookies, headers"


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("/api/auth", {"id": "a", "cookie": {}}, [("cookie", f"unknown key 'cookie'; {AUTH_FIELDS}")]),
    ("/api/auth", {}, [("id", "'id' is required (the auth id definitions refer to as `auth_id`)")]),
    ("/api/auth", {"id": 7}, [("id", "'id' must be text, got 7 (the auth id")]),
    ("/api/auth", {"id": ""}, [("id", "'id' should have at least 1 character, got ''")]),
    ("/api/auth", {"id": "x" * 201}, [("id", "'id' should have at most 200 characters, got 201 characters of text")]),
    ("/api/auth", {"id": "a", "headers": []},
     [("headers", "'headers' must be a JSON object, got a JSON array (request header names to values")]),
    ("/api/auth", {"id": "a", "cookies": {"sid": 1, "ok": "v"}, "base_url": False},
     [("base_url", "'base_url' must be text, got false"), ("cookies.sid", "'cookies.sid' must be text, got 1")]),
    ("/api/jobs/quick-crawl", {"max_depth": 1}, [("url", "'url' is required (the page to start from")]),
    ("/api/jobs/quick-crawl", {"url": "ftp://example.com/"},
     [("url", "'url' must be an http:// or https:// URL, got 'ftp://example.com/'")]),
    ("/api/jobs/quick-crawl", {"url": "https://example.com/", "max_depth": "2", "depth": 1},
     [("max_depth", "'max_depth' must be a whole number, got '2'"), ("depth", "unknown key 'depth'; accepted: url")]),
    ("/api/jobs/quick-crawl", {"url": "https://example.com/", "max_pages": 0, "include_patterns": ["a", 3]},
     [("max_pages", "'max_pages' should be greater than or equal to 1, got 0"),
      ("include_patterns[1]", "'include_patterns[1]' must be text, got 3")]),
    ("/api/jobs/quick-crawl", {"url": "https://example.com/", "max_depth": True},
     [("max_depth", "'max_depth' must be a whole number, got true")]),
])
def test_a_wrong_body_is_a_400_naming_each_field(client, path, body, expected):
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"error", "detail"}
    assert [problem["path"] for problem in error["detail"]] == [field for field, _ in expected]
    for problem, (_, message) in zip(error["detail"], expected):
        assert problem["in"] == "body" and problem["message"].startswith(message), problem
        assert problem["message"] in error["error"]


def test_a_body_that_is_not_an_object_or_not_readable_is_a_400(client):
    for content, message in [(b"[1]", "the body must be a JSON object"), (b"{oops", "the body is not valid JSON"),
                             (b'{"id": ' + b"9" * 5000 + b"}", "the body holds a number too long to read")]:
        response = client.post("/api/auth", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400 and response.json()["detail"][0]["path"] == ""
        assert response.json()["error"].startswith(message)


def test_credentials_are_stored_from_a_valid_body(client):
    unscoped = client.post("/api/auth", json={"id": "site", "cookies": {"sid": "s"}, "base_url": None})
    assert unscoped.status_code == 400 and unscoped.json()["error"].startswith("give base_url")
    assert client.post("/api/auth", json={"id": "site", "cookies": {"sid": "s"}, "headers": None,
                                          "base_url": "https://intranet.example/"}).status_code == 201
    [stored] = client.get("/api/auth").json()["items"]
    assert (stored["id"], stored["base_url"], stored["cookies"], stored["headers"]) == (
        "site", "https://intranet.example/", ["sid"], [])


def test_quick_crawl_passes_only_the_given_options_to_the_crawl(client):
    response = client.post("/api/jobs/quick-crawl", json={"url": "http://127.0.0.1:9/", "max_pages": 3,
                                                          "max_depth": None, "auth_id": ""})
    assert response.status_code == 202, response.text
    children = f"/api/jobs/{response.json()['job_id']}/children"
    [step] = wait_for(lambda: client.get(children).json()["items"], 10, 0.05, "the crawl step")
    config = step["payload"]["config"]
    assert config["start_urls"] == ["http://127.0.0.1:9/"] and config["max_pages"] == 3
    assert config["max_depth"] == 2 and config["auth_id"] is None  # left out or null: the crawl's defaults
    body = QuickCrawlInput(url="https://a.test/", include_patterns=["/docs/"], auth_id="site")
    assert body.crawl_config() == {"start_urls": ["https://a.test/"], "include_patterns": ["/docs/"], "auth_id": "site"}


def test_the_bodies_in_the_document_are_generated_from_their_models(client):
    document = client.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    # The core's bodies, and the one the crawler plugin declared with its route.
    generated = component_schemas({**BODIES, "QuickCrawlInput": QuickCrawlInput})
    assert {name: schemas[name] for name in generated} == generated
    bodies = {"/api/auth": "CredentialsInput", "/api/jobs/quick-crawl": "QuickCrawlInput",
              "/api/jobs/definitions": "DefinitionInput"}
    for path, name in bodies.items():
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{name}"}, path  # the YAML names the body, nothing more
    credentials = schemas["CredentialsInput"]
    assert credentials["additionalProperties"] is False and credentials["required"] == ["id"]
    assert credentials["properties"]["cookies"] == {
        "type": "object", "additionalProperties": {"type": "string"}, "nullable": True, "default": None,
        "description": "cookie names to values; null for none"}
    definition = schemas["DefinitionInput"]
    assert definition["required"] == ["name", "steps"]  # the id defaults to the name's slug
    assert definition["properties"]["steps"]["items"] == {"$ref": "#/components/schemas/JobStep"}
    assert "options" not in schemas["JobStep"]["properties"]  # set by validation, never sent
    text = json.dumps({name: schemas[name] for name in generated})
    assert '"null"' not in text and "$defs" not in text and '"const"' not in text and '"title"' not in text
