"""What the crawler keeps in one process: the crawl books, robots.txt rules, each crawl's settings (pages
are fetched with the core's client, ``ctx.http``), and the browser that renders pages when a crawl asks
(started with the first of them). The ``startup`` hook makes one :class:`CrawlerProcess`; contexts hand it
back as ``ctx.state``."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import Field

from quaero.api import OutboundRefused, PluginDatabase, PluginSettings

from .fetch import RedirectError, fetch
from .options import CrawlOptions
from .render import Renderer
from .robots import MAX_ROBOTS_CHARS, RobotsRules, rules_for_status
from .state import CrawlState
from .subrequests import ResourceCache
from .urls import UrlFilter, host_of, normalize_url

ROBOTS_TTL = 3600.0
#: Redirects followed to reach a robots.txt (RFC 9309 §2.3.1.2: at least five).
MAX_ROBOTS_REDIRECTS = 5
#: Seconds the rules of a site whose robots.txt could not be fetched are kept before asking again.
UNREACHABLE_TTL = 1.0
CACHED_CRAWLS = 100


class RobotsCache:
    """robots.txt per origin (and crawl scope), fetched once per process and kept for an hour.

    The file is fetched through the core's client (the outbound policy checks each address), following at
    most :data:`MAX_ROBOTS_REDIRECTS` redirects and only within the crawl's allowed domains, and at most
    :data:`~.robots.MAX_ROBOTS_CHARS` bytes of it are read (RFC 9309 §2.3.1.2 and §2.5). A redirect the
    crawl may not follow, or too many, leave the file unavailable (everything allowed, as for a 4xx).
    """

    def __init__(self) -> None:
        self._rules: dict[tuple[str, tuple[str, ...]], tuple[RobotsRules, float]] = {}
        self._locks: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._lock = threading.Lock()

    def rules(self, client: httpx.Client, crawl: Crawl, url: str) -> RobotsRules:
        """The rules of ``url``'s origin for ``crawl`` (fetched now when not known or expired)."""
        origin = "/".join(url.split("/", 3)[:3])
        key = (origin, crawl.filter.domains)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._rules.get(key)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            rules = self._fetch(client, crawl, origin + "/robots.txt")
            # An unreachable site is asked again soon: the next job (or its retry) may find it back.
            ttl = UNREACHABLE_TTL if rules.unreachable else ROBOTS_TTL
            self._rules[key] = (rules, time.monotonic() + ttl)
            return rules

    @staticmethod
    def _fetch(client: httpx.Client, crawl: Crawl, robots_url: str) -> RobotsRules:
        options = crawl.options
        try:
            fetched = fetch(client, robots_url, headers={"User-Agent": options.user_agent}, timeout=options.timeout,
                            max_bytes=MAX_ROBOTS_CHARS, max_redirects=MAX_ROBOTS_REDIRECTS, any_content=True,
                            check_hop=lambda hop: None if crawl.filter.in_scope(hop) else "domain")
        except OutboundRefused as exc:
            return RobotsRules.disallow_all(refused=str(exc))
        except RedirectError:
            return RobotsRules.allow_all()
        except httpx.HTTPError as exc:
            return rules_for_status(None, None, error=f"{type(exc).__name__}: {exc}")
        if fetched.skipped:  # redirected out of the crawl's scope, or to a refused address
            return RobotsRules.allow_all()
        return rules_for_status(fetched.status, fetched.body.decode("utf-8", "replace"))


@dataclass(frozen=True)
class Crawl:
    """Everything one job needs about its crawl, built once per step and process."""

    options: CrawlOptions
    filter: UrlFilter
    #: The start URLs, normalised: a refused address among them fails its job rather than being skipped.
    starts: frozenset[str] = frozenset()


def start_urls(options: CrawlOptions) -> list[str]:
    """The crawl's start URLs, normalised (the ones that cannot be are left out)."""
    return [url for url in (normalize_url(u) for u in options.start_urls) if url]


def allowed_domains(options: CrawlOptions) -> list[str]:
    """The hosts a crawl may fetch from: the option, or the start URLs' hosts."""
    return options.allowed_domains or sorted({host_of(url) for url in start_urls(options)})


class CrawlerSettings(PluginSettings):
    """``[plugins.crawler]`` in ``quaero.toml`` (or ``QUAERO_PLUGIN_CRAWLER_<KEY>``): the browser that renders
    pages for crawls with ``render: auto`` or ``always``."""

    browser_path: str | None = Field(None, description=(
        "Chromium's executable (a path or a name on PATH); default: chromium, chromium-browser or google-chrome "
        "found on PATH. Nothing is downloaded."))
    browser_contexts: int = Field(4, ge=1, le=64, description=(
        "Pages each worker process renders at once (one browser context each, reused)."))
    browser_recycle_pages: int = Field(10, ge=1, le=100_000, description=(
        "A browser context is replaced by a fresh one after rendering this many pages (a reused one grows by "
        "about 2 MB a page and renders slower)."))


class CrawlerProcess:
    """The crawler's state in one process."""

    def __init__(self, database: PluginDatabase, settings: CrawlerSettings | None = None) -> None:
        self.books = CrawlState(database)
        self.robots = RobotsCache()
        self.settings = settings or CrawlerSettings()
        self.resources = ResourceCache()
        self._renderer: Renderer | None = None
        self._crawls: OrderedDict[str, Crawl] = OrderedDict()
        self._lock = threading.Lock()

    def renderer(self) -> Renderer:
        """The process's browser (made on first use; Chromium starts with the first page it renders)."""
        with self._lock:
            if self._renderer is None:
                settings = self.settings
                self._renderer = Renderer(browser_path=settings.browser_path, contexts=settings.browser_contexts,
                                          recycle_pages=settings.browser_recycle_pages)
            return self._renderer

    def close(self) -> None:
        """Close the browser, if one was started (the core calls this when the process stops)."""
        with self._lock:
            renderer, self._renderer = self._renderer, None
        if renderer is not None:
            renderer.close()

    def crawl(self, step_id: str, options: CrawlOptions) -> Crawl:
        """The crawl settings of a step (cached: every page of the crawl asks)."""
        with self._lock:
            crawl = self._crawls.get(step_id)
            if crawl is not None:
                return crawl
        crawl = Crawl(options, UrlFilter(allowed_domains(options), options.include_patterns, options.exclude_patterns),
                      frozenset(start_urls(options)))
        with self._lock:
            self._crawls[step_id] = crawl
            while len(self._crawls) > CACHED_CRAWLS:
                self._crawls.popitem(last=False)
        return crawl


def process_of(ctx: Any) -> CrawlerProcess:
    """The crawler's state from a context."""
    state = ctx.state
    if not isinstance(state, CrawlerProcess):  # the plugin's startup did not run in this process
        raise RuntimeError("the crawler plugin was not started in this process")
    return state
