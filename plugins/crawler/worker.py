"""CrawlerWorker (one page) and SitemapWorker (one sitemap): fetch politely, save once, admit new links."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

import httpx

from quaero.api import (
    ConfigError,
    Document,
    DocumentInput,
    JobContext,
    JobError,
    JobView,
    JobWorker,
    OutboundRefused,
)
from quaero.api.outbound import retry_after
from quaero.api.settings import expand_references

from .extract import decode_body, parse_page
from .fetch import BLOCKED, Fetched, RedirectError, fetch
from .options import CrawlOptions
from .process import Crawl, CrawlerProcess, process_of
from .render import BrowserMissing, RenderError, RenderRequest
from .robots import RobotsRules
from .sitemaps import MAX_DECOMPRESSED_BYTES, parse_sitemap
from .state import MAX_SITEMAP_NESTING, CrawlState
from .subrequests import PageRequests
from .urls import host_of, normalize_url

log = logging.getLogger(__name__)
SOURCE_TYPE = "web"
MAX_RETRY_WAIT = 60.0  # longest Retry-After a job waits for in place
BUSY_RETRIES = 3
MIN_WAIT_SHOWN = 0.25  # seconds: a shorter wait for a host's turn is not worth a write to show it
MAX_STORED_LINKS = 1000
#: Refused requests of a rendered page named in its log, one line each (the rest are counted).
MAX_REFUSALS_LOGGED = 5
#: The most a sitemap body may be (sitemaps.org: 50 MB uncompressed; a gzip one inflates to as much).
MAX_SITEMAP_BYTES = MAX_DECOMPRESSED_BYTES


def step_headers(options: CrawlOptions) -> dict[str, str]:
    """The user agent and the step's own ``headers``, their ``${ENV_VAR}`` references read."""
    # ${ENV_VAR} references are read here, in the worker: the definition and the payload keep them unread.
    try:
        extra = {name: expand_references(value) for name, value in options.headers.items()}
    except ConfigError as exc:  # not set: no retry will set it
        raise JobError(f"headers: {exc.message}", retryable=False) from None
    return {"User-Agent": options.user_agent, **extra}


def request_headers(options: CrawlOptions) -> dict[str, str]:
    """The headers of a page's request: what HTML it accepts, :func:`step_headers` (stored credentials are
    added per URL: :func:`credentials_of`)."""
    return {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5", **step_headers(options)}


def credentials_of(ctx: JobContext, options: CrawlOptions) -> Callable[[str], dict[str, str]]:
    """The headers of the stored credentials that apply to a URL (none for another site)."""

    def headers_for(url: str) -> dict[str, str]:
        credentials = ctx.credentials_for(url, auth_id=options.auth_id)
        return credentials.request_headers() if credentials is not None else {}

    return headers_for


def crawl_of(ctx: JobContext) -> Crawl:
    """The crawl settings of a job's step (cached by the process)."""
    return process_of(ctx).crawl(ctx.step.id, ctx.options)


class _Base(JobWorker):
    max_retries = 2
    min_backoff_ms = 1000
    max_backoff_ms = 30_000

    @contextlib.contextmanager
    def polite(self, ctx: JobContext, crawl: Crawl, url: str, rules: RobotsRules | None, *,
               whole_crawl: bool = True, show: bool = True) -> Iterator[None]:
        """Hold a slot of the crawl (``whole_crawl``) and of the host, and wait for the host's turn; ``show``
        the job as waiting meanwhile (a rendered page's requests do not: the job renders)."""
        state = process_of(ctx).books
        options = crawl.options
        host = host_of(url)
        wanted = [(f"host:{host}", options.per_host_concurrency)]
        if options.concurrency and whole_crawl:
            wanted.insert(0, (f"crawl:{ctx.step.id}", options.concurrency))
        # Waiting for a slot or for the host's turn shows the job as waiting (a write only when it waits).
        waiting = (lambda: ctx.waiting(f"a per-host slot for {host}")) if show else None
        held = state.acquire_slots(wanted, ctx.sleep, on_wait=waiting)
        try:
            delay = options.per_host_delay_ms / 1000
            if rules is not None:
                delay = max(delay, min(rules.crawl_delay(options.user_agent) or 0.0, 60.0))
            if delay > 0:
                turn = state.reserve_host_turn(host, delay)
                if show and turn - time.time() > MIN_WAIT_SHOWN:
                    ctx.waiting(f"its turn at {host} (a delay of {delay:g} s between requests)")
                if turn > time.time():
                    ctx.sleep(turn - time.time())
            if show:
                ctx.waiting(None)
            yield
        finally:
            state.release_slots(held)

    def get(self, ctx: JobContext, crawl: Crawl, url: str, *, sitemap: bool = False,
            extra_headers: dict[str, str] | None = None) -> Fetched:
        """Fetch politely, waiting out 429/503 answers as ``Retry-After`` asks (a few times).

        A ``sitemap`` is read whatever its type, up to :data:`MAX_SITEMAP_BYTES`, and its redirects keep to
        the crawl's allowed domains (the page patterns aside).
        """
        options = crawl.options
        process = process_of(ctx)
        client = ctx.http
        rules = process.robots.rules(client, crawl, url) if options.respect_robots_txt else None
        headers = {**request_headers(options), **(extra_headers or {})}
        for attempt in range(BUSY_RETRIES + 1):
            ctx.check_cancelled()
            with self.polite(ctx, crawl, url, rules):
                response = fetch(client, url, headers=headers, credentials=credentials_of(ctx, options),
                                 timeout=options.timeout,
                                 max_bytes=MAX_SITEMAP_BYTES if sitemap else options.max_body_bytes,
                                 max_redirects=options.max_redirects,
                                 check_hop=lambda hop: self.refuse(process, client, crawl, hop, pages=not sitemap),
                                 any_content=sitemap)
            if response.status not in (429, 503) or attempt == BUSY_RETRIES:
                return response
            asked = retry_after(response.headers)
            wait = 2.0 ** attempt if asked is None else asked
            if wait > MAX_RETRY_WAIT:
                raise JobError(f"{url} answered {response.status} asking to wait {wait:.0f} s")
            ctx.log("info", f"{url} answered {response.status}; retrying in {wait:.1f} s")
            ctx.sleep(wait)
        return response

    def refuse(self, process: CrawlerProcess, client: httpx.Client, crawl: Crawl, url: str, *,
               pages: bool = True) -> str | None:
        """Why the crawl must not fetch ``url`` (filters, robots.txt, a refused address), or ``None``.

        ``pages=False`` (sitemaps) checks the allowed domains but not the page patterns.
        """
        if pages:
            reason = crawl.filter.check(url)
            if reason is not None:
                return reason
        elif not crawl.filter.in_scope(url):
            return "domain"
        if crawl.options.respect_robots_txt:
            rules = process.robots.rules(client, crawl, url)
            if rules.refused:
                return BLOCKED
            if not rules.allowed(url, crawl.options.user_agent):
                return "robots_unreachable" if rules.unreachable else "robots"
        return None

    def blocked(self, ctx: JobContext, crawl: Crawl, url: str, message: str) -> None:
        """The outbound policy refused ``url``'s address: a start URL fails its job with the policy's
        message (nothing could be crawled), any other page is skipped as ``blocked_address``."""
        state = process_of(ctx).books
        if url in crawl.starts:
            state.finish(ctx, url, "failed", BLOCKED)
            raise JobError(f"{url}: {message}", retryable=False)
        ctx.log("warn", f"skipped {url}: {message}")
        state.finish(ctx, url, "skipped", BLOCKED)


def _as_input(document: Document) -> DocumentInput:
    """A stored page as the input that would save it exactly as it is."""
    return DocumentInput(source_type=document.source_type, source_ref=document.source_ref, title=document.title,
                         markdown=document.markdown or "", html=document.html, metadata=document.metadata,
                         tags=list(document.tags), keywords=list(document.keywords), summary=document.summary)


class CrawlerWorker(_Base):
    """Fetches one page, saves it as a document once, and admits the links it finds."""

    worker_type = "crawler_url"

    def execute(self, ctx: JobContext, job: JobView) -> None:
        self.crawl_page(ctx, job)

    def after_failure(self, ctx: JobContext, job: JobView, error: BaseException) -> None:
        # Failed for good (its last retry, or past the time limit): the URL gives back its share of the
        # page budget, and a deferred URL takes it.
        process_of(ctx).books.finish(ctx, job.config["url"], "failed", type(error).__name__)

    def before_rerun(self, ctx: JobContext, job: JobView) -> None:
        # Run again by request: the URL takes back the place after_failure gave up, so that the job may
        # fetch and save it (it counts against max_pages again; a deferred URL that took its place stays).
        process_of(ctx).books.reopen(ctx, job.config["url"])

    def crawl_page(self, ctx: JobContext, job: JobView) -> None:
        """Fetch, save and follow one URL."""
        url, depth = job.config["url"], job.config.get("depth", job.depth)
        crawl = crawl_of(ctx)
        process = process_of(ctx)
        state = process.books
        reason = self.refuse(process, ctx.http, crawl, url)
        if reason == BLOCKED:
            self.blocked(ctx, crawl, url, process.robots.rules(ctx.http, crawl, url).refused or BLOCKED)
            return
        if reason == "robots_unreachable":
            # Not a site's "no": it could not be reached at all. The job fails, saying why (and a crawl
            # whose start pages all fail is failed), instead of passing as a page the site disallowed.
            rules = process.robots.rules(ctx.http, crawl, url)
            raise JobError(f"{url}: the site could not be reached: its robots.txt gave {rules.unreachable} "
                           f"(RFC 9309: nothing may be fetched from it until robots.txt can be)")
        if reason is not None:
            ctx.log("info", f"skipped {url}: {reason}")
            state.finish(ctx, url, "skipped", reason)
            return
        ctx.progress("fetching", current_item=url)
        previous = ctx.documents.find(SOURCE_TYPE, url) if crawl.options.refresh else None
        try:
            if previous is None:
                response = self.get(ctx, crawl, url)
            else:
                response = self._conditional(ctx, crawl, url, previous)
        except RedirectError as exc:
            ctx.log("warn", f"skipped {url}: {exc}")
            state.finish(ctx, url, "skipped", "redirect_loop")
            return
        except OutboundRefused as exc:
            self.blocked(ctx, crawl, url, str(exc))
            return
        except httpx.HTTPError as exc:
            raise JobError(f"{url}: {type(exc).__name__}: {exc}") from None
        self.handle(ctx, crawl, state, url, depth, response, previous)

    def _conditional(self, ctx: JobContext, crawl: Crawl, url: str, previous: Document) -> Fetched:
        meta = previous.metadata
        extra = {}
        if meta.get("etag"):
            extra["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            extra["If-Modified-Since"] = meta["last_modified"]
        return self.get(ctx, crawl, url, extra_headers=extra)

    def handle(self, ctx: JobContext, crawl: Crawl, state: CrawlState, url: str, depth: int,
               response: Fetched, previous: Document | None) -> None:
        step_id = ctx.step.id
        if response.skipped:
            detail = f": {response.detail}" if response.detail else ""
            ctx.log("info", f"skipped {url}: redirected to {response.url} ({response.skipped}){detail}")
            state.finish(ctx, url, "skipped", response.skipped)
            return
        if response.status == 304 and previous is not None:
            # Not modified: the stored page is still the page. Saving it as it is makes it this crawl's (one of
            # its results, as it is one of its pages saved) and writes nothing else.
            with ctx.db.transaction():
                result = ctx.save_document(_as_input(previous)) if state.claim_page(step_id, url, url) else None
            if result is not None:
                ctx.set_outcome("unchanged")
                ctx.log("info", f"unchanged {url} (HTTP 304)", item_id=url, depth=depth, result_id=str(result.id))
            else:
                state.finish(ctx, url, "skipped", "duplicate")
            links = previous.metadata.get("links", [])
            self.admit(ctx, crawl, state, depth, links, nofollow=False)
            return
        if response.status >= 400 or response.status < 200:
            ctx.log("warn", f"skipped {url}: HTTP {response.status}")
            state.finish(ctx, url, "skipped", f"http_{response.status}")
            return
        if not response.is_html:
            kind = response.headers.get("content-type", "unknown").split(";")[0]
            ctx.log("info", f"skipped {url}: not HTML ({kind})")
            state.finish(ctx, url, "skipped", "not_html")
            return
        text, encoding = decode_body(response.body, response.headers.get("content-type"))
        final = response.url
        options = crawl.options
        page, rendered = None, None
        if options.render == "auto":
            page = parse_page(text, final, options.converter, detect_shell=True)
            if page.shell is not None:
                rendered = (page.shell.kind, f"auto: {page.shell.detail}")
        elif options.render == "always":
            rendered = ("always", "always")
        if rendered is not None:
            text = self.render(ctx, crawl, final, text, rendered[1])
            page = parse_page(text, final, options.converter)
        elif page is None:
            page = parse_page(text, final, options.converter)
        if response.truncated:
            ctx.log("warn", f"{url}: body cut off at {crawl.options.max_body_bytes} bytes")
        self.admit(ctx, crawl, state, depth, page.links, nofollow=page.nofollow)
        if page.noindex:
            ctx.log("info", f"skipped {url}: the page asks not to be indexed")
            state.finish(ctx, url, "skipped", "noindex")
            return
        key = final
        if page.canonical and page.canonical != final and crawl.filter.check(page.canonical) is None:
            key = page.canonical
        metadata = {
            "url": key, "fetched_url": url, "final_url": final, "status": response.status,
            "content_type": response.headers.get("content-type", ""), "encoding": encoding,
            "description": page.description, "canonical": page.canonical, "language": page.language,
            "etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified"),
            # No fetch time: metadata that changes on every fetch would make every re-crawl a change.
            "depth": depth, "truncated": response.truncated, "links": page.links[:MAX_STORED_LINKS],
        }
        if rendered is not None:
            metadata["rendered"] = rendered[1]
        document = DocumentInput(source_type=SOURCE_TYPE, source_ref=key, title=page.title or key,
                                 markdown=page.markdown, html=text if crawl.options.keep_html else None,
                                 metadata=metadata)
        # The page's place in the budget and the document itself: one transaction, all or nothing.
        with ctx.db.transaction():
            claimed = state.claim_page(step_id, url, key, rendered=rendered[0] if rendered else None)
            result = ctx.save_document(document) if claimed else None
        if result is None:
            ctx.log("info", f"skipped {url}: a duplicate of {key}")
            state.finish(ctx, url, "skipped", "duplicate")
            return
        kind = "new" if result.created else "updated" if result.changed else "unchanged"
        ctx.set_outcome("unchanged" if kind == "unchanged" else "saved", reason="rendered" if rendered else None)
        if rendered is not None:
            ctx.set_result(rendered=rendered[1])
        ctx.log("info", f"saved {key} ({kind}, {len(page.markdown)} characters, HTTP {response.status})",
                item_id=key, depth=depth, result_id=str(result.id), title=page.title)

    def render(self, ctx: JobContext, crawl: Crawl, url: str, html: str, why: str) -> str:
        """The DOM of the page at ``url`` (fetched as ``html``) once its scripts have run in the browser; every
        request it makes is fetched under the crawl's rules (:mod:`.subrequests`)."""
        options = crawl.options
        process = process_of(ctx)
        ctx.progress("rendering", current_item=url)

        def rules(target: str) -> RobotsRules | None:
            if not options.respect_robots_txt or not crawl.filter.in_scope(target):
                return None
            return process.robots.rules(ctx.http, crawl, target)

        # The page's own requests accept what its scripts ask for: only the user agent and the step's headers.
        requests = PageRequests(ctx, options, url, headers=step_headers(options),
                                credentials=credentials_of(ctx, options), rules=rules,
                                polite=lambda target, robots: self.polite(ctx, crawl, target, robots, whole_crawl=False,
                                                                          show=False),
                                cache=process.resources)
        # The body as decoded here, so that the browser reads the characters the crawler read.
        job = RenderRequest(url=url, body=html.encode("utf-8"), content_type="text/html; charset=utf-8",
                            fetch=requests, timeout=options.render_timeout, quiet=options.render_quiet_ms / 1000,
                            wait_for=options.wait_for, resources=frozenset(options.render_resources))
        try:
            rendered = process.renderer().render(job, cancelled=lambda: ctx.cancelled)
        except BrowserMissing as exc:  # no page of the crawl can be rendered: it stops, saying what to install
            ctx.stop_step(str(exc))
            raise JobError(f"{url}: {exc}", retryable=False) from None
        except RenderError as exc:
            ctx.check_cancelled()
            raise JobError(f"{url}: {exc}", retryable=exc.retryable) from None
        for refusal in rendered.refused[:MAX_REFUSALS_LOGGED]:
            ctx.log("warn", f"{url}: a request of the page was refused: {refusal}")
        if len(rendered.refused) > MAX_REFUSALS_LOGGED:
            ctx.log("warn", f"{url}: {len(rendered.refused) - MAX_REFUSALS_LOGGED} more requests of the page refused")
        ctx.log("info", f"rendered {url} ({why}) in {rendered.seconds:.2f} s: {rendered.fetched} request(s) "
                        f"fetched, {rendered.blocked} blocked", item_id=url)
        return rendered.html

    def admit(self, ctx: JobContext, crawl: Crawl, state: CrawlState, depth: int, links: list[str], *,
              nofollow: bool) -> None:
        """Admit a page's links one level deeper, if the crawl follows links from this depth."""
        options = crawl.options
        if not options.follow_links or nofollow or depth >= options.max_depth:
            return
        wanted = [(link, depth + 1) for link in links if crawl.filter.check(link) is None]
        if wanted:
            state.admit(ctx, wanted)


class SitemapWorker(_Base):
    """Reads one sitemap and admits its pages at depth 0; the first one of an origin finds them via
    robots.txt (or ``/sitemap.xml``).

    Sitemaps keep to the crawl's allowed domains: a robots.txt ``Sitemap:`` line or an index entry for
    another host is not fetched. Each sitemap is read once per crawl, indexes nest at most
    :data:`~.state.MAX_SITEMAP_NESTING` deep and a crawl reads at most :data:`~.state.MAX_SITEMAPS`
    (:meth:`CrawlState.admit_sitemaps`).
    """

    worker_type = "crawler_sitemap"

    def execute(self, ctx: JobContext, job: JobView) -> None:
        crawl = crawl_of(ctx)
        process = process_of(ctx)
        if not job.config.get("url"):
            found = self.discover(process, ctx.http, crawl, job.config["origin"])
            self.follow(ctx, crawl, job, found, nested=0, source=f"robots.txt of {job.config['origin']}")
            return
        sitemap_url = job.config["url"]
        try:
            response = self.get(ctx, crawl, sitemap_url, sitemap=True)
        except (RedirectError, httpx.HTTPError) as exc:
            ctx.log("warn", f"sitemap {sitemap_url}: {exc}")
            return
        if response.skipped:
            ctx.log("info", f"sitemap {sitemap_url}: redirected to {response.url} ({response.skipped})")
            return
        if response.status != 200:
            ctx.log("info", f"no sitemap at {sitemap_url} (HTTP {response.status})")
            return
        if response.truncated:
            ctx.log("warn", f"sitemap {sitemap_url}: cut off at {MAX_SITEMAP_BYTES} bytes")
        pages, children = parse_sitemap(response.body)
        allowed = [(page, 0) for page in (normalize_url(p) for p in pages)
                   if page and crawl.filter.check(page) is None]
        ctx.log("info", f"sitemap {sitemap_url}: {len(pages)} pages ({len(allowed)} allowed), "
                        f"{len(children)} nested sitemaps")
        if allowed:
            process.books.admit(ctx, allowed)
        if children:
            self.follow(ctx, crawl, job, children, nested=job.config.get("nested", 0) + 1,
                        source=f"sitemap {sitemap_url}")

    def follow(self, ctx: JobContext, crawl: Crawl, job: JobView, urls: list[str], *, nested: int,
               source: str) -> None:
        """Queue the sitemaps ``source`` names that the crawl may read (in scope, not read yet, within
        the bounds); say what was left out."""
        in_scope = [url for url in urls if crawl.filter.in_scope(url)]
        if len(in_scope) < len(urls):
            outside = [url for url in urls if url not in in_scope]
            ctx.log("warn", f"{source}: {len(outside)} sitemap(s) outside the allowed domains not read "
                            f"(first: {outside[0]})")
        if not in_scope:
            return
        if nested > MAX_SITEMAP_NESTING:
            ctx.log("warn", f"{source}: {len(in_scope)} nested sitemap(s) not read: sitemap indexes nest at "
                            f"most {MAX_SITEMAP_NESTING} deep")
            return
        # Nested sitemaps are not links: the crawl's max_depth does not apply to them.
        books = process_of(ctx).books
        _, over = books.admit_sitemaps(ctx, in_scope, nested=nested, depth=job.depth)
        if over:
            ctx.log("warn", f"{source}: {over} sitemap(s) not read: a crawl reads at most {books.max_sitemaps}")

    def discover(self, process: CrawlerProcess, client: httpx.Client, crawl: Crawl, origin: str) -> list[str]:
        """The sitemaps robots.txt lists, else /sitemap.xml."""
        rules = process.robots.rules(client, crawl, origin + "/")
        return list(rules.sitemaps) or [origin + "/sitemap.xml"]
