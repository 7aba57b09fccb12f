"""CrawlerManager: a crawl step's parent job, its page budget, and one child per start URL (and sitemap)."""

from __future__ import annotations

import logging
from typing import Any

from quaero import ChildSpec, StepManager

from .state import CrawlState, ensure_tables
from .urls import host_of, normalize_url
from .worker import crawl_state

log = logging.getLogger(__name__)


class CrawlerManager(StepManager):
    """Creates the crawl; the workers do the fetching."""

    manager_type = "crawl"

    def create_parent_job(self, ctx: Any, step: Any, job_def: Any, parent_job_id: str) -> str:
        options = step.options
        starts = [url for url in (normalize_url(u) for u in options.start_urls) if url]
        allowed = options.allowed_domains or sorted({host_of(url) for url in starts})
        parent = ctx.create_step_job(step, job_def, parent_job_id, max_depth=options.max_depth,
                                     allowed_domains=allowed, auth_id=options.auth_id or job_def.auth_id)
        state: CrawlState = crawl_state(ctx)
        state.start(parent.id, options.max_pages)
        state.admit(parent, [(url, 0) for url in starts])
        if options.use_sitemap:
            origins = sorted({url.split("/", 3)[0] + "//" + url.split("/", 3)[2] for url in starts})
            ctx.spawner.spawn_children(parent, [ChildSpec("crawler_sitemap", f"sitemaps of {origin}",
                                                          {"origin": origin}, item_ref=origin)
                                                for origin in origins])
        return parent.id

    def stats(self, ctx: Any, step_job: Any) -> dict[str, Any] | None:
        ensure_tables(ctx.database)
        return crawl_state(ctx).stats(step_job.id)
