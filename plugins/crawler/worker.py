"""CrawlerWorker (one page) and SitemapWorker (one sitemap): fetch politely, save once, admit new links."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from quaero import ChildSpec, DocumentInput, JobCancelled, JobError, JobWorker
from quaero.stores.jsonutil import loads
from quaero.engine.services import Services

from .extract import decode_body, parse_page
from .fetch import Fetched, RedirectError, fetch, retry_after, shared_client
from .options import CrawlOptions
from .robots import RobotsRules, rules_for_status
from .sitemaps import parse_sitemap
from .state import CrawlState
from .urls import UrlFilter, host_of, normalize_url

log = logging.getLogger(__name__)
SOURCE_TYPE = "web"
ROBOTS_TTL = 3600.0
MAX_RETRY_WAIT = 60.0  # longest Retry-After a job waits for in place
BUSY_RETRIES = 3
MAX_SITEMAPS = 50
MAX_STORED_LINKS = 1000

_states: dict[int, CrawlState] = {}
_states_lock = threading.Lock()


def crawl_state(services: Services) -> CrawlState:
    """The CrawlState of a process's services (one per database)."""
    with _states_lock:
        state = _states.get(id(services))
        if state is None:
            state = _states[id(services)] = CrawlState(services)
        return state


class RobotsCache:
    """robots.txt per origin, fetched once per process and kept for an hour."""

    def __init__(self) -> None:
        self._rules: dict[str, tuple[RobotsRules, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def rules(self, client: httpx.Client, url: str, user_agent: str, timeout: float) -> RobotsRules:
        origin = url.split("/", 3)[:3]
        key = "/".join(origin)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._rules.get(key)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            try:
                response = client.get(key + "/robots.txt", headers={"User-Agent": user_agent}, timeout=timeout,
                                      follow_redirects=True)
                rules = rules_for_status(response.status_code, response.text[:500_000])
            except httpx.HTTPError:
                rules = rules_for_status(None, None)
            self._rules[key] = (rules, time.monotonic() + ROBOTS_TTL)
            return rules


ROBOTS = RobotsCache()


@dataclass
class Crawl:
    """Everything one job needs about its crawl, built once per step and process."""

    options: CrawlOptions
    filter: UrlFilter
    tags: list[str]
    credentials: Any


_crawls: dict[str, Crawl] = {}
_crawls_lock = threading.Lock()


def crawl_of(ctx: Any) -> Crawl:
    """The crawl settings of a job's step (cached)."""
    step = ctx.step_job
    with _crawls_lock:
        crawl = _crawls.get(step.id)
    if crawl is not None:
        return crawl
    options: CrawlOptions = ctx.options
    allowed = step.data.get("allowed_domains") or []
    credentials = None
    auth_id = step.data.get("auth_id")
    if auth_id:
        credentials = ctx.services.credentials.get(auth_id)
    crawl = Crawl(options, UrlFilter(allowed, options.include_patterns, options.exclude_patterns),
                  list(step.data.get("tags") or []), credentials)
    with _crawls_lock:
        if len(_crawls) > 100:
            _crawls.clear()
        _crawls[step.id] = crawl
    return crawl


def request_headers(crawl: Crawl, url: str) -> dict[str, str]:
    """User agent, the step's headers, and stored credentials for the URL's site."""
    headers = {"User-Agent": crawl.options.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
               **crawl.options.headers}
    creds = crawl.credentials
    if creds is not None and (not creds.base_url or host_of(url) == host_of(creds.base_url)):
        headers.update(creds.headers)
        if creds.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in creds.cookies.items())
    return headers


class _Base(JobWorker):
    max_retries = 2
    min_backoff_ms = 1000
    max_backoff_ms = 30_000

    @contextlib.contextmanager
    def polite(self, ctx: Any, crawl: Crawl, url: str, rules: RobotsRules | None) -> Iterator[None]:
        """Hold a slot of the crawl and of the host, and wait for the host's turn."""
        state = crawl_state(ctx.services)
        options = crawl.options
        host = host_of(url)
        wanted = [(f"host:{host}", options.per_host_concurrency)]
        if options.concurrency:
            wanted.insert(0, (f"crawl:{ctx.step_job.id}", options.concurrency))
        held = state.acquire_slots(wanted, ctx.sleep)
        try:
            delay = options.per_host_delay_ms / 1000
            if rules is not None:
                delay = max(delay, min(rules.crawl_delay(options.user_agent) or 0.0, 60.0))
            if delay > 0:
                turn = state.reserve_host_turn(host, delay)
                if turn > time.time():
                    ctx.sleep(turn - time.time())
            yield
        finally:
            state.release_slots(held)

    def get(self, ctx: Any, crawl: Crawl, url: str, *, any_content: bool = False) -> Fetched:
        """Fetch politely, waiting out 429/503 answers as ``Retry-After`` asks (a few times)."""
        options = crawl.options
        client = shared_client()
        rules = ROBOTS.rules(client, url, options.user_agent, options.timeout) if options.respect_robots_txt else None
        for attempt in range(BUSY_RETRIES + 1):
            ctx.check_cancelled()
            with self.polite(ctx, crawl, url, rules):
                response = fetch(client, url, headers=request_headers(crawl, url), timeout=options.timeout,
                                 max_bytes=options.max_body_bytes, max_redirects=options.max_redirects,
                                 check_hop=lambda hop: self.refuse(crawl, hop), any_content=any_content)
            if response.status not in (429, 503) or attempt == BUSY_RETRIES:
                return response
            wait = retry_after(response.headers, default=2.0 ** attempt)
            if wait > MAX_RETRY_WAIT:
                raise JobError(f"{url} answered {response.status} asking to wait {wait:.0f} s")
            ctx.log("info", f"{url} answered {response.status}; retrying in {wait:.1f} s")
            ctx.sleep(wait)
        return response

    def refuse(self, crawl: Crawl, url: str) -> str | None:
        """Why the crawl must not fetch ``url`` (filters, robots.txt), or ``None``."""
        reason = crawl.filter.check(url)
        if reason is not None:
            return reason
        if crawl.options.respect_robots_txt:
            rules = ROBOTS.rules(shared_client(), url, crawl.options.user_agent, crawl.options.timeout)
            if not rules.allowed(url, crawl.options.user_agent):
                return "robots"
        return None


class CrawlerWorker(_Base):
    """Fetches one page, saves it as a document once, and admits the links it finds."""

    worker_type = "crawler_url"

    def execute(self, ctx: Any, job: Any) -> None:
        try:
            self.crawl_page(ctx, job)
        except Exception as exc:
            final = job.attempts > self.max_retries or not getattr(exc, "retryable", True)
            if final and not isinstance(exc, JobCancelled):
                # The last attempt: the URL gives back its share of the page budget.
                crawl_state(ctx.services).finish(ctx.step_job, job.config["url"], "failed", type(exc).__name__)
            raise

    def crawl_page(self, ctx: Any, job: Any) -> None:
        """Fetch, save and follow one URL."""
        url, depth = job.config["url"], job.config.get("depth", job.depth)
        crawl = crawl_of(ctx)
        state = crawl_state(ctx.services)
        step = ctx.step_job
        reason = self.refuse(crawl, url)
        if reason is not None:
            ctx.log("info", f"skipped {url}: {reason}")
            state.finish(step, url, "skipped", reason)
            return
        ctx.progress("fetching", current_item=url)
        previous = ctx.services.documents.get_by_ref(SOURCE_TYPE, url) if crawl.options.refresh else None
        try:
            if previous is None:
                response = self.get(ctx, crawl, url)
            else:
                response = self._conditional(ctx, crawl, url, previous)
        except RedirectError as exc:
            ctx.log("warn", f"skipped {url}: {exc}")
            state.finish(step, url, "skipped", "redirect_loop")
            return
        except httpx.HTTPError as exc:
            raise JobError(f"{url}: {type(exc).__name__}: {exc}") from None
        self.handle(ctx, crawl, state, step, url, depth, response, previous)

    def _conditional(self, ctx: Any, crawl: Crawl, url: str, previous: Any) -> Fetched:
        meta = loads(previous.metadata)
        extra = {}
        if meta.get("etag"):
            extra["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            extra["If-Modified-Since"] = meta["last_modified"]
        options = crawl.options.model_copy(update={"headers": {**crawl.options.headers, **extra}})
        return self.get(ctx, Crawl(options, crawl.filter, crawl.tags, crawl.credentials), url)

    def handle(self, ctx: Any, crawl: Crawl, state: CrawlState, step: Any, url: str, depth: int,
               response: Fetched, previous: Any) -> None:
        if response.skipped:
            ctx.log("info", f"skipped {url}: redirected to {response.url} ({response.skipped})")
            state.finish(step, url, "skipped", response.skipped)
            return
        if response.status == 304 and previous is not None:
            if state.claim_page(step, url, url):
                ctx.log("debug", f"unchanged: {url}")
            links = loads(previous.metadata).get("links", [])
            self.admit(ctx, crawl, state, step, depth, links, nofollow=False)
            return
        if response.status >= 400 or response.status < 200:
            ctx.log("warn", f"skipped {url}: HTTP {response.status}")
            state.finish(step, url, "skipped", f"http_{response.status}")
            return
        if not response.is_html:
            kind = response.headers.get("content-type", "unknown").split(";")[0]
            ctx.log("info", f"skipped {url}: not HTML ({kind})")
            state.finish(step, url, "skipped", "not_html")
            return
        text, encoding = decode_body(response.body, response.headers.get("content-type"))
        final = response.url
        page = parse_page(text, final, crawl.options.converter)
        if response.truncated:
            ctx.log("warn", f"{url}: body cut off at {crawl.options.max_body_bytes} bytes")
        self.admit(ctx, crawl, state, step, depth, page.links, nofollow=page.nofollow)
        if page.noindex:
            ctx.log("info", f"skipped {url}: the page asks not to be indexed")
            state.finish(step, url, "skipped", "noindex")
            return
        key = final
        if page.canonical and page.canonical != final and crawl.filter.check(page.canonical) is None:
            key = page.canonical
        metadata = {
            "url": key, "fetched_url": url, "final_url": final, "status": response.status,
            "content_type": response.headers.get("content-type", ""), "encoding": encoding,
            "description": page.description, "canonical": page.canonical, "language": page.language,
            "etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified"),
            "depth": depth, "truncated": response.truncated, "links": page.links[:MAX_STORED_LINKS],
            "fetched_at": time.time(),
        }
        document = DocumentInput(source_type=SOURCE_TYPE, source_ref=key, title=page.title or key,
                                 markdown=page.markdown, html=text if crawl.options.keep_html else None,
                                 metadata=metadata, tags=crawl.tags)
        # The page's place in the budget and the document itself: one transaction, all or nothing.
        with ctx.services.database.write():
            claimed = state.claim_page(step, url, key)
            result = ctx.save_document(document) if claimed else None
        if result is None:
            ctx.log("info", f"skipped {url}: a duplicate of {key}")
            state.finish(step, url, "skipped", "duplicate")
            return
        ctx.log("debug", f"saved {key} ({len(page.markdown)} characters, "
                         f"{'new' if result.created else 'updated' if result.changed else 'unchanged'})",
                item_id=key, depth=depth, result_id=str(result.id), title=page.title)

    def admit(self, ctx: Any, crawl: Crawl, state: CrawlState, step: Any, depth: int, links: list[str], *,
              nofollow: bool) -> None:
        """Admit a page's links one level deeper, if the crawl follows links from this depth."""
        options = crawl.options
        if not options.follow_links or nofollow or depth >= options.max_depth:
            return
        wanted = [(link, depth + 1) for link in links if crawl.filter.check(link) is None]
        if wanted:
            state.admit(step, wanted, discovered_by=ctx.job.id)


class SitemapWorker(_Base):
    """Reads one sitemap (or finds them via robots.txt) and admits its pages at depth 0."""

    worker_type = "crawler_sitemap"

    def execute(self, ctx: Any, job: Any) -> None:
        crawl = crawl_of(ctx)
        state = crawl_state(ctx.services)
        step = ctx.step_job
        urls = [job.config["url"]] if job.config.get("url") else self.discover(crawl, job.config["origin"])
        for sitemap_url in urls:
            try:
                response = self.get(ctx, crawl, sitemap_url, any_content=True)
            except (RedirectError, httpx.HTTPError) as exc:
                ctx.log("warn", f"sitemap {sitemap_url}: {exc}")
                continue
            if response.status != 200:
                ctx.log("info", f"no sitemap at {sitemap_url} (HTTP {response.status})")
                continue
            pages, children = parse_sitemap(response.body)
            allowed = [(page, 0) for page in (normalize_url(p) for p in pages) if page and crawl.filter.check(page) is None]
            ctx.log("info", f"sitemap {sitemap_url}: {len(pages)} pages ({len(allowed)} allowed), "
                            f"{len(children)} nested sitemaps")
            if allowed:
                state.admit(step, allowed, discovered_by=job.id)
            nested = job.config.get("nested", 0)
            # Nested sitemaps are not links: the crawl's max_depth does not apply to them.
            specs = [ChildSpec("crawler_sitemap", f"sitemap {child}", {"url": child, "nested": nested + 1},
                               item_ref=child) for child in children[: max(0, MAX_SITEMAPS - nested)]]
            if specs:
                ctx.services.spawner.spawn_children(step, specs, depth=job.depth, discovered_by=job.id)

    def discover(self, crawl: Crawl, origin: str) -> list[str]:
        """The sitemaps robots.txt lists, else /sitemap.xml."""
        rules = ROBOTS.rules(shared_client(), origin + "/", crawl.options.user_agent, crawl.options.timeout)
        return list(rules.sitemaps) or [origin + "/sitemap.xml"]
