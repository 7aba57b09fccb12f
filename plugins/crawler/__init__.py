"""The crawler plugin: polite, exact, resumable web crawling into documents (action ``crawl``)."""

from quaero import Action, hookimpl

from .manager import CrawlerManager
from .options import CrawlOptions
from .worker import CrawlerWorker, SitemapWorker


@hookimpl
def register_actions(register):
    register(Action(name="crawl", manager=CrawlerManager(), workers=[CrawlerWorker(), SitemapWorker()],
                    options=CrawlOptions, description="Crawl websites into markdown documents."))
