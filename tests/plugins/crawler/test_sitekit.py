"""The crawler's test websites themselves (sitekit.py), checked with httpx."""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import pytest
from sitekit import (
    BASIC_DEPTHS,
    BASIC_TITLES,
    BASIC_WORDS,
    CHARSET_WORDS,
    HUGE_BYTES,
    MALFORMED_SCRIPT_TEXT,
    NON_HTML,
    REDIRECT_CHAIN_LENGTH,
    SITEMAP_ORPHANS,
    Request,
    Site,
    basic,
    canonical,
    charsets,
    conditional,
    errors,
    everything,
    huge,
    malformed,
    members,
    non_html,
    path_is,
    redirects,
    robots,
    sitemap,
    slow,
    trap,
)


@pytest.fixture
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def _links(html_text: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html_text)


def test_routes_static_handlers_matchers_and_404(make_site, client):
    site = make_site()
    site.route("/plain", (200, {"Content-Type": "text/plain"}, "hello"))
    site.route("/q?x=1", "<p>exact query</p>")
    site.route(path_is("/any"), lambda r: (201, [("X-Query", r.query)], b"any"))
    site.route("/echo", lambda r: (200, {"Content-Type": "text/plain"}, f"{r.method} {r.target} {r.body!r}"))

    r = client.get(site.url("/plain"))
    assert (r.status_code, r.text, r.headers["content-type"], r.headers["content-length"]) == (
        200, "hello", "text/plain", "5")
    r = client.get(site.url("/q?x=1"))
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert client.get(site.url("/q?x=2")).status_code == 404  # exact targets only
    r = client.get(site.url("/any?a=b"))
    assert (r.status_code, r.headers["x-query"], r.content) == (201, "a=b", b"any")
    r = client.get(site.url("/nowhere"))
    assert r.status_code == 404 and "<h1>Not found</h1>" in r.text
    assert client.post(site.url("/echo"), content=b"data").text == "POST /echo b'data'"
    r = client.head(site.url("/plain"))
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "5"
    assert client.get(site.url("/plain")).text == "hello"  # the connection survived the HEAD
    assert site.url("x") == site.url("/x") == f"http://127.0.0.1:{site.port}/x"


def test_handler_exception_is_a_500_kept_in_errors(make_site, client):
    site = make_site()

    def broken(request: Request):
        raise RuntimeError("boom")

    site.route("/boom", broken)
    assert client.get(site.url("/boom")).status_code == 500
    assert [str(e) for e in site.errors] == ["boom"]


def test_requests_are_recorded(make_site):
    site = make_site(basic)
    headers = {"User-Agent": "QuaeroTest/1.0", "Cookie": "session=secret; other=1", "X-Custom": "yes"}
    before = time.monotonic()
    with httpx.Client(headers=headers) as c:
        c.get(site.url("/a?x=1"))
        c.get(site.url("/b"))
        c.head(site.url("/missing-page"))
    after = time.monotonic()
    records = site.requests
    assert [(r.method, r.target, r.path, r.query, r.status) for r in records] == [
        ("GET", "/a?x=1", "/a", "x=1", 404), ("GET", "/b", "/b", "", 200),
        ("HEAD", "/missing-page", "/missing-page", "", 404)]
    first = records[0]
    assert first.headers["user-agent"] == first.headers["USER-AGENT"] == first.user_agent == "QuaeroTest/1.0"
    assert first.headers.get("x-custom") == "yes" and "X-CUSTOM" in first.headers
    assert first.cookies == {"session": "secret", "other": "1"}
    assert first.params == {"x": ["1"]}
    assert before <= records[0].time <= records[1].time <= records[2].time <= after
    assert len({r.connection for r in records}) == 1, "one keep-alive connection for the three requests"
    assert site.targets() == ["/a?x=1", "/b", "/missing-page"]
    assert [r.target for r in site.requests_for(path="/a")] == ["/a?x=1"]
    assert site.requests_for("/b")[0].status == 200
    site.clear_requests()
    assert site.requests == []


def test_basic_site_depths_titles_and_link_forms(make_site, client):
    site = make_site(basic)
    home = client.get(site.url("/")).text
    hrefs = _links(home)
    for form in ("/a", "/b", "/a#frag", "./a", "/b/../a", f"http://127.0.0.1:{site.port}/a",
                 "http://example.invalid/x", "mailto:someone@example.invalid"):
        assert form in hrefs
    # A breadth-first crawl of the site's own links gives exactly BASIC_DEPTHS.
    depths: dict[str, int] = {"/": 0}
    queue = deque(["/"])
    while queue:
        path = queue.popleft()
        r = client.get(site.url(path))
        assert r.status_code == 200, path
        assert f"<title>{BASIC_TITLES[path]}</title>" in r.text
        main = r.text.split("<main>")[1].split("</main>")[0]
        assert BASIC_WORDS[path] in main and "<nav>" in r.text
        for href in _links(r.text):
            url = urldefrag(urljoin(site.url(path), href)).url
            parts = urlsplit(url)
            if parts.scheme == "http" and parts.netloc == site.host and parts.path not in depths:
                depths[parts.path] = depths[path] + 1
                queue.append(parts.path)
    assert depths == BASIC_DEPTHS
    assert len(set(BASIC_TITLES.values())) == len(BASIC_TITLES)


def test_builders_compose_on_the_home_page(make_site, client):
    site = make_site(basic, robots, errors, members)
    hrefs = _links(client.get(site.url("/")).text)
    assert hrefs.index("/a") < hrefs.index("/private/secret")
    for href in ("/private/secret", "/missing", "/busy", "/members/"):
        assert href in hrefs


def test_robots_and_gzipped_sitemap(make_site, client):
    site = make_site(robots, sitemap)
    text = client.get(site.url("/robots.txt")).text
    assert "User-agent: *" in text and "Disallow: /private/" in text and "Crawl-delay: 1" in text
    assert f"Sitemap: {site.url('/sitemap.xml')}" in text
    assert client.get(site.url("/private/secret")).status_code == 200  # the server does not enforce robots
    index = client.get(site.url("/sitemap.xml")).text
    assert "<sitemapindex" in index and site.url("/sitemap-pages.xml.gz") in index
    r = client.get(site.url("/sitemap-pages.xml.gz"))
    assert r.headers["content-type"] == "application/x-gzip" and "content-encoding" not in r.headers
    urlset = gzip.decompress(r.content).decode()
    assert all(site.url(p) in urlset for p in SITEMAP_ORPHANS)
    for path in SITEMAP_ORPHANS:
        assert client.get(site.url(path)).status_code == 200
    assert not any(p in _links(client.get(site.url("/")).text) for p in SITEMAP_ORPHANS)


def test_trap_goes_on_forever(make_site, client):
    site = make_site(trap)
    assert "/calendar?month=1" in _links(client.get(site.url("/")).text)
    assert "/calendar?month=1001" in _links(client.get(site.url("/calendar?month=1000")).text)


def test_redirects(make_site, client):
    site = make_site(redirects)
    r = client.get(site.url("/moved"), follow_redirects=True)
    assert (r.status_code, r.url.path, [h.status_code for h in r.history]) == (200, "/target", [301])
    r = client.get(site.url("/loop1"))
    assert (r.status_code, r.headers["location"]) == (302, "/loop2")
    with pytest.raises(httpx.TooManyRedirects):
        client.get(site.url("/loop1"), follow_redirects=True)
    r = client.get(site.url("/chain/0"), follow_redirects=True)
    assert r.status_code == 200 and len(r.history) == REDIRECT_CHAIN_LENGTH == 15
    assert r.url.path == "/chain/15"


def test_errors_then_success(make_site, client):
    site = make_site(errors)
    r = client.get(site.url("/missing"))
    assert r.status_code == 404 and "missingword" in r.text
    assert client.get(site.url("/broken")).status_code == 500
    busy = [client.get(site.url("/busy")) for _ in range(3)]
    assert [r.status_code for r in busy] == [503, 503, 200]
    assert busy[0].headers["retry-after"] == "1" and "retry-after" not in busy[2].headers
    limited = [client.get(site.url("/limited")) for _ in range(2)]
    assert [r.status_code for r in limited] == [429, 200] and limited[0].headers["retry-after"] == "1"
    assert site.state["errors"] == {"/busy": 3, "/limited": 2}


def test_concurrent_requests_while_slow_is_pending(make_site):
    site = make_site(basic, slow)
    slow_result: dict[str, float] = {}

    def fetch_slow() -> None:
        started = time.monotonic()
        r = httpx.get(site.url("/slow"), timeout=10)
        slow_result["status"] = r.status_code
        slow_result["elapsed"] = time.monotonic() - started

    slow_thread = threading.Thread(target=fetch_slow)
    slow_thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    paths = list(BASIC_DEPTHS) * 3
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=20)) as c, ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda p: c.get(site.url(p)).status_code, paths[:20]))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 20
    assert elapsed < 1.5, f"20 requests took {elapsed:.2f} s while /slow was pending"
    assert slow_thread.is_alive(), "/slow answered too early"
    slow_thread.join(10)
    assert slow_result["status"] == 200 and 2.8 <= slow_result["elapsed"] < 5


def test_huge_is_streamed_and_a_client_leaving_is_not_an_error(make_site, client, capfd):
    site = make_site(huge)
    with client.stream("GET", site.url("/huge")) as r:
        assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
        received = 0
        for chunk in r.iter_raw():
            received += len(chunk)
            if received > 100_000:
                break  # leave mid-stream: the connection is dropped
    r = client.get(site.url("/huge"))
    assert len(r.content) == HUGE_BYTES and r.text.endswith("</html>\n") and "<title>Huge page</title>" in r.text
    r = client.get(site.url("/huge-declared"))
    assert int(r.headers["content-length"]) == len(r.content) == HUGE_BYTES
    time.sleep(0.2)
    assert site.errors == []
    assert capfd.readouterr().err == ""


def test_charsets(make_site, client):
    site = make_site(charsets)
    r = client.get(site.url("/latin1"))
    assert r.headers["content-type"] == "text/html; charset=ISO-8859-1"
    assert all(word in r.content.decode("iso-8859-1") for word in CHARSET_WORDS["/latin1"])
    r = client.get(site.url("/sjis"))
    assert r.headers["content-type"] == "text/html" and b'<meta charset="shift_jis">' in r.content
    assert all(word in r.content.decode("shift_jis") for word in CHARSET_WORDS["/sjis"])
    r = client.get(site.url("/cp1252"))
    assert r.headers["content-type"] == "text/html" and b"charset" not in r.content
    assert all(word in r.content.decode("cp1252") for word in CHARSET_WORDS["/cp1252"])
    for path in CHARSET_WORDS:
        with pytest.raises(UnicodeDecodeError):
            client.get(site.url(path)).content.decode("utf-8")


def test_malformed(make_site, client):
    site = make_site(malformed)
    body = client.get(site.url("/malformed")).content
    assert b"\xff\xfe" in body and b"</div></div>" in body
    assert f"</p><p>{MALFORMED_SCRIPT_TEXT}</p>".encode() in body.split(b"<script>")[1].split(b"</script>")[0]
    assert client.get(site.url("/malformed-child")).status_code == 200


def test_members_need_the_cookie(make_site, client):
    site = make_site(members)
    assert client.get(site.url("/members/")).status_code == 403
    assert client.get(site.url("/members/page2")).status_code == 403
    r = client.get(site.url("/members/"), headers={"Cookie": "session=secret"})
    assert r.status_code == 200 and "/members/page2" in _links(r.text)
    assert client.get(site.url("/members/page2"), headers={"Cookie": "session=secret"}).status_code == 200
    with httpx.Client() as c:
        c.get(site.url("/login"))
        assert c.get(site.url("/members/")).status_code == 200
    assert site.requests_for("/members/")[-1].cookies == {"session": "secret"}


def test_non_html(make_site, client):
    site = make_site(non_html)
    for path, content_type in NON_HTML.items():
        r = client.get(site.url(path))
        assert r.status_code == 200 and r.headers["content-type"] == content_type
    assert client.get(site.url("/image.png")).content.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get(site.url("/file.pdf")).content.startswith(b"%PDF-")
    assert client.get(site.url("/data.json")).json() == {"jsonword": [1, 2, 3]}


def test_canonical(make_site, client):
    site = make_site(canonical)
    for target in ("/dup?ref=1", "/dup?ref=2", "/dup"):
        r = client.get(site.url(target))
        assert r.status_code == 200 and '<link rel="canonical" href="/dup">' in r.text


def test_conditional_requests(make_site, client):
    site = make_site(conditional)
    state = site.state["conditional"]
    r = client.get(site.url("/etag"))
    assert (r.status_code, r.headers["etag"]) == (200, '"v1"') and "version1" in r.text
    r = client.get(site.url("/etag"), headers={"If-None-Match": '"v1"'})
    assert r.status_code == 304 and r.content == b""
    state.version = 2
    r = client.get(site.url("/etag"), headers={"If-None-Match": '"v1"'})
    assert (r.status_code, r.headers["etag"]) == (200, '"v2"') and "version2" in r.text
    assert [q.headers.get("If-None-Match") for q in site.requests_for("/etag")] == [None, '"v1"', '"v1"']

    state.version = 1
    r = client.get(site.url("/lastmod"))
    modified = r.headers["last-modified"]
    assert r.status_code == 200 and "version1" in r.text
    assert client.get(site.url("/lastmod"), headers={"If-Modified-Since": modified}).status_code == 304
    state.version = 2
    r = client.get(site.url("/lastmod"), headers={"If-Modified-Since": modified})
    assert r.status_code == 200 and "version2" in r.text and r.headers["last-modified"] != modified
    assert site.requests_for("/lastmod")[1].headers["if-modified-since"] == modified
    assert state.not_modified == 2


def test_everything_serves_every_home_link(make_site, client):
    site = make_site(everything)
    for href in _links(client.get(site.url("/")).text):
        url = urljoin(site.url("/"), href)
        if urlsplit(url).netloc == site.host:
            r = client.get(url, follow_redirects=False)
            assert r.status_code in (200, 301, 302, 403, 404, 429, 500, 503), href


def test_concurrent_clients_keep_their_connections_alive(make_site):
    # No timing assertion here (the machines are shared): bench/crawl.py measures the site's speed.
    site = make_site(basic)
    per_thread, threads = 150, 8

    def work() -> None:
        with httpx.Client(timeout=10) as c:
            for _ in range(per_thread):
                assert c.get(site.url("/a")).status_code == 200

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    assert len(site.requests) >= per_thread * threads
    assert len({r.connection for r in site.requests}) == threads


def test_close_is_quick_with_open_connections_and_pending_slow(make_site):
    site = make_site(slow)
    keep = httpx.Client()
    keep.get(site.url("/"))  # an idle keep-alive connection stays open
    pending = threading.Thread(target=lambda: httpx.get(site.url("/slow"), timeout=10), daemon=True)
    pending.start()
    time.sleep(0.1)
    started = time.monotonic()
    site.close()
    site.close()
    assert time.monotonic() - started < 2
    pending.join(5)
    keep.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(site.url("/"), timeout=2)
    assert site.errors == []


def test_site_as_context_manager():
    with Site() as site:
        site.route("/x", "ok")
        assert httpx.get(site.url("/x")).text == "ok"
    assert site.stopping.is_set()
