"""The documents and search API over a real runtime, SQLite file and app."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from quaero.stores.documents import DocumentInput
from quaero.web.app import create_app

DOCS = [
    # source_type, source_ref, title, markdown, tags, job_id, updated
    ("web", "https://a.test/python", "Python tutorial", "Learn python step by step. Café ☕.", ["docs", "python"],
     "job_a", "2025-01-10T12:00"),
    ("web", "https://a.test/trio", "Trio guide", "Structured concurrency for python.", ["docs"], "job_a",
     "2025-02-10T12:00"),
    ("file", "/notes/snake.md", "Snakes", "A python is a <b>snake</b>.", ["nature"], "job_b", "2025-03-10T12:00"),
    ("web", "https://a.test/zebra", "Zebra", "Stripes, no serpents.", [], None, "2025-04-10T12:00"),
]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def client(runtime, settings):
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield client


@pytest.fixture
def ids(runtime):
    """DOCS saved, by source reference, updated in DOCS order and created in the reverse order."""
    store, database = runtime.documents, runtime.database
    saved = {}
    for source_type, ref, title, markdown, tags, job_id, updated in DOCS:
        saved[ref] = store.upsert(DocumentInput(source_type, ref, title, markdown, html=f"<p>{markdown}</p>",
                                                tags=tags), job_id=job_id).id
        with database.write():
            database.execute("UPDATE documents SET updated_at = ?, created_at = ? WHERE id = ?",
                             (stamp(updated), 10_000 - len(saved), saved[ref]))
    return saved


def refs(response, ids) -> list[str]:
    assert response.status_code == 200, response.text
    names = {doc_id: ref for ref, doc_id in ids.items()}
    return [names[item["id"]] for item in response.json()["items"]]


def test_list_newest_first_without_bodies(client, ids):
    response = client.get("/api/documents")
    body = response.json()
    assert refs(response, ids) == [d[1] for d in reversed(DOCS)]
    assert body["total"] == 4 and body["limit"] == 50 and body["offset"] == 0
    item = body["items"][0]
    assert "markdown" not in item and "html" not in item
    assert item["title"] == "Zebra" and item["updated_at"] == "2025-04-10T12:00:00.000Z"


def test_list_pages(client, ids):
    first = client.get("/api/documents", params={"limit": 3})
    second = client.get("/api/documents", params={"limit": 3, "offset": 3})
    assert len(refs(first, ids)) == 3 and refs(second, ids) == [DOCS[0][1]]
    assert first.json()["total"] == second.json()["total"] == 4


def test_list_filters(client, ids):
    assert refs(client.get("/api/documents", params={"source": "file"}), ids) == ["/notes/snake.md"]
    assert len(refs(client.get("/api/documents", params=[("source", "file"), ("source", "web")]), ids)) == 4
    assert refs(client.get("/api/documents", params=[("tag", "docs"), ("tag", "python")]), ids) == [
        "https://a.test/python"]
    assert refs(client.get("/api/documents", params={"after": "2025-02-10", "before": "2025-04-10"}), ids) == [
        "/notes/snake.md", "https://a.test/trio"]
    by_job = client.get("/api/documents", params={"job_id": "job_a"})
    assert refs(by_job, ids) == ["https://a.test/trio", "https://a.test/python"] and by_job.json()["total"] == 2


@pytest.mark.parametrize("sort, expected", [
    ("title", ["Python tutorial", "Snakes", "Trio guide", "Zebra"]),
    ("-title", ["Zebra", "Trio guide", "Snakes", "Python tutorial"]),
    ("updated_at", ["Python tutorial", "Trio guide", "Snakes", "Zebra"]),
    ("-created_at", ["Python tutorial", "Trio guide", "Snakes", "Zebra"]),
])
def test_list_sorts(client, ids, sort, expected):
    response = client.get("/api/documents", params={"sort": sort})
    assert [item["title"] for item in response.json()["items"]] == expected


def test_get_one_document_in_full(client, ids):
    body = client.get(f"/api/documents/{ids['/notes/snake.md']}").json()
    assert body["markdown"] == "A python is a <b>snake</b>." and body["html"].startswith("<p>A python")
    assert body["tags"] == ["nature"] and body["job_id"] == "job_b" and body["source_type"] == "file"


def test_delete_one_document_and_its_index_entry(client, ids):
    doc_id = ids["/notes/snake.md"]
    assert client.get("/api/search", params={"q": "snake"}).json()["total"] == 1
    response = client.delete(f"/api/documents/{doc_id}")
    assert response.status_code == 200 and response.json() == {"deleted": doc_id}
    assert client.get(f"/api/documents/{doc_id}").status_code == 404
    assert client.delete(f"/api/documents/{doc_id}").status_code == 404
    assert client.get("/api/search", params={"q": "snake"}).json()["total"] == 0


def test_bulk_delete_by_filter(client, ids):
    response = client.delete("/api/documents", params=[("source", "web"), ("tag", "docs")])
    assert response.status_code == 200 and response.json() == {"deleted": 2}
    assert sorted(refs(client.get("/api/documents"), ids)) == ["/notes/snake.md", "https://a.test/zebra"]
    assert client.get("/api/search", params={"q": "python"}).json()["total"] == 1
    assert client.delete("/api/documents", params={"before": "2025-01-01"}).json() == {"deleted": 0}


def test_bulk_delete_needs_a_filter_or_all(client, ids):
    refused = client.delete("/api/documents")
    assert refused.status_code == 400 and "refusing to delete every document" in refused.json()["error"]
    typo = client.delete("/api/documents", params={"sorce": "web"})
    assert typo.status_code == 400 and "'sorce'" in typo.json()["error"]
    assert client.delete("/api/documents", params={"all": "maybe"}).status_code == 400
    assert client.delete("/api/documents", params={"all": "false"}).status_code == 400
    assert client.get("/api/documents").json()["total"] == 4
    assert client.delete("/api/documents", params={"all": "true"}).json() == {"deleted": 4}
    assert client.get("/api/documents").json()["total"] == 0


def test_stats(client, ids):
    stats = client.get("/api/documents/stats", params={"top_tags": 2}).json()
    assert stats["total"] == 4 and stats["by_source_type"] == {"web": 3, "file": 1}
    assert stats["top_tags"] == [{"tag": "docs", "count": 2}, {"tag": "nature", "count": 1}]
    assert stats["newest_updated_at"] == "2025-04-10T12:00:00.000Z"
    assert stats["oldest_updated_at"] == "2025-01-10T12:00:00.000Z"
    assert stats["markdown_bytes"] == sum(len(d[3].encode("utf-8")) for d in DOCS)  # bytes, not characters
    quick = client.get("/api/documents/stats", params={"sizes": "false"}).json()
    assert quick["markdown_bytes"] is None and quick["total"] == 4
    assert client.get("/api/documents/stats", params={"sizes": "maybe"}).status_code == 400


def test_stats_of_an_empty_store(client):
    assert client.get("/api/documents/stats").json() == {
        "total": 0, "by_source_type": {}, "top_tags": [], "newest_updated_at": None, "oldest_updated_at": None,
        "markdown_bytes": 0}


def test_tags_with_counts(client, ids):
    assert client.get("/api/documents/tags").json()["items"] == [
        {"tag": "docs", "count": 2}, {"tag": "nature", "count": 1}, {"tag": "python", "count": 1}]


def test_search_results(client, ids):
    response = client.get("/api/search", params={"q": "python -snake", "limit": 1})
    body = response.json()
    assert response.status_code == 200 and body["total"] == 2 and body["limit"] == 1 and body["offset"] == 0
    assert body["query"] == "python -snake"
    [hit] = body["items"]
    assert set(hit) == {"id", "title", "source_type", "source_ref", "tags", "updated_at", "snippet",
                        "snippet_text", "score"}
    assert hit["id"] == ids["https://a.test/python"] and hit["score"] > 0
    assert hit["snippet"] == "Learn <mark>python</mark> step by step. Café ☕."
    assert hit["snippet_text"] == "Learn python step by step. Café ☕."
    second = client.get("/api/search", params={"q": "python -snake", "limit": 1, "offset": 1}).json()
    assert second["items"][0]["id"] == ids["https://a.test/trio"]


def test_search_escapes_stored_markup(client, ids):
    [hit] = client.get("/api/search", params={"q": "snake"}).json()["items"]
    assert hit["snippet"] == "A python is a &lt;b&gt;<mark>snake</mark>&lt;/b&gt;."


def test_empty_search_lists_the_newest(client, ids):
    body = client.get("/api/search", params={"q": "source:web"}).json()
    assert refs_of(body, ids) == ["https://a.test/zebra", "https://a.test/trio", "https://a.test/python"]
    assert body["total"] == 3 and body["items"][0]["score"] is None
    assert client.get("/api/search").json()["total"] == 4


def refs_of(body, ids) -> list[str]:
    names = {doc_id: ref for ref, doc_id in ids.items()}
    return [names[item["id"]] for item in body["items"]]


def test_malformed_search_is_a_400_that_says_why(client, ids):
    response = client.get("/api/search", params={"q": 'python "event loop'})
    assert response.status_code == 400
    assert response.json() == {"error": 'the quote at position 8 is never closed: add the closing "', "detail": None}
    assert "unknown filter 'title:'" in client.get("/api/search", params={"q": "title:x"}).json()["error"]


@pytest.mark.parametrize("path, params, status", [
    ("/api/documents/999999", {}, 404),
    ("/api/documents/99999999999999999999999999", {}, 404),
    ("/api/documents/abc", {}, 404),
    ("/api/documents/-1", {}, 404),
    ("/api/documents", {"sort": "size"}, 400),
    ("/api/documents", {"sort": "-"}, 400),
    ("/api/documents", {"after": "soon"}, 400),
    ("/api/documents", {"after": "2025-02-01", "before": "2025-01-01"}, 400),
    ("/api/documents", {"limit": "0"}, 400),
    ("/api/documents", {"offset": "x"}, 400),
    ("/api/documents", {"tag": "a\x00b"}, 400),
    ("/api/documents/tags", {"limit": "-5"}, 400),
    ("/api/documents/stats", {"top_tags": "many"}, 400),
    ("/api/search", {"q": "x" * 5000}, 400),
    ("/api/search", {"q": "python", "limit": "101"}, 400),
    ("/api/search", {"q": "python", "offset": "10001"}, 400),
    ("/api/search", {"q": "-"}, 400),
    ("/api/search", {"q": "OR"}, 400),
    ("/api/search", {"q": "\x00"}, 400),
    ("/api/search", {"q": "☕"}, 400),
    ("/api/search", {"q": "NEAR(python snake, 2)"}, 200),
    ("/api/search", {"q": "c++ AND NOT ^python*"}, 200),
    ("/api/search", {"q": "'; DROP TABLE documents; --"}, 200),
    ("/api/search", {"q": "café"}, 200),
])
def test_odd_requests_get_clear_answers_never_500(client, ids, path, params, status):
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    if status != 200:
        assert response.json()["error"]
    assert client.get("/api/documents").json()["total"] == 4


def test_every_route_documents_its_operation(client):
    document = client.get("/api/openapi.json").json()
    paths = {path: ops for path, ops in document["paths"].items() if path.startswith(("/api/documents", "/api/search"))}
    assert set(paths) == {"/api/documents", "/api/documents/stats", "/api/documents/tags", "/api/documents/{id}",
                          "/api/documents/{id}/related", "/api/search"}
    assert set(paths["/api/documents"]) == {"get", "delete"} and set(paths["/api/documents/{id}"]) == {"get", "delete"}
    for operations in paths.values():
        for operation in operations.values():
            assert "application/json" in operation["responses"]["200"]["content"]
    search = paths["/api/search"]["get"]
    assert [p["name"] for p in search["parameters"]] == ["q", "mode", "limit", "offset"]
    assert set(document["components"]["schemas"]["SearchHit"]["properties"]) == {
        "id", "title", "source_type", "source_ref", "tags", "updated_at", "snippet", "snippet_text", "score"}
    live = client.get("/api/search", params={"q": ""}).json()
    assert set(live) == {"items", "total", "limit", "offset", "next", "query", "mode", "notice"}
