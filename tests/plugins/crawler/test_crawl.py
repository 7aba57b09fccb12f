"""The crawl action end to end, against local test sites served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import sitekit
from sitekit import saved
from support import make_settings, wait_done, wait_for

from quaero.runtime import Runtime
from quaero.stores.jsonutil import loads


@pytest.fixture
def crawler(tmp_path):
    runtime = Runtime(make_settings(tmp_path, worker_threads=6), role="run")
    runtime.start()
    yield runtime
    runtime.stop()


def run_crawl(runtime, site, wait=60, **config):
    config = {"start_urls": [site.url("/")], "per_host_delay_ms": 0, **config}
    definition = runtime.definitions.parse(json.dumps(
        {"name": "crawl test", "tags": ["test-tag"],
         "steps": [{"name": "crawl", "action": "crawl", "config": config}]}))
    root = wait_done(runtime, runtime.orchestrator.execute(definition), timeout=wait)
    [step] = runtime.jobs.children(root.id)
    return root, step


def test_depth_and_url_normalisation(crawler, make_site):
    site = make_site(sitekit.basic)
    root, step = run_crawl(crawler, site, max_depth=2)
    assert root.status == "completed"
    docs = saved(crawler, site)
    assert set(docs) == {p for p, d in sitekit.BASIC_DEPTHS.items() if d <= 2}
    home = docs["/"]
    assert home.title == sitekit.BASIC_TITLES["/"] and sitekit.BASIC_WORDS["/"] in home.markdown
    assert loads(home.tags) == ["test-tag"] and loads(home.metadata)["depth"] == 0
    # /a was linked in six spellings and fetched once; nothing outside the site was requested.
    assert len(site.requests_for(path="/a")) == 1
    assert crawler.jobs.get(step.id).result_count == len(docs)


@pytest.mark.parametrize("max_pages", [1, 3])
def test_max_pages_is_exact(crawler, make_site, max_pages):
    site = make_site(sitekit.basic)
    _, step = run_crawl(crawler, site, max_depth=5, max_pages=max_pages, per_host_concurrency=4)
    assert len(saved(crawler, site)) == max_pages
    stats = crawler.step_stats(step)
    assert stats["pages_saved"] == max_pages


def test_include_and_exclude_patterns(crawler, make_site):
    site = make_site(sitekit.basic)
    run_crawl(crawler, site, max_depth=3, exclude_patterns=[r"/b"], include_patterns=[r"/$", r"/a"])
    assert set(saved(crawler, site)) == {"/", "/a", "/a1", "/a2", "/a1x"}


def test_robots_txt_rules_and_crawl_delay(crawler, make_site):
    site = make_site(sitekit.basic, lambda s: sitekit.robots(s, crawl_delay=0.4))
    run_crawl(crawler, site, max_depth=1)
    assert "/private/secret" not in saved(crawler, site)
    assert not site.requests_for(path="/private/secret")
    pages = [r for r in site.requests if r.path != "/robots.txt"]
    gaps = [b.time - a.time for a, b in zip(pages, pages[1:])]
    assert len(pages) >= 3 and min(gaps) >= 0.35


def test_sitemaps_seed_the_crawl(crawler, make_site):
    site = make_site(sitekit.basic, sitekit.robots, sitekit.sitemap)
    run_crawl(crawler, site, max_depth=0, use_sitemap=True, respect_robots_txt=False)
    docs = saved(crawler, site)
    assert set(sitekit.SITEMAP_ORPHANS) <= set(docs) and "/" in docs


def test_crawler_trap_is_bounded_by_depth(crawler, make_site):
    site = make_site(sitekit.trap)
    run_crawl(crawler, site, max_depth=4)
    calendars = [p for p in saved(crawler, site) if p.startswith("/calendar")]
    # / is depth 0, month=1 depth 1, and each page links the next and the previous month.
    assert sorted(calendars) == sorted(f"/calendar?month={m}" for m in range(-2, 5))


def test_redirects(crawler, make_site):
    site = make_site(sitekit.redirects)
    root, step = run_crawl(crawler, site, max_depth=1)
    assert root.status == "completed"
    docs = saved(crawler, site)
    assert "/target" in docs and "/moved" not in docs
    assert not any(p.startswith("/loop") or p.startswith("/chain") for p in docs)
    stats = crawler.step_stats(step)
    assert stats["skipped_by_reason"]["redirect_loop"] == 2  # the loop, and the chain past max_redirects


def test_error_pages_are_never_saved_and_busy_pages_are_retried(crawler, make_site):
    site = make_site(sitekit.errors)
    _, step = run_crawl(crawler, site, max_depth=1)
    docs = saved(crawler, site)
    assert "/missing" not in docs and "/broken" not in docs
    assert "busypageword" in docs["/busy"].markdown and "/limited" in docs
    assert site.state["errors"] == {"/busy": 3, "/limited": 2}
    stats = crawler.step_stats(step)
    assert stats["skipped_by_reason"] == {"http_404": 1, "http_500": 1}
    assert stats["pages_fetched"] == stats["pages_saved"] + 2


def test_slow_server_times_out_and_fails_the_page(crawler, make_site):
    site = make_site(lambda s: sitekit.slow(s, delay=3), sitekit.basic)
    site.link_from_home("/slow")
    _, step = run_crawl(crawler, site, max_depth=1, timeout=0.5, max_pages=20)
    docs = saved(crawler, site)
    assert "/slow" not in docs and "/a" in docs
    stats = crawler.step_stats(step)
    assert stats["pages_failed"] == 1


def test_huge_page_is_cut_off(crawler, make_site):
    site = make_site(sitekit.huge)
    run_crawl(crawler, site, max_depth=1, max_body_bytes=200_000)
    meta = loads(saved(crawler, site)["/huge"].metadata)
    assert meta["truncated"] is True


def test_charsets_are_detected(crawler, make_site):
    site = make_site(sitekit.charsets)
    run_crawl(crawler, site, max_depth=1)
    docs = saved(crawler, site)
    assert "café" in docs["/latin1"].markdown
    assert "日本語" in docs["/sjis"].markdown
    assert "café" in docs["/cp1252"].markdown and "€5" in docs["/cp1252"].markdown


def test_malformed_html(crawler, make_site):
    site = make_site(sitekit.malformed)
    run_crawl(crawler, site, max_depth=2)
    docs = saved(crawler, site)
    text = docs["/malformed"].markdown
    assert all(word in text for word in sitekit.MALFORMED_WORDS)
    assert sitekit.MALFORMED_SCRIPT_TEXT not in text
    assert "/malformed-child" in docs


def test_non_html_is_skipped(crawler, make_site):
    site = make_site(sitekit.non_html)
    _, step = run_crawl(crawler, site, max_depth=1)
    assert set(saved(crawler, site)) == {"/"}
    stats = crawler.step_stats(step)
    assert stats["skipped_by_reason"]["not_html"] == 3


def test_canonical_urls_are_saved_once(crawler, make_site):
    site = make_site(sitekit.canonical)
    run_crawl(crawler, site, max_depth=2)
    dups = [p for p in saved(crawler, site) if p.startswith("/dup")]
    assert dups == ["/dup"]


def test_members_area_needs_the_auth_id(crawler, make_site):
    site = make_site(sitekit.members)
    run_crawl(crawler, site, max_depth=2)
    assert not [p for p in saved(crawler, site) if p.startswith("/members")]
    crawler.credentials.save("members", base_url=site.url("/"),
                                      cookies={sitekit.MEMBERS_COOKIE[0]: sitekit.MEMBERS_COOKIE[1]})
    run_crawl(crawler, site, max_depth=2, auth_id="members")
    docs = saved(crawler, site)
    assert "memberword" in docs["/members/"].markdown and "/members/page2" in docs


def test_refresh_uses_conditional_requests(crawler, make_site):
    site = make_site(sitekit.conditional)
    state = site.state["conditional"]
    run_crawl(crawler, site, max_depth=1)
    first = saved(crawler, site)
    site.clear_requests()
    run_crawl(crawler, site, max_depth=1, refresh=True)
    assert site.requests_for(path="/etag")[0].headers.get("If-None-Match") == '"v1"'
    assert state.not_modified == 2
    again = saved(crawler, site)
    assert again["/etag"].updated_at == first["/etag"].updated_at
    state.version = 2
    run_crawl(crawler, site, max_depth=1, refresh=True)
    assert "version2" in saved(crawler, site)["/etag"].markdown


def test_quick_crawl_api(crawler, make_site, settings):
    from starlette.testclient import TestClient

    from quaero.web.app import create_app

    site = make_site(sitekit.basic)
    with TestClient(create_app(settings, runtime=crawler)) as client:
        bad = client.post("/api/jobs/quick-crawl", json={"url": site.url("/"), "depth": 1})
        assert bad.status_code == 400 and "depth" in bad.json()["error"]
        response = client.post("/api/jobs/quick-crawl", json={"url": site.url("/"), "max_depth": 1, "max_pages": 2})
        assert response.status_code == 202
        job_id = response.json()["job_id"]
        wait_for(lambda: client.get(f"/api/jobs/{job_id}").json()["status"] == "completed", 30)
        [step] = client.get(f"/api/jobs/{job_id}/children").json()["items"]
        stats = client.get(f"/api/jobs/{step['id']}").json()["stats"]
        assert stats["pages_saved"] == 2 and stats["max_pages"] == 2


def test_politeness_holds_across_worker_processes(tmp_path, make_site):
    site = make_site(sitekit.basic)
    runtime = Runtime(make_settings(tmp_path, worker_processes=2, worker_threads=4), role="run")
    runtime.start()
    try:
        run_crawl(runtime, site, max_depth=3, per_host_delay_ms=300, per_host_concurrency=1)
    finally:
        runtime.stop()
    pages = [r for r in site.requests if r.path != "/robots.txt"]
    assert len(pages) == len(sitekit.BASIC_DEPTHS)
    gaps = [b.time - a.time for a, b in zip(pages, pages[1:])]
    assert min(gaps) >= 0.28, gaps


def test_sigkill_of_a_worker_mid_crawl_resumes_without_duplicates(tmp_path, make_site):
    site = make_site(sitekit.basic, lambda s: sitekit.slow(s, delay=0.5))
    for i in range(12):
        site.route(f"/p{i}", sitekit.page(f"P{i}", f"<p>pageword{i}</p>"))
        site.link_from_home(f"/p{i}")
    runtime = Runtime(make_settings(tmp_path, worker_processes=1, worker_threads=4, queue_lease_ms=1500), role="run")
    runtime.start()
    try:
        definition = runtime.definitions.parse(json.dumps({"name": "kill", "steps": [{
            "name": "crawl", "action": "crawl",
            "config": {"start_urls": [site.url("/")], "max_depth": 2, "per_host_delay_ms": 150}}]}))
        root_id = runtime.orchestrator.execute(definition)
        wait_for(lambda: len(saved(runtime, site)) >= 3, 30, what="a few pages")
        [pid] = runtime.supervisor.pids()
        os.kill(pid, signal.SIGKILL)
        root = wait_done(runtime, root_id, timeout=90)
        assert root.status == "completed"
        docs = saved(runtime, site)
        expected = set(sitekit.BASIC_DEPTHS) - {"/a1x"} | {f"/p{i}" for i in range(12)} | {"/slow"}
        assert set(docs) == expected
        [step] = runtime.jobs.children(root_id)
        assert runtime.jobs.get(step.id).result_count == len(expected)
        fetched_twice = [p for p in expected if len(site.requests_for(path=p)) > 1]
        assert len(fetched_twice) <= 4  # at most the pages in flight when the worker died
    finally:
        runtime.stop()
    time.sleep(0)


def test_crawl_with_postgresql_and_two_worker_processes(tmp_path, make_site, postgres_url):
    site = make_site(sitekit.basic, sitekit.canonical, sitekit.errors)
    runtime = Runtime(make_settings(tmp_path, database_url=postgres_url, worker_processes=2), role="run")
    runtime.start()
    try:
        root, step = run_crawl(runtime, site, max_depth=3, max_pages=8)
        assert root.status == "completed"
        docs = saved(runtime, site)
        assert len(docs) == 8 and [p for p in docs if p.startswith("/dup")] in ([], ["/dup"])
        assert runtime.jobs.get(step.id).result_count == 8
    finally:
        runtime.stop()


def test_deleting_a_crawl_and_pruning_remove_its_books(crawler, make_site):
    site = make_site(sitekit.basic)
    root, step = run_crawl(crawler, site, max_depth=1)
    database = crawler.database

    def books(step_id):
        return (database.execute("SELECT COUNT(*) FROM crawl_urls WHERE step_id = ?", (step_id,)).fetchone()[0],
                database.execute("SELECT COUNT(*) FROM crawl_state WHERE step_id = ?", (step_id,)).fetchone()[0])

    assert books(step.id)[0] > 0 and books(step.id)[1] == 1
    crawler.jobs.delete(root.id)  # what DELETE /api/jobs/{id} does
    assert books(step.id) == (0, 0)
    # A maintenance prune deletes old executions through the same hook.
    root, step = run_crawl(crawler, site, max_depth=1)
    with database.write():
        database.execute("UPDATE jobs SET finished_at = finished_at - 40 * 86400 WHERE root_id = ? OR id = ?",
                         (root.id, root.id))
    outcome = crawler.contexts.maintenance.run("prune", older_than_days=30)
    assert outcome.figures["executions_removed"] == 1 and books(step.id) == (0, 0)
    versions = database.execute("SELECT version FROM plugin_migrations WHERE plugin = 'crawler' ORDER BY version")
    assert versions.fetchall() == [(1,), (2,)]


class _Closed:
    """A site nobody answers for: a port that refuses connections."""

    def __init__(self) -> None:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens there now

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def test_a_site_that_cannot_be_reached_fails_the_crawl_with_the_network_error(crawler):
    root, step = run_crawl(crawler, _Closed(), wait=60)
    assert root.status == "failed" and step.status == "failed"
    [job] = crawler.jobs.children(step.id)
    assert job.status == "failed" and job.attempts == 3  # retried: a site may come back
    assert "could not be reached" in job.error_message and "ConnectError" in job.error_message
    assert "skipped" not in " ".join(line["message"] for line in crawler.logs.read([job.id]))


def test_a_site_whose_robots_txt_fails_with_5xx_is_reported_unreachable(crawler, make_site):
    site = make_site(sitekit.basic)
    site.route("/robots.txt", lambda request: (503, {}, "down for maintenance"))
    root, step = run_crawl(crawler, site, wait=60)
    assert root.status == "failed"
    [job] = crawler.jobs.children(step.id)
    assert "its robots.txt gave HTTP 503" in job.error_message and saved(crawler, site) == {}
