"""CrawlerManager: a crawl step's page budget, and one child per start URL (and sitemap)."""

from __future__ import annotations

from typing import Any

from quaero.api import ChildSpec, JobView, PluginContext, ReadinessContext, StepContext, StepManager

from .options import CrawlOptions
from .process import process_of, start_urls


class CrawlerManager(StepManager):
    """Opens the crawl's books and admits its start URLs; the workers do the fetching."""

    manager_type = "crawl"

    def readiness(self, ctx: ReadinessContext, options: CrawlOptions) -> str | None:
        # A start URL whose host is a refused address (or localhost) cannot be crawled; a name that
        # resolves to one is found out when the crawl connects, and fails its job the same way.
        for url in start_urls(options):
            refusal = ctx.outbound_refusal(url)
            if refusal is not None:
                return f"start URL {url}: {refusal}"
        return None

    def start_step(self, ctx: StepContext) -> None:
        options: CrawlOptions = ctx.options
        starts = start_urls(options)
        ctx.set_max_depth(options.max_depth)
        books = process_of(ctx).books
        books.start(ctx.step.id, options.max_pages)
        books.admit(ctx, [(url, 0) for url in starts])
        if options.use_sitemap:
            origins = sorted({url.split("/", 3)[0] + "//" + url.split("/", 3)[2] for url in starts})
            ctx.spawn_many([ChildSpec("crawler_sitemap", f"sitemaps of {origin}", {"origin": origin}, item_ref=origin)
                            for origin in origins])

    def stats(self, ctx: PluginContext, step: JobView) -> dict[str, Any] | None:
        return process_of(ctx).books.stats(step.id, started_at=step.started_at, finished_at=step.finished_at)
