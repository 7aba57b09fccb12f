"""The crawler plugin: polite, exact, resumable web crawling into documents (action ``crawl``)."""

from quaero import hookimpl


@hookimpl
def register_actions(register):
    """Registered once the crawler's manager and worker land."""
