"""A hostile page, crawled for real and opened in a real Chromium: nothing it carries runs.

The page is served by a local HTTP server and saved by the crawler (so it goes through extraction and
conversion like any page of the open web), then shown by the document view and in search results. Every
payload writes a marker on ``window`` or asks the test server for a "beacon" URL if it runs; the test
asserts that no marker was set, no beacon was asked for, and no link in the page can run code.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from playwright.sync_api import expect
from support import execute, make_settings, served, wait_for

from quaero.settings import Settings

#: Each payload sets ``window.__xss`` (to its own number) or requests ``/beacon/<n>`` if it ever runs; once the
#: page is saved, any request the browser makes to the hostile site (an image included) counts as a beacon.
HOSTILE_BODY = """
<h1>Totally normal page</h1>
<p>Sentinel words: quetzalcoatl marmalade.</p>
<script>window.__xss = 1; fetch('/beacon/1')</script>
<img src="x" onerror="window.__xss = 2">
<p onmouseover="window.__xss = 3" onclick="window.__xss = 3">Hover or click me.</p>
<a href="javascript:window.__xss = 4">a javascript: link</a>
<a href="JaVaScRiPt&colon;window.__xss = 5">an encoded javascript: link</a>
<a href="data:text/html;base64,PHNjcmlwdD53aW5kb3cub3BlbmVyLl9feHNzPTY8L3NjcmlwdD4=">a data: link</a>
<a href="vbscript:msgbox(7)">a vbscript: link</a>
<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss = 8"><script>window.__xss = 8</script>
  <a xlink:href="javascript:window.__xss = 8"><text x="0" y="15">svg link</text></a></svg>
<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9ImFsZXJ0KDEpIi8+" alt="svg data image">
<iframe src="javascript:window.parent.__xss = 9"></iframe>
<iframe srcdoc="&lt;script&gt;window.parent.__xss = 10&lt;/script&gt;"></iframe>
<object data="data:text/html,&lt;script&gt;window.parent.__xss=11&lt;/script&gt;"></object>
<embed src="/beacon/12">
<form action="javascript:window.__xss = 13"><button>Send</button></form>
<math><mtext><table><mglyph><style><img src=x onerror="window.__xss = 14"></style></mglyph></table></mtext></math>
<noscript><p title="</noscript><img src=x onerror='window.__xss = 15'>"></p></noscript>
<details open ontoggle="window.__xss = 16"><summary>details</summary>inside</details>
<video><source onerror="window.__xss = 17"></video>
<p>Markdown-looking text: [click me](javascript:window.__xss=18) and ![img](javascript:window.__xss=19)</p>
<p>A raw link in text: <a href=" javascript:window.__xss=20">spaced javascript</a></p>
<style>body { background: url('/beacon/21') }</style>
<link rel="stylesheet" href="/beacon/22">
<meta http-equiv="refresh" content="0; url=javascript:window.__xss=23">
<base href="javascript:window.__xss=24//">
<p>Closing words: the end of the hostile page.</p>
"""

HOSTILE_PAGE = f"""<!doctype html><html><head>
<title>Hostile &lt;script&gt;window.__xss=99&lt;/script&gt; page</title>
<meta name="description" content="&quot;&gt;&lt;img src=x onerror=window.__xss=98&gt;">
</head><body><main>{HOSTILE_BODY}</main></body></html>"""


class _Hostile(BaseHTTPRequestHandler):
    beacons: list[str]

    def do_GET(self) -> None:
        self.beacons.append(self.path)
        body = HOSTILE_PAGE.encode() if self.path == "/" else b"User-agent: *\nAllow: /\n" \
            if self.path == "/robots.txt" else b"nothing"
        kind = "text/html; charset=utf-8" if self.path == "/" else "text/plain"
        self.send_response(200 if self.path in ("/", "/robots.txt") else 404)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def hostile_site() -> Iterator[tuple[str, list[str]]]:
    beacons: list[str] = []
    with served(type("Handler", (_Hostile,), {"beacons": beacons})) as url:
        yield url, beacons


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The hostile site is on 127.0.0.1: the outbound policy must be told that loopback is allowed.
    return make_settings(tmp_path, allow_private_networks=["127.0.0.0/8", "::1/128"])


def test_a_crawled_hostile_page_runs_nothing_in_the_document_view_or_search(live_server, page, hostile_site):
    site_url, beacons = hostile_site
    root = execute(live_server.runtime, f"""id: hostile-crawl
name: Hostile crawl
steps:
  - name: crawl
    action: crawl
    config: {{start_urls: ["{site_url}/"], max_pages: 1, max_depth: 0, concurrency: 1}}
""")
    wait_for(lambda: live_server.runtime.jobs.get(root).status in ("completed", "failed"), 60, what="the crawl")
    assert live_server.runtime.jobs.get(root).status == "completed"
    documents = live_server.runtime.documents.list(limit=10)
    assert len(documents) == 1, documents
    doc = documents[0]
    # The page's words were kept (the test would prove nothing if the crawler had dropped the body), and
    # the body's <base> and <meta> did not become a YAML header.
    assert "quetzalcoatl marmalade" in doc.markdown and "the end of the hostile page" in doc.markdown
    assert doc.markdown.startswith("# Totally normal page"), doc.markdown
    beacons.clear()  # only what the browser asks for counts from here on: nothing at all

    page.on("dialog", lambda dialog: dialog.dismiss())
    page.goto(f"{live_server.url}/documents/{doc.id}")
    body = page.locator("article.doc-body")
    expect(body).to_contain_text("quetzalcoatl marmalade")
    expect(body).to_contain_text("the end of the hostile page")
    page.wait_for_load_state("networkidle")
    # Loading the page asked the hostile site for nothing: no image, style, frame or script of its own.
    assert beacons == [], beacons
    # Hover and click everything that had a handler (links are only read below: following one is fine).
    for selector in ("p", "button", "summary", "svg", "img", "li", "span"):
        for element in body.locator(selector).all():
            try:
                element.hover(timeout=500)
                element.click(timeout=500, no_wait_after=True)
            except Exception:  # an element that cannot be clicked has nothing to run
                pass
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    # No link of the document can run code or open a data: document, whatever its spelling.
    hrefs = body.locator("a[href]").evaluate_all("links => links.map(a => a.href)")
    assert all(href.startswith(("http://", "https://", "/", "#", "mailto:")) for href in hrefs), hrefs
    assert body.locator("script, iframe, object, embed, form, svg, style, link, meta, base").count() == 0
    assert body.locator("[onerror], [onload], [onclick], [onmouseover], [ontoggle]").count() == 0

    # The same document in search results: the title and snippet are text, not markup.
    page.goto(f"{live_server.url}/search?q=quetzalcoatl")
    expect(page.locator("#results")).to_contain_text("quetzalcoatl")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#results script, #results img").count() == 0
    # The documents list shows the hostile title as text too.
    page.goto(f"{live_server.url}/documents")
    expect(page.get_by_role("link", name="Hostile <script>window.__xss=99</script> page")).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert page.js_errors == []
    assert [b for b in beacons if b.startswith("/beacon")] == [], beacons
