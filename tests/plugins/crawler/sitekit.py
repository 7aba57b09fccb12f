"""Local test websites for the crawler's tests: a small threaded HTTP/1.1 server and ready-made sites.

    site = Site()                       # listening on 127.0.0.1:<free port>, serving in a thread
    basic(site); robots(site)           # builders add routes (composable on one site)
    site.route("/x", (200, {"Content-Type": "text/plain"}, "hello"))
    site.route(path_is("/calendar"), lambda request: ...)
    ... crawl site.url("/") ...
    assert [r.target for r in site.requests] == [...]
    site.close()

In tests, use the ``make_site`` fixture of ``tests/crawler/conftest.py``: ``make_site(basic, robots)``
starts a site, applies the builders and closes it at teardown.

Routes. A route maps a *matcher* to a *response*:

- matcher: a string, compared exactly with the request target (path plus ``?query`` as sent, without
  the fragment), or a callable ``matcher(request) -> bool`` (see :func:`path_is`, :func:`path_prefix`).
  Exact strings win; then callables, the most recently added first. No match: 404 with an HTML body.
- response: ``(status, headers, body)``, a bare ``str``/``bytes`` (200, HTML), or a callable
  ``handler(request) -> response``. ``headers`` is a dict or a list of pairs. ``body`` is ``str`` (sent
  as UTF-8), ``bytes``, or an iterable of ``bytes`` (streamed: chunked unless the headers give a
  Content-Length). Without a Content-Type, ``text/html; charset=utf-8`` is sent.

Every request is recorded in ``site.requests`` (a :class:`Request` per request, in arrival order)
before its handler runs, including those answered 404. The server speaks HTTP/1.1 with keep-alive,
one thread per connection; a client that goes away mid-response is not an error. An exception in a
handler becomes a 500 and is kept in ``site.errors`` (nothing is printed).

The home page ``/`` is built from ``site.home_links`` unless a route replaces it: every builder that
says "linked from /" appends there, so builders compose (``basic`` + ``robots`` + ``errors`` ...).
"""

from __future__ import annotations

import email.utils
import gzip
import html
import http.cookies
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

Headers = Mapping[str, str] | list[tuple[str, str]]
Body = str | bytes | Iterable[bytes]
Response = tuple[int, Headers, Body] | str | bytes
Handler = Callable[["Request"], Response]
Matcher = Callable[["Request"], bool]

HTML = "text/html; charset=utf-8"


class CIHeaders:
    """Request headers: case-insensitive lookups, repeated headers kept (``get_all``)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = list(items)
        self._map: dict[str, str] = {}
        for name, value in self._items:
            key = name.lower()
            self._map[key] = f"{self._map[key]}, {value}" if key in self._map else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._map.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self._items if key.lower() == name.lower()]

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"CIHeaders({self._items!r})"


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    target: str                 # path + "?" + query, exactly as sent (no fragment)
    path: str                   # without the query
    query: str                  # the raw query string, "" if none
    headers: CIHeaders
    time: float                 # time.monotonic() when the request head had been read
    body: bytes = b""
    connection: int = 0         # a number per TCP connection: equal numbers = a reused keep-alive connection
    status: int | None = None   # the status answered (set once the response head is sent)

    @property
    def params(self) -> dict[str, list[str]]:
        """The parsed query string."""
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies of the ``Cookie`` header(s)."""
        jar: dict[str, str] = {}
        for header in self.headers.get_all("Cookie"):
            parsed = http.cookies.SimpleCookie()
            try:
                parsed.load(header)
            except http.cookies.CookieError:
                continue
            jar.update({name: morsel.value for name, morsel in parsed.items()})
        return jar

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("User-Agent")


def path_is(path: str) -> Matcher:
    """A matcher for one path, whatever the query string."""
    return lambda request: request.path == path


def path_prefix(prefix: str) -> Matcher:
    """A matcher for every path that starts with ``prefix``."""
    return lambda request: request.path.startswith(prefix)


def page(title: str, main: str, *, nav: Iterable[tuple[str, str]] = (), head: str = "",
         footer: str = "") -> str:
    """An HTML document with a ``<title>``, a ``<nav>`` of links (``(href, text)``) and a ``<main>``."""
    nav_html = " ".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for href, text in nav)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title>{head}</head>\n<body>\n<header><div class=\"logo\">Test site</div></header>\n"
            f"<nav>{nav_html}</nav>\n<main>\n{main}\n</main>\n<footer>{footer or 'Footer boilerplate'}"
            f"</footer>\n</body></html>\n")


def links_html(links: Iterable[tuple[str, str]]) -> str:
    """``<ul>`` of links from ``(href, text)`` pairs."""
    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>\n' for href, text in links)
    return f"<ul>\n{items}</ul>"


def redirect(location: str, status: int = 302) -> tuple[int, dict[str, str], str]:
    return status, {"Location": location, "Content-Type": HTML}, f'<a href="{html.escape(location)}">moved</a>'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, site: Site, host: str = "127.0.0.1") -> None:
        self.site = site
        super().__init__((host, 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # a client that went away: not an error
        if exc is not None:
            self.site.errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sitekit/1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 30  # an idle keep-alive connection is dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        site = self.server.site
        with site._lock:
            site._connection_counter += 1
            self.connection_id = site._connection_counter
            site._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server.site._lock:
            self.server.site._connections.discard(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    def _dispatch(self) -> None:
        site = self.server.site
        length = self.headers.get("Content-Length")
        body = b""
        if length is not None:
            try:
                body = self.rfile.read(int(length))
            except ValueError:
                self.close_connection = True
        elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True  # not supported for requests; keep the stream in sync by closing
        split = urlsplit(self.path)
        target = split.path + (f"?{split.query}" if split.query else "")
        request = Request(method=self.command, target=target, path=split.path, query=split.query,
                          headers=CIHeaders(list(self.headers.items())), time=time.monotonic(), body=body,
                          connection=self.connection_id)
        with site._lock:
            site.requests.append(request)
        try:
            response = site._respond(request)
            status, headers, payload = _normalise(response)
        except Exception as exc:  # a broken handler answers 500, the test sees site.errors
            site.errors.append(exc)
            status, headers, payload = 500, [("Content-Type", HTML)], b"<h1>handler error</h1>"
        request.status = status
        self._send(request, status, headers, payload)

    def _send(self, request: Request, status: int, headers: list[tuple[str, str]], payload: Any) -> None:
        names = {name.lower() for name, _ in headers}
        if "content-type" not in names and status not in (204, 304):
            headers.append(("Content-Type", HTML))
        headers.append(("Date", email.utils.formatdate(usegmt=True)))
        no_body = request.method == "HEAD" or status in (204, 304) or 100 <= status < 200
        streamed = not isinstance(payload, bytes)
        if not streamed and "content-length" not in names and status not in (204, 304):
            headers.append(("Content-Length", str(len(payload))))
        chunked = streamed and "content-length" not in names and not no_body
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        if any(n.lower() == "connection" and v.lower() == "close" for n, v in headers):
            self.close_connection = True
        reason = self.responses.get(status, ("",))[0]
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
        out = self.wfile
        if no_body:
            out.write(head.encode("latin-1"))
            if streamed and hasattr(payload, "close"):
                payload.close()
            return
        if not streamed:
            out.write(head.encode("latin-1") + payload)
            return
        out.write(head.encode("latin-1"))
        try:
            for chunk in payload:
                if not chunk:
                    continue
                if chunked:
                    out.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    out.write(chunk)
            if chunked:
                out.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away mid-stream
        finally:
            if hasattr(payload, "close"):
                payload.close()


def _normalise(response: Response) -> tuple[int, list[tuple[str, str]], bytes | Iterable[bytes]]:
    if isinstance(response, (str, bytes)):
        response = (200, {}, response)
    status, headers, body = response
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    return int(status), pairs, body


class Site:
    """A test website on 127.0.0.1 (a free port), served by a thread; see the module docstring.

    ``address`` puts it elsewhere in 127/8 (all loopback on Linux), e.g. ``127.0.0.2``: another host.
    """

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self.state: dict[str, Any] = {}
        self.home_title = "Home"
        self.home_links: list[tuple[str, str]] = []
        self.stopping = threading.Event()  # set by close(): slow handlers wait on it
        self._exact: dict[str, Response | Handler] = {}
        self._matchers: list[tuple[Matcher, Response | Handler]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connection_counter = 0
        self._server = _Server(self, address)
        self.port: int = self._server.server_address[1]
        self.host = f"{address}:{self.port}"
        self.base_url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sitekit-{self.port}", daemon=True)
        self._thread.start()
        self.route("/", self._home)

    # -- routing -------------------------------------------------------------------------------------

    def route(self, match: str | Matcher, response: Response | Handler) -> None:
        """Serve ``response`` (static or a handler) for requests that ``match`` (see the module docstring)."""
        if isinstance(match, str):
            self._exact[match] = response
        else:
            self._matchers.insert(0, (match, response))

    def add(self, routes: Mapping[str, Response | Handler]) -> None:
        """Add many exact routes at once."""
        for match, response in routes.items():
            self.route(match, response)

    def link_from_home(self, href: str, text: str | None = None) -> None:
        """Add a link to the default home page ``/``."""
        self.home_links.append((href, text or href))

    def _home(self, request: Request) -> Response:
        main = f"<h1>{html.escape(self.home_title)}</h1>\n<p>Welcome to the test site home page.</p>\n"
        return page(self.home_title, main + links_html(self.home_links), nav=[("/", "Home")])

    def _respond(self, request: Request) -> Response:
        response = self._exact.get(request.target)
        if response is None:
            for matcher, candidate in self._matchers:
                if matcher(request):
                    response = candidate
                    break
        if response is None:
            return 404, {"Content-Type": HTML}, page("Not found",
                                                     f"<h1>Not found</h1><p>{html.escape(request.target)}</p>")
        if callable(response):
            return response(request)
        return response

    # -- addresses and records -------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this site."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def requests_for(self, target: str | None = None, *, path: str | None = None) -> list[Request]:
        """The recorded requests for one exact target (path+query), or for one path whatever the query."""
        with self._lock:
            records = list(self.requests)
        if target is not None:
            return [r for r in records if r.target == target]
        if path is not None:
            return [r for r in records if r.path == path]
        return records

    def targets(self) -> list[str]:
        """The targets requested, in order (repeats included)."""
        with self._lock:
            return [r.target for r in self.requests]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- life ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, drop open connections and wake slow handlers; idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Site {self.base_url}>"


# ------------------------------------------------------------------------------------------------------
# Ready-made sites. Each builder takes a Site and adds routes; several can go on one site.
# ------------------------------------------------------------------------------------------------------

#: basic: the depth of each page from the start URL ``/`` (depth 0). ``max_depth: N`` saves the pages
#: whose depth is <= N.
BASIC_DEPTHS: dict[str, int] = {"/": 0, "/a": 1, "/b": 1, "/a1": 2, "/a2": 2, "/b1": 2, "/a1x": 3}
#: basic: each page's <title>.
BASIC_TITLES: dict[str, str] = {
    "/": "Basic home", "/a": "Page A", "/b": "Page B", "/a1": "Page A1", "/a2": "Page A2",
    "/b1": "Page B1", "/a1x": "Page A1X",
}
#: basic: a word found only in each page's <main> text.
BASIC_WORDS: dict[str, str] = {
    "/": "homeword", "/a": "alphaword", "/b": "bravoword", "/a1": "alphaoneword", "/a2": "alphatwoword",
    "/b1": "bravooneword", "/a1x": "deepestword",
}
#: basic: the text every page repeats in its <nav> (boilerplate a main-content extractor may drop).
BASIC_NAV = [("/", "Home"), ("/a", "Section A"), ("/b", "Section B")]
_BASIC_CHILDREN = {"/a": ["/a1", "/a2"], "/b": ["/b1"], "/a1": ["/a1x"], "/a2": [], "/b1": [], "/a1x": []}


def saved(runtime: Any, site: Site) -> dict[str, Any]:
    """The documents a runtime saved from ``site``, by path (``"/a"``), read back from its document store."""
    prefix = site.url("/").rstrip("/")
    return {doc.source_ref[len(prefix):]: doc for doc in runtime.documents.list(limit=10_000)
            if doc.source_ref.startswith(prefix)}


def basic_home_links(site: Site) -> list[str]:
    """The hrefs on basic's home page: /a and /b in many spellings, an external link, a mailto."""
    return ["/a", "/b", "/a#frag", "./a", "/b/../a", f"http://127.0.0.1:{site.port}/a",
            f"//127.0.0.1:{site.port}/a", "http://example.invalid/x", "mailto:someone@example.invalid",
            "javascript:void(0)"]


def basic(site: Site) -> None:
    """``/`` → /a, /b (in many forms), external and mailto links; /a → /a1, /a2; /b → /b1; /a1 → /a1x.

    Depths in :data:`BASIC_DEPTHS`, titles in :data:`BASIC_TITLES`, a distinctive word per page's
    ``<main>`` in :data:`BASIC_WORDS`. Every page's ``<nav>`` links /, /a and /b (which leaves the
    depths unchanged).
    """
    site.home_title = BASIC_TITLES["/"]
    site.home_links[:0] = [(href, f"link {i}") for i, href in enumerate(basic_home_links(site))]

    def home(request: Request) -> Response:
        main = (f"<h1>{BASIC_TITLES['/']}</h1>\n<p>The {BASIC_WORDS['/']} home page of the basic test site. "
                f"It links to the same pages in many spellings.</p>\n" + links_html(site.home_links))
        return page(BASIC_TITLES["/"], main, nav=BASIC_NAV)

    site.route("/", home)
    for path, children in _BASIC_CHILDREN.items():
        main = (f"<h1>{BASIC_TITLES[path]}</h1>\n<p>This is {BASIC_TITLES[path]}, with the word "
                f"{BASIC_WORDS[path]} in its main text. It sits at depth {BASIC_DEPTHS[path]}.</p>\n"
                f"<p>A second paragraph of ordinary prose about {BASIC_TITLES[path].lower()}.</p>\n"
                + links_html((child, BASIC_TITLES[child]) for child in children))
        site.route(path, page(BASIC_TITLES[path], main, nav=BASIC_NAV))


def robots(site: Site, *, crawl_delay: float = 1) -> None:
    """``/robots.txt``: ``Disallow: /private/``, ``Crawl-delay``, a ``Sitemap`` line; ``/private/secret``
    linked from /."""
    body = (f"User-agent: *\nDisallow: /private/\nCrawl-delay: {crawl_delay:g}\n\n"
            f"Sitemap: {site.url('/sitemap.xml')}\n")
    site.route("/robots.txt", (200, {"Content-Type": "text/plain; charset=utf-8"}, body))
    site.route("/private/secret", page("Secret", "<h1>Secret</h1><p>robots.txt forbids this page.</p>"))
    site.link_from_home("/private/secret", "Private")


#: sitemap: pages listed only in the (gzipped) sitemap, linked from nowhere.
SITEMAP_ORPHANS = ["/orphan1", "/orphan2"]


def sitemap(site: Site) -> None:
    """``/sitemap.xml``: a ``<sitemapindex>`` → ``/sitemap-pages.xml.gz`` (gzip file, not
    Content-Encoding) listing :data:`SITEMAP_ORPHANS`."""
    index = ('<?xml version="1.0" encoding="UTF-8"?>\n'
             '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
             f"  <sitemap><loc>{site.url('/sitemap-pages.xml.gz')}</loc></sitemap>\n</sitemapindex>\n")
    urls = "".join(f"  <url><loc>{site.url(p)}</loc><lastmod>2024-01-0{i + 1}</lastmod></url>\n"
                   for i, p in enumerate(SITEMAP_ORPHANS))
    urlset = ('<?xml version="1.0" encoding="UTF-8"?>\n'
              f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n')
    site.route("/sitemap.xml", (200, {"Content-Type": "application/xml"}, index))
    site.route("/sitemap-pages.xml.gz", (200, {"Content-Type": "application/x-gzip"},
                                         gzip.compress(urlset.encode(), mtime=0)))
    for i, path in enumerate(SITEMAP_ORPHANS):
        site.route(path, page(f"Orphan {i + 1}", f"<h1>Orphan {i + 1}</h1><p>Only the sitemap lists "
                                                  f"orphanword{i + 1}.</p>"))


def trap(site: Site) -> None:
    """``/calendar?month=N`` links to ``month=N+1`` forever; /calendar?month=1 is linked from /."""

    def calendar(request: Request) -> Response:
        try:
            month = int(request.params.get("month", ["1"])[0])
        except ValueError:
            month = 1
        main = (f"<h1>Calendar month {month}</h1><p>Nothing happens this month.</p>"
                f'<a href="/calendar?month={month + 1}">next month</a> '
                f'<a href="/calendar?month={month - 1}">previous month</a>')
        return page(f"Calendar {month}", main)

    site.route(path_is("/calendar"), calendar)
    site.link_from_home("/calendar?month=1", "Calendar")


#: redirects: the number of hops from /chain/0 to /chain/15 (the 200 page).
REDIRECT_CHAIN_LENGTH = 15


def redirects(site: Site) -> None:
    """``/loop1`` → 302 ``/loop2`` → 302 ``/loop1``; ``/moved`` → 301 ``/target``; ``/chain/0`` → ... →
    ``/chain/15`` (15 redirects, then 200). /loop1, /moved and /chain/0 are linked from /."""
    site.route("/loop1", redirect("/loop2"))
    site.route("/loop2", redirect("/loop1"))
    site.route("/moved", redirect("/target", 301))
    site.route("/target", page("Target", "<h1>Target</h1><p>The targetword page, reached by a redirect.</p>"))
    for i in range(REDIRECT_CHAIN_LENGTH):
        site.route(f"/chain/{i}", redirect(f"/chain/{i + 1}"))
    site.route(f"/chain/{REDIRECT_CHAIN_LENGTH}", page("Chain end", "<h1>Chain end</h1><p>chainendword</p>"))
    for href in ("/loop1", "/moved", "/chain/0"):
        site.link_from_home(href)


def errors(site: Site) -> None:
    """``/missing`` 404 (HTML body), ``/broken`` 500, ``/busy`` 503 + ``Retry-After: 1`` for the first two
    requests then 200, ``/limited`` 429 + ``Retry-After: 1`` once then 200. All linked from /.

    ``site.state["errors"]`` counts the requests per path.
    """
    counts = site.state.setdefault("errors", {"/busy": 0, "/limited": 0})
    lock = threading.Lock()

    def counted(path: str, failures: int, status: int, title: str) -> Handler:
        def handler(request: Request) -> Response:
            with lock:
                counts[path] += 1
                n = counts[path]
            if n <= failures:
                return status, {"Retry-After": "1", "Content-Type": HTML}, page("Try later", "<p>Try later.</p>")
            return page(title, f"<h1>{title}</h1><p>{title.lower().replace(' ', '')}word after retrying.</p>")
        return handler

    site.route("/missing", (404, {"Content-Type": HTML}, page("Not here", "<h1>Not here</h1><p>missingword</p>")))
    site.route("/broken", (500, {"Content-Type": HTML}, page("Server error", "<h1>Oops</h1>")))
    site.route("/busy", counted("/busy", 2, 503, "Busy page"))
    site.route("/limited", counted("/limited", 1, 429, "Limited page"))
    for href in ("/missing", "/broken", "/busy", "/limited"):
        site.link_from_home(href)


def slow(site: Site, *, delay: float = 3.0) -> None:
    """``/slow`` answers after ``delay`` seconds (other requests are served meanwhile); linked from /."""

    def handler(request: Request) -> Response:
        site.stopping.wait(delay)
        return page("Slow page", "<h1>Slow</h1><p>slowword, at last.</p>")

    site.route("/slow", handler)
    site.link_from_home("/slow")


#: huge: the size of /huge and /huge-declared.
HUGE_BYTES = 5 * 1024 * 1024


def _huge_chunks(total: int) -> Iterator[bytes]:
    head = b"<!DOCTYPE html><html><head><title>Huge page</title></head><body><main><h1>Huge</h1>\n"
    tail = b"</main></body></html>\n"
    yield head
    line = b"<p>" + b"hugeword filler text for a very large page. " * 20 + b"</p>\n"
    remaining = total - len(head) - len(tail)
    block = line * (65536 // len(line))
    while remaining > 0:
        piece = block[:remaining]
        remaining -= len(piece)
        yield piece
    yield tail


def huge(site: Site, *, size: int = HUGE_BYTES) -> None:
    """``/huge``: a ``size``-byte HTML page streamed chunked (no Content-Length); ``/huge-declared`` the
    same with a Content-Length. Both linked from /."""
    site.route("/huge", lambda request: (200, {"Content-Type": HTML}, _huge_chunks(size)))
    site.route("/huge-declared", lambda request: (200, {"Content-Type": HTML, "Content-Length": str(size)},
                                                  _huge_chunks(size)))
    site.link_from_home("/huge")
    site.link_from_home("/huge-declared")


#: charsets: words each page must show once decoded right.
CHARSET_WORDS: dict[str, list[str]] = {
    "/latin1": ["café", "naïve", "garçon", "Zürich"],
    "/sjis": ["日本語", "東京", "ひらがな"],
    "/cp1252": ["café", "“curly quotes”", "€", "déjà vu", "—"],
}


def charsets(site: Site) -> None:
    """``/latin1`` (ISO-8859-1, charset in the header), ``/sjis`` (Shift_JIS, ``<meta charset>`` only),
    ``/cp1252`` (windows-1252, declared nowhere). Words to find in :data:`CHARSET_WORDS`; linked from /."""
    latin1 = ("<html><head><title>Latin-1 page</title></head><body><main><h1>Latin-1</h1>"
              "<p>A café in Zürich; a naïve garçon serves crème brûlée.</p></main></body></html>")
    site.route("/latin1", (200, {"Content-Type": "text/html; charset=ISO-8859-1"}, latin1.encode("iso-8859-1")))
    sjis = ('<html><head><meta charset="shift_jis"><title>日本語のページ</title></head><body><main>'
            "<h1>日本語</h1><p>東京は日本の首都です。ひらがなとカタカナと漢字で書きます。</p>"
            "<p>これは日本語のテキストです。文字コードはシフトJISです。</p></main></body></html>")
    site.route("/sjis", (200, {"Content-Type": "text/html"}, sjis.encode("shift_jis")))
    cp1252 = ("<html><head><title>Windows-1252 page</title></head><body><main><h1>Windows page</h1>"
              "<p>The café sells “curly quotes” for €5 each — a bargain, déjà vu.</p>"
              "<p>Élise’s naïve résumé mentions the Café de Flore, the crème fraîche and the piñata.</p>"
              "<p>“Encore”, said the garçon — très bien, à bientôt, façade, coöperate, Noël.</p>"
              "</main></body></html>")
    site.route("/cp1252", (200, {"Content-Type": "text/html"}, cp1252.encode("cp1252")))
    for href in CHARSET_WORDS:
        site.link_from_home(href)


#: malformed: text that must survive parsing / text that must not appear (it is inside a <script>).
MALFORMED_WORDS = ["survivorword", "afterstrayword", "lastword"]
MALFORMED_SCRIPT_TEXT = "scriptonlyword"


def malformed(site: Site) -> None:
    """``/malformed``: unclosed tags, a stray ``</div>``, invalid UTF-8 bytes, a ``<script>`` holding
    ``</p>``; links to /malformed-child. Linked from /."""
    body = (b"<html><head><title>Malformed page</title><body><main><h1>Malformed\n"
            b"<p>First paragraph with survivorword <b>bold <i>italic</b> crossed</i>\n"
            b"</div></div><p>afterstrayword follows a stray closing div\n"
            b"<p>Garbage bytes: \xff\xfe\x80\x81 \xc3\x28 end of garbage\n"
            b"<script>var s = \"</p><p>" + MALFORMED_SCRIPT_TEXT.encode() + b"</p>\"; if (1 < 2) {}</script>\n"
            b"<table><tr><td>cell one<td>cell two</table>\n"
            b"<ul><li>item one<li>item two\n"
            b"<a href=\"/malformed-child\">child link<p>lastword")
    site.route("/malformed", (200, {"Content-Type": HTML}, body))
    site.route("/malformed-child", page("Malformed child", "<p>childword</p>"))
    site.link_from_home("/malformed")


#: members: the cookie that opens /members/.
MEMBERS_COOKIE = ("session", "secret")


def members(site: Site) -> None:
    """``/members/`` and ``/members/page2``: 403 unless the request carries cookie ``session=secret``.
    /members/ is linked from /; ``/login`` sets the cookie (not linked)."""

    def protected(title: str, main: str) -> Handler:
        def handler(request: Request) -> Response:
            if request.cookies.get(MEMBERS_COOKIE[0]) != MEMBERS_COOKIE[1]:
                return 403, {"Content-Type": HTML}, page("Forbidden", "<h1>Forbidden</h1><p>Log in first.</p>")
            return page(title, main)
        return handler

    site.route("/members/", protected("Members",
                                      '<h1>Members</h1><p>memberword</p><a href="/members/page2">page 2</a>'))
    site.route("/members/page2", protected("Members page 2", "<h1>Members 2</h1><p>membertwoword</p>"))
    site.route("/login", (200, {"Set-Cookie": f"{MEMBERS_COOKIE[0]}={MEMBERS_COOKIE[1]}; Path=/; HttpOnly",
                                "Content-Type": HTML}, page("Logged in", "<p>Welcome.</p>")))
    site.link_from_home("/members/", "Members")


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


PDF_BYTES = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
             b"trailer<</Root 1 0 R>>\n%%EOF\n")
PNG_BYTES = _png_1x1()
#: non_html: path → content type.
NON_HTML = {"/file.pdf": "application/pdf", "/image.png": "image/png", "/data.json": "application/json"}


def non_html(site: Site) -> None:
    """``/file.pdf`` (application/pdf), ``/image.png`` (image/png), ``/data.json``; all linked from /."""
    site.route("/file.pdf", (200, {"Content-Type": NON_HTML["/file.pdf"]}, PDF_BYTES))
    site.route("/image.png", (200, {"Content-Type": NON_HTML["/image.png"]}, PNG_BYTES))
    site.route("/data.json", (200, {"Content-Type": NON_HTML["/data.json"]}, b'{"jsonword": [1, 2, 3]}'))
    for href in NON_HTML:
        site.link_from_home(href)


def canonical(site: Site) -> None:
    """``/dup?ref=1`` and ``/dup?ref=2`` declare ``<link rel="canonical" href="/dup">``; ``/dup`` is
    served too (canonical to itself) but not linked. The two ref URLs are linked from /."""
    head = '<link rel="canonical" href="/dup">'
    body = page("Duplicate", "<h1>Duplicate</h1><p>The dupword page has one canonical address.</p>", head=head)
    for target in ("/dup", "/dup?ref=1", "/dup?ref=2"):
        site.route(target, body)
    site.link_from_home("/dup?ref=1")
    site.link_from_home("/dup?ref=2")


class Conditional:
    """The state of the ``conditional`` site: ``version`` (1 or 2) picks the content of /etag and /lastmod."""

    LAST_MODIFIED: ClassVar[dict[int, str]] = {1: "Mon, 01 Jan 2024 00:00:00 GMT", 2: "Tue, 02 Jan 2024 00:00:00 GMT"}

    def __init__(self) -> None:
        self.version = 1
        self.not_modified = 0  # 304s answered

    def etag(self) -> str:
        return f'"v{self.version}"'


def conditional(site: Site) -> Conditional:
    """``/etag`` (``ETag: "v<version>"``, 304 on a matching ``If-None-Match``) and ``/lastmod``
    (``Last-Modified``, 304 when ``If-Modified-Since`` is not older). Returns (and keeps in
    ``site.state["conditional"]``) the :class:`Conditional` whose ``version = 2`` changes both pages.
    The headers a client sent are in ``site.requests_for("/etag")[i].headers``. Both linked from /."""
    state = Conditional()
    site.state["conditional"] = state

    def etag(request: Request) -> Response:
        current = state.etag()
        sent = [tag.strip() for tag in (request.headers.get("If-None-Match") or "").split(",")]
        if current in sent or "*" in sent:
            state.not_modified += 1
            return 304, {"ETag": current}, b""
        return 200, {"ETag": current, "Content-Type": HTML}, page(
            f"ETag v{state.version}", f"<h1>Version {state.version}</h1><p>etagword version{state.version}</p>")

    def lastmod(request: Request) -> Response:
        modified = state.LAST_MODIFIED[state.version]
        since = request.headers.get("If-Modified-Since")
        if since:
            try:
                if email.utils.parsedate_to_datetime(since) >= email.utils.parsedate_to_datetime(modified):
                    state.not_modified += 1
                    return 304, {"Last-Modified": modified}, b""
            except (TypeError, ValueError):
                pass
        return 200, {"Last-Modified": modified, "Content-Type": HTML}, page(
            f"Lastmod v{state.version}", f"<h1>Version {state.version}</h1><p>lastmodword version{state.version}</p>")

    site.route("/etag", etag)
    site.route("/lastmod", lastmod)
    site.link_from_home("/etag")
    site.link_from_home("/lastmod")
    return state


#: Every builder by name (for parametrised tests).
BUILDERS: dict[str, Callable[..., Any]] = {
    "basic": basic, "robots": robots, "sitemap": sitemap, "trap": trap, "redirects": redirects,
    "errors": errors, "slow": slow, "huge": huge, "charsets": charsets, "malformed": malformed,
    "members": members, "non_html": non_html, "canonical": canonical, "conditional": conditional,
}


def everything(site: Site) -> None:
    """All builders on one site except ``trap``, ``slow`` and ``huge`` (which a whole-site crawl would
    take long on)."""
    for name, builder in BUILDERS.items():
        if name not in ("trap", "slow", "huge"):
            builder(site)


__all__ = [
    "BASIC_DEPTHS", "BASIC_NAV", "BASIC_TITLES", "BASIC_WORDS", "BUILDERS", "CHARSET_WORDS", "HUGE_BYTES",
    "MALFORMED_SCRIPT_TEXT", "MALFORMED_WORDS", "MEMBERS_COOKIE", "NON_HTML", "PDF_BYTES", "PNG_BYTES",
    "REDIRECT_CHAIN_LENGTH", "SITEMAP_ORPHANS", "CIHeaders", "Conditional", "Request", "Site",
    "basic", "basic_home_links", "canonical", "charsets", "conditional", "errors", "everything", "huge",
    "links_html", "malformed", "members", "non_html", "page", "path_is", "path_prefix", "redirect",
    "redirects", "robots", "sitemap", "slow", "trap",
]
