"""Re-running a crawl's failed pages: a site that fails some pages at first, then serves them."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler

import pytest
from support import make_settings, served, wait_done, wait_for

from quaero.runtime import Runtime

PAGES = [f"/p{i}" for i in range(1, 7)]
#: Pages whose first requests get no answer (the connection is dropped): a network error, which fails the
#: job once its retries (2) are spent. Their fourth request is answered.
FLAKY = {"/p2": 3, "/p5": 3}


class FlakySite(BaseHTTPRequestHandler):
    """A home page linking to six pages, two of which fail at first: a real server with state."""

    hits: Counter[str] = Counter()
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        with self.lock:
            self.hits[self.path] += 1
            hit = self.hits[self.path]
        if self.path in FLAKY and hit <= FLAKY[self.path]:
            self.close_connection = True  # no answer at all
            return
        if self.path == "/":
            body = "<html><head><title>Home</title></head><body>" + "".join(
                f'<a href="{page}">{page}</a> ' for page in PAGES) + "</body></html>"
        elif self.path in PAGES:
            body = f"<html><head><title>Page {self.path}</title></head><body><p>words of {self.path}</p></body></html>"
        else:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def site():
    FlakySite.hits = Counter()
    with served(FlakySite) as url:
        yield url


@pytest.fixture
def crawler(tmp_path):
    runtime = Runtime(make_settings(tmp_path, worker_threads=4), role="run")
    runtime.start()
    yield runtime
    runtime.stop()


def crawl(runtime, url):
    definition = runtime.definitions.parse(json.dumps({"id": "flaky-crawl", "name": "flaky crawl", "steps": [{
        "name": "crawl", "action": "crawl",
        "config": {"start_urls": [url + "/"], "max_depth": 1, "per_host_delay_ms": 0}}]}))
    return runtime.orchestrator.execute(definition)


def test_rerun_failed_pages_fetches_and_saves_them(crawler, site):
    root = wait_done(crawler, crawl(crawler, site), timeout=90)
    [step] = crawler.jobs.children(root.id)
    assert root.status == "completed" and step.count_failed == 2
    stats = crawler.step_stats(step)
    assert stats["pages_saved"] == 5 and stats["pages_failed"] == 2
    assert crawler.documents.count() == 5

    outcome = crawler.recovery.rerun_failed(step.id)
    assert outcome["requeued"] == 2
    assert crawler.jobs.get(step.id).status == "running" and crawler.jobs.get(root.id).status == "running"
    wait_for(lambda: crawler.jobs.get(root.id).status == "completed", 60, what="the execution to end again")

    root, step = crawler.jobs.get(root.id), crawler.jobs.get(step.id)
    stats = crawler.step_stats(step)
    # The two pages were fetched again (their fourth request) and saved; nothing was saved twice.
    assert FlakySite.hits["/p2"] == 4 and FlakySite.hits["/p5"] == 4
    assert stats["pages_saved"] == 7 and stats["pages_failed"] == 0
    assert crawler.documents.count() == 7
    assert step.status == "completed" and step.count_failed == 0 and step.count_completed == 7
    assert crawler.jobs.counts(step.id) == crawler.jobs.recount(step.id)
    assert root.result_count == step.result_count == 7
    assert crawler.jobs.counts(root.id).completed == 1
