"""What a crawl keeps when its jobs are stopped the hard way, against local test sites on 127.0.0.1."""

from __future__ import annotations

import json

import sitekit
from support import make_settings, wait_done

from quaero.runtime import Runtime

LOCAL = ["127.0.0.0/8", "::1/128"]  # the outbound policy refuses loopback unless allowed


def test_a_page_stopped_by_its_time_limit_gives_its_budget_back(tmp_path, make_site):
    # TimeLimitExceeded is a BaseException raised into the worker thread: `except Exception` never saw it,
    # so the URL kept its share of max_pages and the crawl ended one page short.
    site = make_site()
    for path in ("/a-slow", "/b", "/c", "/d", "/e", "/f", "/g"):
        site.link_from_home(path)
        if path != "/a-slow":
            site.route(path, sitekit.page(f"Page {path}", f"<p>words of {path}</p>"))
    site.route("/a-slow", lambda request: (site.stopping.wait(3), sitekit.page("Slow", "<p>late</p>"))[1])
    runtime = Runtime(make_settings(tmp_path, time_limit=1, allow_private_networks=LOCAL), role="run")
    runtime.start()
    try:
        # / is saved first; of its seven links the first four (by URL) take the rest of the budget of five,
        # /a-slow among them, and the last three wait.
        definition = runtime.definitions.parse(json.dumps({"name": "budget", "steps": [{
            "name": "crawl", "action": "crawl", "config": {
                "start_urls": [site.url("/")], "max_pages": 5, "max_depth": 1, "per_host_delay_ms": 0,
                "per_host_concurrency": 4}}]}))
        root = wait_done(runtime, runtime.orchestrator.execute(definition), timeout=60)
        [step] = runtime.jobs.children(root.id)
        [slow] = runtime.jobs.children(step.id, status="failed")
        assert slow.error_message == "exceeded the time limit of 1 s"
        stats = runtime.step_stats(runtime.jobs.get(step.id))
        assert stats["pages_saved"] == 5 and stats["pages_failed"] == 1 and stats["urls_deferred"] == 2
        assert runtime.documents.count(source_type="web") == 5
    finally:
        runtime.stop()


def test_politeness_slots_of_a_killed_process_are_free_at_once_not_after_their_lease(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "from quaero.api import lease_holder; print(lease_holder(), "
                              "flush=True); import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    dead = child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    runtime = Runtime(make_settings(tmp_path), role="run")
    runtime.start()
    try:
        books = runtime.plugins.record("crawler").state.books
        books.acquire_slots([("host:example.org", 1)], time.sleep)  # the rows exist
        books.release_slots([("host:example.org", 0)])
        with runtime.database.write():  # what the killed process left: its slot, leased for 15 s more
            runtime.database.execute("UPDATE crawl_slots SET holder = ?, lease_until = ? WHERE name = ?",
                                     (dead, time.time() + 15, "host:example.org"))
        waited: list[float] = []
        taken = books.acquire_slots([("host:example.org", 1)], lambda s: (waited.append(s), time.sleep(s)))
        # Before: the slot came free when its lease ran out, 15 s later.
        assert taken == [("host:example.org", 0)] and sum(waited) < 5
    finally:
        runtime.stop()
