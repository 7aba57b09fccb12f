"""What a hostile site cannot make the crawler do: reach addresses the outbound policy refuses, fetch
robots.txt or sitemaps outside the crawl's allowed domains, send the user's credentials to another origin,
read unbounded robots.txt and sitemap bodies or sitemap indexes, or stall a worker with a URL pattern.

The sites are real servers in 127/8: the "hostile" one on 127.0.0.1 and its "victim" on 127.0.0.2, another
host name for everything that compares hosts (allowed domains, origins, credentials, the policy).
"""

from __future__ import annotations

import json

import pytest
import sitekit
from support import LOCAL_NETWORKS, make_settings, wait_done

from quaero.api import Conflict, DefinitionError
from quaero.runtime import Runtime
from quaero_plugins.crawler import state as crawl_state
from quaero_plugins.crawler import worker as crawl_worker
from quaero_plugins.crawler.urls import UrlFilter

SECRET_COOKIE = ("sid", "cookie-secret")
SECRET_HEADER = ("Authorization", "Bearer header-secret")
TEXT = {"Content-Type": "text/plain"}
XML = {"Content-Type": "application/xml"}


def make_runtime(tmp_path, **overrides):
    runtime = Runtime(make_settings(tmp_path, worker_threads=6, **overrides), role="run")
    runtime.start()
    return runtime


@pytest.fixture
def crawler(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.stop()


def crawl(runtime, start, wait=60, **config):
    config = {"start_urls": [start], "per_host_delay_ms": 0, **config}
    definition = runtime.definitions.parse(json.dumps(
        {"name": "scope test", "steps": [{"name": "crawl", "action": "crawl", "config": config}]}))
    root = wait_done(runtime, runtime.orchestrator.execute(definition), timeout=wait)
    [step] = runtime.jobs.children(root.id)
    return root, runtime.jobs.get(step.id)


def saved_paths(runtime, site) -> set[str]:
    return set(sitekit.saved(runtime, site))


def urlset(*urls: str) -> str:
    return ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(f"<url><loc>{url}</loc></url>" for url in urls) + "</urlset>")


def index(*urls: str) -> str:
    return ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(f"<sitemap><loc>{url}</loc></sitemap>" for url in urls) + "</sitemapindex>")


def with_secrets(runtime, site, auth_id="site"):
    runtime.credentials.save(auth_id, base_url=site.url("/"), cookies=dict([SECRET_COOKIE]),
                             headers=dict([SECRET_HEADER]))


def carried_secrets(site) -> list[str]:
    """The requests to ``site`` that carried the cookie or the Authorization header."""
    return [r.target for r in site.requests
            if r.cookies.get(SECRET_COOKIE[0]) or r.headers.get(SECRET_HEADER[0])]


# ---------------------------------------------------------------------------------------------- SSRF

def test_without_the_setting_a_crawl_of_this_machine_is_refused_naming_the_setting(tmp_path, make_site):
    site = make_site(sitekit.basic)
    runtime = make_runtime(tmp_path, allow_private_networks=[])
    try:
        for start in (site.url("/settings"), f"http://localhost:{site.port}/"):
            with pytest.raises(Conflict) as refused:
                crawl(runtime, start)
            [reason] = refused.value.detail["not_runnable"]
            assert "loopback" in reason and "allow_private_networks" in reason, reason
            assert "QUAERO_ALLOW_PRIVATE_NETWORKS" in reason
            shown = runtime.not_runnable(runtime.definitions.parse(json.dumps(
                {"name": "x", "steps": [{"name": "crawl", "action": "crawl", "config": {"start_urls": [start]}}]})))
            assert shown == [reason]
        # Spellings only the resolver reads as 127.0.0.1 pass that early check; the connection is refused.
        for start in (f"http://2130706433:{site.port}/", f"http://127.1:{site.port}/"):
            root, step = crawl(runtime, start)
            assert root.status == "failed" and step.status == "failed"
            [job] = runtime.jobs.children(step.id)
            assert job.status == "failed" and job.attempts == 1  # not retried: it would be refused again
            assert "127.0.0.1 (loopback)" in job.error_message and "allow_private_networks" in job.error_message
            assert runtime.step_stats(step)["pages_failed"] == 1
    finally:
        runtime.stop()
    assert site.requests == []


def test_a_quick_crawl_of_the_servers_own_settings_page_is_refused(tmp_path):
    from starlette.testclient import TestClient

    from quaero.web.app import create_app

    runtime = make_runtime(tmp_path, allow_private_networks=[])
    try:
        with TestClient(create_app(runtime.settings, runtime=runtime)) as client:
            response = client.post("/api/jobs/quick-crawl", json={"url": "http://127.0.0.1:8085/settings"})
            assert response.status_code == 409, response.text
            assert "127.0.0.1 (loopback)" in response.json()["error"]
            assert "allow_private_networks" in response.json()["error"]
        assert runtime.documents.list() == []
    finally:
        runtime.stop()


def test_the_policy_reaches_worker_processes_through_their_settings(tmp_path, make_site):
    site = make_site(sitekit.basic)
    # worker_processes=1: no worker thread in this process, the job runs in a `quaero worker` process.
    runtime = make_runtime(tmp_path, allow_private_networks=["127.0.0.2/32"], worker_processes=1)
    try:
        root, step = crawl(runtime, f"http://2130706433:{site.port}/", wait=90)
        [job] = runtime.jobs.children(step.id)
        assert root.status == "failed" and "allow_private_networks" in job.error_message
        assert "2130706433, which resolves to 127.0.0.1 (loopback)" in job.error_message
    finally:
        runtime.stop()
    assert site.requests == []


def test_links_and_redirects_to_a_refused_address_are_skipped_as_blocked(tmp_path, make_site):
    victim = make_site(sitekit.basic, address="127.0.0.2")
    hostile = make_site()
    hostile.route("/go", sitekit.redirect(victim.url("/")))
    hostile.link_from_home("/go")
    hostile.link_from_home(victim.url("/a"))
    runtime = make_runtime(tmp_path, allow_private_networks=["127.0.0.1/32"])
    try:
        root, step = crawl(runtime, hostile.url("/"), max_depth=1, allowed_domains=["127.0.0.1", "127.0.0.2"])
        assert root.status == "completed"
        stats = runtime.step_stats(step)
        assert stats["skipped_by_reason"] == {"blocked_address": 2}  # the link, and the redirect's hop
        lines = " ".join(line["message"] for line in runtime.logs.read([root.id], descendants=True))
        assert "127.0.0.2 (loopback)" in lines and "allow_private_networks" in lines
    finally:
        runtime.stop()
    assert victim.requests == []


# ---------------------------------------------------------------------------------------------- scope

def test_a_hostile_sites_robots_and_sitemaps_cannot_send_the_crawler_or_its_credentials_elsewhere(
        crawler, make_site):
    victim = make_site(address="127.0.0.2")
    hostile = make_site()
    hostile.route("/robots.txt", (200, TEXT, f"User-agent: *\nAllow: /\nSitemap: {victim.url('/sitemap.xml')}\n"
                                             f"Sitemap: {hostile.url('/sitemap.xml')}\n"))
    hostile.route("/sitemap.xml", (200, XML, index(victim.url("/child.xml"), hostile.url("/sitemap.xml"),
                                                   hostile.url("/pages.xml"))))
    hostile.route("/pages.xml", (200, XML, urlset(hostile.url("/listed"), victim.url("/page"))))
    hostile.route("/listed", sitekit.page("Listed", "<p>listedword</p>"))
    hostile.route("/go", sitekit.redirect(victim.url("/landing")))
    hostile.link_from_home("/go")
    hostile.link_from_home(victim.url("/linked"))
    with_secrets(crawler, hostile)
    root, step = crawl(crawler, hostile.url("/"), max_depth=1, use_sitemap=True, auth_id="site")
    assert root.status == "completed"
    assert victim.requests == []
    assert saved_paths(crawler, hostile) == {"/", "/listed"}
    # The hostile site's own sitemaps were read once each, though its index lists itself.
    assert len(hostile.requests_for(path="/sitemap.xml")) == 1 and len(hostile.requests_for(path="/pages.xml")) == 1
    assert carried_secrets(hostile)  # the credentials did go where they belong
    lines = " ".join(line["message"] for line in crawler.logs.read([root.id], descendants=True))
    assert "outside the allowed domains not read" in lines


def test_credentials_never_follow_a_redirect_to_another_origin(crawler, make_site):
    victim = make_site(address="127.0.0.2")
    victim.route("/landing", sitekit.page("Landing", "<p>landingword</p>"))
    hostile = make_site()
    hostile.route("/go", sitekit.redirect(victim.url("/landing")))
    hostile.route("/again", sitekit.redirect(hostile.url("/")))  # back home: the credentials apply again
    hostile.link_from_home("/go")
    hostile.link_from_home("/again")
    with_secrets(crawler, hostile)
    root, _ = crawl(crawler, hostile.url("/"), max_depth=1, auth_id="site", headers={"X-Trace": "t1"},
                    allowed_domains=["127.0.0.1", "127.0.0.2"])
    assert root.status == "completed"
    [landing] = victim.requests_for(path="/landing")
    assert landing.cookies == {} and landing.headers.get("Authorization") is None
    assert landing.headers.get("X-Trace") == "t1"  # the step's other headers still go
    assert "/landing" in saved_paths(crawler, victim)
    assert carried_secrets(hostile)


def test_https_credentials_are_not_sent_over_plain_http(crawler, make_site):
    site = make_site(sitekit.members)
    crawler.credentials.save("members", base_url=f"https://{site.host}/",
                             cookies={sitekit.MEMBERS_COOKIE[0]: sitekit.MEMBERS_COOKIE[1]})
    root, _ = crawl(crawler, site.url("/"), max_depth=2, auth_id="members")
    assert root.status == "completed"
    assert not [p for p in saved_paths(crawler, site) if p.startswith("/members")]
    assert not [r for r in site.requests if r.cookies]


def test_robots_txt_redirects_are_followed_within_the_allowed_domains_only(crawler, make_site):
    victim = make_site(address="127.0.0.2")
    victim.route("/robots.txt", (200, TEXT, "User-agent: *\nDisallow: /\n"))
    elsewhere = make_site(sitekit.basic)
    elsewhere.route("/robots.txt", sitekit.redirect(victim.url("/robots.txt"), 301))
    within = make_site(sitekit.basic, sitekit.robots)
    within.route("/robots.txt", sitekit.redirect("/rules.txt", 301))
    within.route("/rules.txt", (200, TEXT, "User-agent: *\nDisallow: /a\n"))
    root, _ = crawl(crawler, elsewhere.url("/"), max_depth=1)
    assert root.status == "completed" and "/a" in saved_paths(crawler, elsewhere)  # unavailable: allowed
    assert victim.requests == []
    root, _ = crawl(crawler, within.url("/"), max_depth=1)
    assert root.status == "completed"
    assert "/a" not in saved_paths(crawler, within) and not within.requests_for(path="/a")
    assert len(within.requests_for(path="/rules.txt")) == 1


# ---------------------------------------------------------------------------------------------- bounds

def _counting(head: bytes, total: int, sent: list[int], chunk: bytes, tail: bytes = b""):
    """A streamed body of about ``total`` bytes, counting in ``sent`` what the server produced: it stops
    producing soon after the client stops reading and closes the connection."""
    def body():
        yield head
        while sent[0] < total:
            sent[0] += len(chunk)
            yield chunk
        yield tail
    return body


def test_robots_txt_is_read_up_to_500_kib(crawler, make_site):
    site = make_site(sitekit.basic)
    sent = [0]
    head = b"User-agent: *\nDisallow: /b\n"
    line = b"# " + b"x" * 1021 + b"\n"
    body = _counting(head, 200 * 1024 * 1024, sent, line * 64, b"User-agent: *\nDisallow: /a\n")
    site.route("/robots.txt", lambda request: (200, TEXT, body()))
    root, _ = crawl(crawler, site.url("/"), max_depth=1)
    assert root.status == "completed"
    paths = saved_paths(crawler, site)
    assert "/b" not in paths and "/a" in paths  # the rule beyond the cap is not read
    assert sent[0] < 16 * 1024 * 1024  # the 200 MB body was not read to its end


def test_sitemap_bodies_are_capped(crawler, make_site, monkeypatch):
    monkeypatch.setattr(crawl_worker, "MAX_SITEMAP_BYTES", 1024 * 1024)
    site = make_site(sitekit.basic)
    sent = [0]
    head = urlset(site.url("/a1x")).replace("</urlset>", "").encode()
    filler = b"<url><loc>" + site.url("/never").encode() + b"</loc></url>\n"
    body = _counting(head, 300 * 1024 * 1024, sent, filler * 2000)
    site.route("/robots.txt", (200, TEXT, f"Sitemap: {site.url('/big.xml')}\n"))
    site.route("/big.xml", lambda request: (200, XML, body()))
    root, step = crawl(crawler, site.url("/"), max_depth=0, use_sitemap=True)
    assert root.status == "completed"
    assert "/a1x" in saved_paths(crawler, site)
    assert sent[0] < 32 * 1024 * 1024  # the 300 MB body was not read to its end
    lines = " ".join(line["message"] for line in crawler.logs.read([root.id], descendants=True))
    assert "cut off at 1048576 bytes" in lines


def test_nested_sitemap_indexes_are_read_once_each_and_bounded(crawler, make_site, monkeypatch):
    site = make_site(sitekit.basic)
    site.route("/robots.txt", (200, TEXT, f"Sitemap: {site.url('/s0.xml')}\n"))
    for level in range(8):  # each index lists the next level, itself and the first one: cycles everywhere
        site.route(f"/s{level}.xml", (200, XML, index(site.url(f"/s{level + 1}.xml"), site.url(f"/s{level}.xml"),
                                                      site.url("/s0.xml"))))
    root, _ = crawl(crawler, site.url("/"), max_depth=0, use_sitemap=True)
    assert root.status == "completed"
    read = [r.path for r in site.requests if r.path.startswith("/s")]
    depth = crawl_state.MAX_SITEMAP_NESTING
    assert sorted(read) == [f"/s{level}.xml" for level in range(depth + 1)]  # robots' s0, then 3 levels
    lines = " ".join(line["message"] for line in crawler.logs.read([root.id], descendants=True))
    assert f"sitemap indexes nest at most {depth} deep" in lines

    monkeypatch.setattr(crawler.plugins.record("crawler").state.books, "max_sitemaps", 5)
    wide = make_site(sitekit.basic)
    wide.route("/robots.txt", (200, TEXT, f"Sitemap: {wide.url('/wide.xml')}\n"))
    wide.route("/wide.xml", (200, XML, index(*(wide.url(f"/w{i}.xml") for i in range(40)))))
    root, _ = crawl(crawler, wide.url("/"), max_depth=0, use_sitemap=True)
    assert root.status == "completed"
    assert len([r for r in wide.requests if r.path.startswith("/w")]) == 5  # wide.xml and 4 of its 40
    lines = " ".join(line["message"] for line in crawler.logs.read([root.id], descendants=True))
    assert "36 sitemap(s) not read: a crawl reads at most 5" in lines


# ---------------------------------------------------------------------------------------------- ReDoS

@pytest.mark.timeout(60)
def test_a_pathological_pattern_runs_in_linear_time():
    hostile = "http://example.com/" + "a" * 8000 + "!"  # MAX_URL_LENGTH is 8192
    url_filter = UrlFilter(["example.com"], [], [r"(a+)+$", r"^(a|a)*$", r"(.*a){20}"])
    assert url_filter.check(hostile) == "excluded"  # (.*a){20} matches; the others never would, fast
    assert UrlFilter([], [r"(a+)+$"], []).check(hostile) == "not_included"
    assert UrlFilter([], [r"(a+)+$"], []).check("http://example.com/" + "a" * 8000) is None


@pytest.mark.timeout(120)
def test_a_crawl_with_a_pathological_pattern_finishes(crawler, make_site):
    site = make_site(sitekit.basic)
    site.link_from_home("/" + "a" * 4000 + "!")
    root, step = crawl(crawler, site.url("/"), max_depth=1, exclude_patterns=[r"(a+)+$"])
    assert root.status == "completed"
    paths = saved_paths(crawler, site)
    assert {"/", "/b"} <= paths and "/a" not in paths  # /a ends in a run of a's: excluded
    assert crawler.step_stats(step)["skipped_by_reason"]["http_404"] == 1  # the long link was followed


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(a)\1", "invalid escape sequence: \\1"), (r"/docs/(?=v2)", "invalid perl operator: (?="),
    (r"(?<!old)/page", "invalid perl operator: (?<"), (r"end\Z", "invalid escape sequence: \\Z"),
])
def test_a_pattern_re2_cannot_run_is_a_validation_error_saying_what_to_change(crawler, pattern, why):
    definition = {"name": "p", "steps": [{"name": "crawl", "action": "crawl", "config": {
        "start_urls": ["https://example.com/"], "include_patterns": [pattern]}}]}
    with pytest.raises(DefinitionError) as caught:
        crawler.definitions.parse(json.dumps(definition))
    message = caught.value.message
    assert why in message and "include_patterns" in message and "no backreferences" in message
    assert "rewrite the pattern" in message


def test_local_networks_are_what_the_tests_allow():
    assert LOCAL_NETWORKS == ["127.0.0.0/8", "::1/128"]
