"""The crawler plugin: polite, exact, resumable web crawling into documents (action ``crawl``)."""

from __future__ import annotations

from collections.abc import Sequence

from quaero.api import Action, PluginDatabase, PluginHost, WebRegistry, hookimpl

from .manager import CrawlerManager
from .options import CrawlOptions
from .process import CrawlerProcess, CrawlerSettings
from .quick_crawl import QuickCrawlInput, quick_crawl
from .state import MIGRATIONS, forget_crawls
from .worker import CrawlerWorker, SitemapWorker

QUAERO_API = "1.6"


@hookimpl
def register_actions(register):
    register(Action(name="crawl", manager=CrawlerManager(), workers=[CrawlerWorker(), SitemapWorker()],
                    options=CrawlOptions, description="Crawl websites into markdown documents."))


@hookimpl
def startup(plugin: PluginHost) -> CrawlerProcess:
    plugin.migrate(MIGRATIONS)
    return CrawlerProcess(plugin.db, plugin.configure(CrawlerSettings))


@hookimpl
def register_web(web: WebRegistry) -> None:
    web.route("/api/jobs/quick-crawl", quick_crawl, methods=["POST"], body=QuickCrawlInput)


@hookimpl
def jobs_deleted(job_ids: Sequence[str], db: PluginDatabase) -> None:
    # A crawl's books are keyed by its step's id: they go with the step.
    forget_crawls(db, list(job_ids))
