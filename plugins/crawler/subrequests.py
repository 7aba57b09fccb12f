"""The requests a rendered page makes (scripts, stylesheets, XHR and ``fetch()``), fetched under the crawl's rules.

The browser fetches nothing itself (:mod:`.render`): each request it intercepts comes here, in a thread of
the renderer, and :class:`PageRequests` fetches it the way the crawler fetches pages:

- through the core's client, so the outbound policy checks every address (a private one is refused unless
  allowed) and every redirect hop, which is followed here;
- politely: a request counts against its host's ``per_host_concurrency`` and ``per_host_delay_ms`` like a
  page (a crawl-delay of robots.txt included), and one to a host of the crawl that robots.txt disallows
  is refused;
- with credentials only where they belong: the stored ``auth_id`` credentials for the URLs they apply
  to, the step's ``headers`` only for the page's own origin, the page's cookies as the browser scoped them;
- bounded: at most :data:`MAX_PAGE_REQUESTS` per page, each body cut at ``max_body_bytes``.

Scripts and stylesheets that may be cached (a 200 without cookies, credentials or ``no-store``) are kept
in a small :class:`ResourceCache` per process, so that an app's bundle is fetched once for a crawl's
pages, not once per page.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from quaero.api import JobContext, OutboundRefused

from .fetch import CREDENTIAL_HEADERS, RedirectError, fetch, origin_of
from .options import CrawlOptions
from .render import Refused, SubRequest, SubResponse
from .robots import RobotsRules
from .urls import normalize_url

#: ``polite(url, rules)``: hold the host's slot and wait for its turn while a request is sent.
Polite = Callable[[str, RobotsRules | None], AbstractContextManager[None]]

#: Requests one page may make; a page that makes more is cut off (its further requests fail).
MAX_PAGE_REQUESTS = 1000
#: Request headers of the browser's that are not passed on: the connection's own, and the ones Quaero sets.
DROPPED_REQUEST_HEADERS = frozenset({
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "accept-encoding",
    "proxy-authorization", "proxy-connection", "user-agent",
})
#: Response headers not given to the browser: the body it gets is decoded and whole.
DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection",
                                      "keep-alive"})
CACHED_TYPES = frozenset({"script", "stylesheet"})


class ResourceCache:
    """Scripts and stylesheets by URL, for ``ttl`` seconds, at most ``max_bytes`` in all (least recently
    used first out); thread-safe."""

    def __init__(self, *, max_bytes: int = 32_000_000, max_item: int = 2_000_000, ttl: float = 600.0) -> None:
        self.max_bytes, self.max_item, self.ttl = max_bytes, max_item, ttl
        self._items: OrderedDict[str, tuple[float, SubResponse]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, url: str) -> SubResponse | None:
        with self._lock:
            item = self._items.get(url)
            if item is None:
                return None
            if item[0] < time.monotonic():
                self._drop(url)
                return None
            self._items.move_to_end(url)
            self.hits += 1
            return item[1]

    def put(self, url: str, response: SubResponse) -> None:
        if len(response.body) > self.max_item:
            return
        with self._lock:
            if url in self._items:
                self._drop(url)
            self._items[url] = (time.monotonic() + self.ttl, response)
            self._size += len(response.body)
            while self._size > self.max_bytes:
                self._drop(next(iter(self._items)))

    def _drop(self, url: str) -> None:
        _, response = self._items.pop(url)
        self._size -= len(response.body)


def cacheable(request: SubRequest, response: SubResponse, *, credentialed: bool) -> bool:
    """Whether a response may serve the same request of other pages (and other crawls) from the cache."""
    if request.method != "GET" or request.resource_type not in CACHED_TYPES or response.status != 200:
        return False
    if credentialed or "cookie" in request.headers or "set-cookie" in response.headers:
        return False
    control = response.headers.get("cache-control", "").lower()
    return not any(word in control for word in ("no-store", "private", "no-cache"))


class PageRequests:
    """The ``fetch`` of one rendered page (see the module's docstring); called from the renderer's threads."""

    def __init__(self, ctx: JobContext, options: CrawlOptions, page_url: str, *, headers: dict[str, str],
                 credentials: Callable[[str], dict[str, str]], rules: Callable[[str], RobotsRules | None],
                 polite: Polite, cache: ResourceCache) -> None:
        self.ctx, self.options = ctx, options
        self.origin = origin_of(page_url)
        self.rules = rules  # robots.txt of a host of the crawl (None for other hosts, or robots ignored)
        self.headers = headers  # the User-Agent and the step's headers (for the page's origin only)
        self.credentials = credentials
        self.polite = polite
        self.cache = cache
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, request: SubRequest) -> SubResponse:
        url = normalize_url(request.url)
        if url is None:
            raise Refused(f"{request.url[:200]}: not an http(s) URL")
        with self._lock:
            self.count += 1
            if self.count > MAX_PAGE_REQUESTS:
                raise Refused(f"{url}: the page made more than {MAX_PAGE_REQUESTS} requests")
        cached = self.cache.get(url) if request.method == "GET" and request.resource_type in CACHED_TYPES else None
        if cached is not None:
            return cached
        ctx, options = self.ctx, self.options
        rules = self.rules(url)
        if rules is not None and not rules.allowed(url, options.user_agent):
            raise Refused(f"{url}: robots.txt disallows it")
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() not in DROPPED_REQUEST_HEADERS}
        own = origin_of(url) == self.origin
        for name, value in self.headers.items():  # the step's headers are for its site: the page's origin
            if own or name.lower() == "user-agent":
                headers[name] = value
        stored = self.credentials(url)
        timeout = min(options.timeout, options.render_timeout)
        try:
            with self.polite(url, rules):
                got = fetch(ctx.http, url, headers=headers, credentials=self.credentials,
                            timeout=timeout, max_bytes=options.max_body_bytes, max_redirects=options.max_redirects,
                            check_hop=lambda hop: None, any_content=True, any_status=True,
                            method=request.method, content=request.body)
        except OutboundRefused as exc:
            raise Refused(f"{url}: {exc}") from None
        except (RedirectError, httpx.HTTPError) as exc:
            raise OSError(f"{url}: {type(exc).__name__}: {exc}") from None
        if got.skipped:  # a hop to a refused address
            raise Refused(f"{url}: redirected to {got.url}: {got.detail or got.skipped}")
        response_headers: dict[str, str] = {}
        for name, value in got.headers.multi_items():
            name = name.lower()
            if name not in DROPPED_RESPONSE_HEADERS:
                response_headers[name] = f"{response_headers[name]}\n{value}" if name in response_headers else value
        response = SubResponse(got.status, response_headers, got.body)
        if cacheable(request, response, credentialed=bool(stored) or (own and any(
                name.lower() in CREDENTIAL_HEADERS for name in self.headers))):
            self.cache.put(url, response)
        return response
