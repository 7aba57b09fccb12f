"""The knowledge base pages over a real app and SQLite file: listing, search, the document view, delete."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from support import csrf_of

from quaero.stores.documents import DocumentInput
from quaero.web.pages_documents import as_typed
from quaero.web.sanitize import markdown_html

HOSTILE_MARKDOWN = """# Hostile page

<script>window.__xss = 1</script>
<img src=x onerror="window.__xss = 2">
[click me](javascript:alert(1)) and [fine link](https://example.org/ok)
<a href="javascript:alert(2)" onclick="alert(3)">raw link</a>

| col a | col b |
|-------|-------|
| 1     | 2     |

```python
print("<b>not bold</b>")
```
"""


def _save(runtime, ref: str, title: str, markdown: str, **extra) -> int:
    return runtime.documents.upsert(DocumentInput("web", ref, title=title, markdown=markdown, **extra)).id


def active_content(html: str) -> list[str]:
    """What in ``html`` could run script: script elements, on* handlers, javascript: URLs (parsed, not grepped)."""
    found = []
    for node in HTMLParser(html).css("*"):
        if node.tag in ("script", "iframe", "object", "embed"):
            found.append(node.tag)
        for name, value in (node.attributes or {}).items():
            if name.lower().startswith("on") or "javascript:" in (value or "").lower().replace(" ", ""):
                found.append(f"{node.tag} {name}={value!r}")
    return found


def test_hostile_markdown_is_rendered_without_anything_that_runs():
    html = markdown_html(HOSTILE_MARKDOWN)
    assert active_content(html) == []
    assert '<a href="https://example.org/ok" rel="noopener noreferrer nofollow">fine link</a>' in html
    assert "<table>" in html and "<td>1</td>" in html  # tables survive
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html  # code stays code, escaped


def test_document_view_is_sanitised_and_links_its_job(client, runtime):
    doc_id = _save(runtime, "https://evil.example/<x>", "<b>Title</b>", HOSTILE_MARKDOWN, tags=["t1"],
                   keywords=["k1"], summary="A summary")
    response = client.get(f"/documents/{doc_id}")
    assert response.status_code == 200
    assert "&lt;b&gt;Title&lt;/b&gt;" in response.text and "<b>Title</b>" not in response.text
    body = HTMLParser(response.text).css_first("article.doc-body").html
    assert active_content(body) == [] and "<h1>Hostile page</h1>" in body
    page_scripts = [n.attributes.get("src") for n in HTMLParser(response.text).css("script")]
    assert all(src and src.startswith("/static/") for src in page_scripts)  # only our own files
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "A summary" in response.text and "k1" in response.text
    assert client.get("/documents/999999").status_code == 404
    assert client.get(f"/documents/{2**70}").status_code == 404


def test_documents_list_filters_and_pages(client, runtime):
    for i in range(60):
        _save(runtime, f"https://a.example/{i}", f"Page {i}", "body", tags=["even" if i % 2 == 0 else "odd"])
    first = client.get("/documents")
    assert "1–50 of 60" in first.text and 'rel="next"' in first.text
    evens = client.get("/documents", params={"tag": "even"})
    assert "1–30 of 30" in evens.text and "Page 1<" not in evens.text
    bad = client.get("/documents", params={"after": "yesterday"})
    assert bad.status_code == 400 and "is not a date" in bad.text


def test_bulk_delete_asks_first_then_deletes_only_the_match(client, runtime):
    for i in range(6):
        _save(runtime, f"https://b.example/{i}", f"B {i}", "body", tags=["drop" if i < 4 else "keep"])
    confirm = client.get("/documents/delete", params={"tag": "drop"})
    assert confirm.status_code == 200 and "Delete 4 documents?" in confirm.text
    assert client.get("/documents/delete").status_code == 400  # no filter: not offered
    refused = client.post("/documents/delete", data={"tag": "drop"})
    assert refused.status_code == 403  # no CSRF token
    done = client.post("/documents/delete", data={"tag": "drop", "csrf_token": csrf_of(client, "/documents")},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/documents?removed=4"
    assert runtime.documents.count() == 2


def test_search_page_highlights_escapes_and_reports_bad_queries(client, runtime):
    _save(runtime, "https://c.example/1", "Event loops", "The <event> loop runs callbacks. " * 3)
    _save(runtime, "https://c.example/2", "Other", "Nothing to see")
    found = client.get("/search", params={"q": "loop"})
    assert found.status_code == 200 and "1 result" in found.text
    assert "<mark>loop</mark>" in found.text and "&lt;event&gt;" in found.text
    fragment = client.get("/search", params={"q": "callbacks"}, headers={"HX-Request": "true", "HX-Target": "results"})
    assert fragment.text.lstrip().startswith('<section id="results"') and "<html" not in fragment.text
    typed = client.get("/search", params={"q": "callb", "typing": "1"})
    assert "1 result" in typed.text  # while typing, the last word is a prefix
    assert [as_typed(t) for t in ("event lo", '"event lo', "a OR", "tag:x", "x -dra")] == [
        "event lo*", '"event lo', "a OR", "tag:x", "x -dra*"]
    bad = client.get("/search", params={"q": '"unclosed'})
    assert bad.status_code == 400 and "quote" in bad.text.lower()
    recent = client.get("/search")
    assert "Newest documents" in recent.text and "Event loops" in recent.text


def test_remote_images_are_links_and_the_policy_loads_no_image_from_another_host(client, runtime):
    doc_id = _save(runtime, "https://pixel.example/a", "Pixel", "Text ![tracker](http://10.0.0.8/p.gif) and "
                   "[![logo](https://cdn.example/logo.png)](https://example.org/)")
    response = client.get(f"/documents/{doc_id}")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["img-src"] == "'self' data:"
    body = HTMLParser(response.text).css_first("article.doc-body")
    assert body.css("img") == []
    [image_link, outer] = body.css("a")
    assert image_link.attributes["href"] == "http://10.0.0.8/p.gif" and image_link.text() == "[image: tracker]"
    assert outer.attributes["href"] == "https://example.org/" and outer.text() == "[image: logo]"
