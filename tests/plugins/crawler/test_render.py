"""Crawls that render pages in Chromium (``render: auto | always``), end to end, against local sites on
127.0.0.1 whose pages a script draws (``spakit.py``).

The system Chromium drives them through Playwright. Without either, the tests skip on a user's machine
and fail in CI (``CI=true``), where both must be installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import spakit
import yaml
from sitekit import saved
from support import IN_CI, make_settings, wait_done, wait_for

from quaero.runtime import Runtime
from quaero.stores.jsonutil import loads
from quaero_plugins.crawler.render import BROWSER_NAMES

#: The browser a user's crawl would find (the headless shell first), as the tests render with it.
CHROMIUM = next((found for name in BROWSER_NAMES if (found := shutil.which(name))), "/usr/bin/chromium")
EXAMPLES = Path(__file__).resolve().parents[3] / "job-definitions"
RENDERED_EXAMPLES = ["crawl-confluence-space.yaml", "crawl-jira-project.yaml"]


def need_browser() -> None:
    """Skip when Playwright or Chromium is missing on a user's machine; fail in CI, where both must be."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("Playwright is not installed (pip install 'quaero[browser]')")
    if not Path(CHROMIUM).exists():
        missing.append("no Chromium on PATH (apt-get install chromium-headless-shell)")
    if missing:
        message = "; ".join(missing)
        if IN_CI:
            pytest.fail(message + " (CI=true: the browser must be there)")
        pytest.skip(message)


@pytest.fixture
def chromium() -> str:
    """The browser the tests render with (see :func:`need_browser`)."""
    need_browser()
    return CHROMIUM


def render_settings(tmp_path, browser_path, **overrides):
    """Test settings whose crawler renders with ``browser_path``, two browser contexts per process."""
    crawler = {"browser_path": browser_path, "browser_contexts": 2}
    return make_settings(tmp_path, **{"worker_threads": 4, "plugins": {"crawler": crawler}, **overrides})


@pytest.fixture
def renderer(tmp_path, chromium):
    runtime = Runtime(render_settings(tmp_path, chromium), role="run")
    runtime.start()
    yield runtime
    runtime.stop()


def definition(runtime, site, path="/", **config):
    config = {"start_urls": [site.url(path)], "per_host_delay_ms": 0, **config}
    return runtime.definitions.parse(json.dumps(
        {"name": "render test", "steps": [{"name": "crawl", "action": "crawl", "config": config}]}))


def run_crawl(runtime, site, path="/", wait=60, **config):
    """Run a one-step crawl from ``path`` on ``site`` and wait for it; returns the root and step jobs."""
    root = wait_done(runtime, runtime.orchestrator.execute(definition(runtime, site, path, **config)), timeout=wait)
    [step] = runtime.jobs.children(root.id)
    return root, step


def page_job(runtime, step, url):
    """The child job of the crawl that fetched ``url``."""
    [job] = [job for job in runtime.jobs.children(step.id, limit=1000) if job.config.get("url") == url]
    return job


def log_lines(runtime, job) -> list[str]:
    return [line["message"] for line in runtime.logs.read([job.id])]


def rendered_line(runtime, job, url, why) -> list[str]:
    """The job's log lines that say it rendered ``url`` and why."""
    return [line for line in log_lines(runtime, job) if line.startswith(f"rendered {url} ({why})")]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


# ------------------------------------------------------------------------------------ processes in /proc

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name, in parentheses, may hold spaces
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _is_chromium(pid: int) -> bool:
    program = _cmdline(pid).split(b"\0")[0]
    return b"chrom" in os.path.basename(program).lower()


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """The live processes below ``pid`` (children, their children...)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] not in ("Z", "X"):
            parents[int(entry)] = stat[1]
    found, level = set(), {pid}
    while level:
        level = {child for child, parent in parents.items() if parent in level} - found
        found |= level
    return found


def chromium_under(pid: int) -> set[int]:
    """The Chromium processes below ``pid``."""
    return {child for child in descendants(pid) if _is_chromium(child)}


def browser_processes(pid: int) -> set[int]:
    """The Chromium browser processes below ``pid``: those whose parent is not Chromium and that have no
    ``--type=`` (the others are its zygotes, renderers, GPU and utility processes)."""
    under = chromium_under(pid)
    return {child for child in under if (stat := _stat(child)) is not None and stat[1] not in under
            and b"--type=" not in _cmdline(child)}


# ---------------------------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("render", ["always", "auto"])
def test_a_single_page_app_is_saved_with_its_drawn_text_and_its_drawn_links_followed(renderer, make_site, render):
    site = make_site(spakit.spa)
    root, step = run_crawl(renderer, site, max_depth=2, render=render)
    assert root.status == "completed"
    docs = saved(renderer, site)
    assert set(docs) == set(spakit.SPA_PAGES)  # the links exist only in the drawn DOM
    for path, word in spakit.SPA_WORDS.items():
        assert word in docs[path].markdown, path
        assert len(site.requests_for(path)) == 1, f"{path} was fetched more than once"
    home = loads(docs["/"].metadata)
    assert site.url("/docs/one") in home["links"] and home["depth"] == 0
    assert loads(docs["/docs/three"].metadata)["depth"] == 2
    if render == "always":
        assert home["rendered"] == "always"
    else:
        assert home["rendered"].startswith("auto: mount point #root"), home["rendered"]
    stats = renderer.step_stats(renderer.jobs.get(step.id))
    assert stats["pages_rendered"] == len(spakit.SPA_PAGES)
    assert nonzero(stats["rendered_by_reason"]) == {"always" if render == "always" else "mount_point": 4}
    job = page_job(renderer, step, site.url("/"))
    assert rendered_line(renderer, job, site.url("/"), home["rendered"])
    assert job.data["result"]["rendered"] == home["rendered"]


def test_without_rendering_the_shell_is_saved_without_its_text(renderer, make_site):
    # What the rendering tests would see if nothing rendered: they would fail.
    site = make_site(spakit.spa)
    root, step = run_crawl(renderer, site, max_depth=2, render="never")
    docs = saved(renderer, site)
    assert set(docs) == {"/"} and spakit.SPA_WORDS["/"] not in docs["/"].markdown
    assert "rendered" not in loads(docs["/"].metadata)
    assert not site.requests_for("/static/app.js")
    assert renderer.step_stats(renderer.jobs.get(step.id))["pages_rendered"] == 0


def test_a_server_rendered_page_is_not_rendered_under_auto(renderer, make_site):
    site = make_site(spakit.server_rendered)
    _, step = run_crawl(renderer, site, "/article", max_depth=0, render="auto")
    doc = saved(renderer, site)["/article"]
    assert spakit.ARTICLE_WORD in doc.markdown and "rendered" not in loads(doc.metadata)
    assert not site.requests_for("/_next/app.js")  # no browser ran its script
    stats = renderer.step_stats(renderer.jobs.get(step.id))
    assert stats["pages_rendered"] == 0 and nonzero(stats["rendered_by_reason"]) == {}


@pytest.mark.parametrize("kind", list(spakit.SHELL_KINDS))
def test_a_script_shell_under_auto_is_rendered_and_says_why(renderer, make_site, kind):
    site = make_site(spakit.shells)
    url = site.url(f"/shell/{kind}")
    _, step = run_crawl(renderer, site, f"/shell/{kind}", max_depth=0, render="auto")
    doc = saved(renderer, site)[f"/shell/{kind}"]
    assert "shellword" in doc.markdown
    why = loads(doc.metadata)["rendered"]
    assert why.startswith("auto: "), why
    if kind == "mount_point":
        assert "#root" in why
    stats = renderer.step_stats(renderer.jobs.get(step.id))
    assert stats["pages_rendered"] == 1 and nonzero(stats["rendered_by_reason"]) == {kind: 1}
    assert rendered_line(renderer, page_job(renderer, step, url), url, why)


def test_a_scripts_request_to_a_refused_address_never_leaves_and_is_logged(tmp_path, make_site, chromium):
    # 127.0.0.3 is a private address this runtime does not allow (its local sites are .1 and .2): a real
    # server there shows that the refused request reached nothing.
    refused = make_site(spakit.widget, address="127.0.0.3")
    other = make_site(spakit.widget, address="127.0.0.2")
    metadata_url = "http://169.254.169.254/latest/meta-data"
    site = make_site(lambda s: spakit.outbound(s, refused=[metadata_url, refused.url("/widget-data")],
                                               widget=other.url("/widget.js")))
    runtime = Runtime(render_settings(tmp_path, chromium, allow_private_networks=["127.0.0.1/32", "127.0.0.2/32"]),
                      role="run")
    runtime.start()
    try:
        root, step = run_crawl(runtime, site, "/outbound", max_depth=0, render="always")
        doc = saved(runtime, site)["/outbound"]
        assert "outboundword" in doc.markdown and "widgetword" in doc.markdown
        assert refused.requests == []
        assert [r.path for r in other.requests] == ["/widget.js", "/widget-data"]  # another allowed host: fine
        lines = log_lines(runtime, page_job(runtime, step, site.url("/outbound")))
        for url in (metadata_url, refused.url("/widget-data")):
            assert [line for line in lines if url in line and "refused" in line], (url, lines)
    finally:
        runtime.stop()


def test_stored_credentials_go_with_the_pages_own_requests_and_not_to_a_third_party(renderer, make_site):
    third = make_site(spakit.widget, address="127.0.0.2")
    site = make_site(lambda s: spakit.members_app(s, third_party=third.url("/widget.js")))
    run_crawl(renderer, site, "/members/app", max_depth=0, render="always")
    assert "notamemberword" in saved(renderer, site)["/members/app"].markdown  # without them: refused
    renderer.credentials.save("members", base_url=site.url("/"), cookies=dict([spakit.MEMBERS_COOKIE]))
    third.clear_requests()
    run_crawl(renderer, site, "/members/app", max_depth=0, render="always", auth_id="members")
    text = saved(renderer, site)["/members/app"].markdown
    assert spakit.MEMBER_WORD in text and "notamemberword" not in text
    assert site.requests_for("/members/data.json")[-1].cookies == dict([spakit.MEMBERS_COOKIE])
    assert "/widget-data" in [r.path for r in third.requests]  # (its script may come from the cache)
    assert [r.target for r in third.requests if "Cookie" in r.headers or "Authorization" in r.headers] == []


@pytest.mark.parametrize(("resources", "fetched"), [
    ([], set()), (["image"], {"/pic.png"}), (["image", "font"], {"/pic.png", "/font.woff2"})])
def test_images_and_fonts_are_not_fetched_unless_render_resources_asks(renderer, make_site, resources, fetched):
    site = make_site(spakit.media)
    extra = {"render_resources": resources} if resources else {}
    run_crawl(renderer, site, "/gallery", max_depth=0, render="always", **extra)
    assert "galleryword" in saved(renderer, site)["/gallery"].markdown
    assert len(site.requests_for("/style.css")) == 1  # the page was rendered, its stylesheet read
    assert {path for path in ("/pic.png", "/font.woff2") if site.requests_for(path)} == fetched


def test_a_page_that_never_goes_quiet_fails_within_its_render_timeout(renderer, make_site):
    site = make_site(spakit.restless)
    begun = time.monotonic()
    root, step = run_crawl(renderer, site, "/restless", max_depth=0, render="always", render_timeout=3)
    elapsed = time.monotonic() - begun
    [job] = renderer.jobs.children(step.id)
    assert job.status == "failed" and job.attempts == 1, (job.status, job.attempts)  # not retried
    message = job.error_message
    assert site.url("/restless") in message and re.search(r"\b3(\.0)? ?s\b", message), message
    assert "quiet" in message or "render_timeout" in message, message
    assert job.finished_at - job.started_at < 3 + 3 and elapsed < 3 + 6, (job.finished_at - job.started_at, elapsed)
    assert len(site.requests_for(path="/tick")) >= 3  # it ran, and kept asking
    assert saved(renderer, site) == {} and root.status == "failed"


def test_starting_the_browser_does_not_count_against_the_first_pages_render_timeout(renderer, make_site):
    # The page renders in well under a second; Chromium takes about as long again to start (more on a busy
    # machine) for the first page of a process, which must not fail that page.
    site = make_site(spakit.spa)
    root, step = run_crawl(renderer, site, max_depth=0, render="always", render_timeout=1, render_quiet_ms=50)
    [job] = renderer.jobs.children(step.id)
    assert root.status == "completed", job.error_message
    assert spakit.SPA_WORDS["/"] in saved(renderer, site)["/"].markdown


def test_wait_for_a_selector_ends_the_render_of_a_page_that_never_goes_quiet(renderer, make_site):
    site = make_site(spakit.restless)
    root, _ = run_crawl(renderer, site, "/restless", max_depth=0, render="always", render_timeout=3,
                        wait_for=spakit.RESTLESS_SELECTOR)
    assert root.status == "completed"
    assert "restlessword" in saved(renderer, site)["/restless"].markdown


def test_a_wait_for_selector_that_never_appears_fails_the_page_naming_it(renderer, make_site):
    site = make_site(spakit.spa)
    _, step = run_crawl(renderer, site, max_depth=0, render="always", render_timeout=2, wait_for="#never-there")
    [job] = renderer.jobs.children(step.id)
    assert job.status == "failed" and "#never-there" in job.error_message, job.error_message
    assert saved(renderer, site) == {}


def test_cancelling_a_crawl_mid_render_stops_its_job_within_two_seconds(renderer, make_site):
    site = make_site()
    asked = spakit.held(site, seconds=30)
    root_id = renderer.orchestrator.execute(definition(renderer, site, "/held", max_depth=0, render="always"))
    assert asked.wait(30), "the page's script never asked for its data"
    step = renderer.jobs.children(root_id)[0]
    [job] = renderer.jobs.children(step.id, status="running")
    begun = time.monotonic()
    renderer.orchestrator.cancel(root_id)
    wait_for(lambda: "stopped: the job was cancelled" in log_lines(renderer, job), 5,
             what="the rendering job to stop")
    assert time.monotonic() - begun < 2.5
    assert wait_done(renderer, root_id).status == "cancelled" and saved(renderer, site) == {}
    # The pool still renders after a page was abandoned in the middle.
    spa = make_site(spakit.spa)
    assert run_crawl(renderer, spa, max_depth=0, render="always")[0].status == "completed"
    assert spakit.SPA_WORDS["/"] in saved(renderer, spa)["/"].markdown


def test_sigkill_of_a_worker_mid_render_resumes_every_page_once_and_leaves_no_chromium(tmp_path, make_site, chromium):
    site = make_site(lambda s: spakit.spa(s, extra_pages=4, data_delay=0.3))
    expected = set(spakit.SPA_PAGES) | {f"/more/{i}" for i in range(4)}
    runtime = Runtime(render_settings(tmp_path, chromium, worker_processes=1, queue_lease_ms=1500), role="run")
    runtime.start()
    try:
        root_id = runtime.orchestrator.execute(definition(runtime, site, max_depth=2, render="always"))
        wait_for(lambda: len(saved(runtime, site)) >= 2, 60, what="a few rendered pages")
        [pid] = runtime.supervisor.pids()
        browsers = chromium_under(pid)
        assert browsers, "no Chromium below the worker process"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not [p for p in browsers if _alive(p)], 15,
                 what=f"the killed worker's Chromium processes {sorted(browsers)} to end")
        root = wait_done(runtime, root_id, timeout=90)
        assert root.status == "completed"
        docs = saved(runtime, site)
        assert set(docs) == expected
        assert all(spakit.SPA_WORDS.get(path, path.replace("/more/", "moreword")) in doc.markdown
                   for path, doc in docs.items())
        [step] = runtime.jobs.children(root_id)
        assert runtime.jobs.get(step.id).result_count == len(expected)  # each saved once
    finally:
        runtime.stop()


def test_the_browser_pool_relaunches_a_killed_chromium_and_the_page_in_flight_is_retried(tmp_path, make_site, chromium):
    site = make_site(lambda s: spakit.spa(s, extra_pages=3, data_delay=0.3))
    expected = set(spakit.SPA_PAGES) | {f"/more/{i}" for i in range(3)}
    runtime = Runtime(render_settings(tmp_path, chromium, worker_processes=1), role="run")
    runtime.start()
    try:
        root_id = runtime.orchestrator.execute(definition(runtime, site, max_depth=2, render="always"))
        wait_for(lambda: len(saved(runtime, site)) >= 2, 60, what="two rendered pages")
        # A page in flight: its data asked for and not answered yet.
        wait_for(lambda: [r for r in site.requests_for(path="/api/page") if r.status is None], 20,
                 interval=0.005, what="a render in flight")
        [pid] = runtime.supervisor.pids()
        [browser] = browser_processes(pid)
        os.kill(browser, signal.SIGKILL)
        root = wait_done(runtime, root_id, timeout=90)
        assert root.status == "completed"
        docs = saved(runtime, site)
        assert set(docs) == expected and all(loads(doc.metadata)["rendered"] == "always" for doc in docs.values())
        [step] = runtime.jobs.children(root_id)
        retried = [job for job in runtime.jobs.children(step.id, limit=1000) if job.attempts > 1]
        assert retried, "no page was retried after its browser died"
        assert browser_processes(pid) - {browser}, "no Chromium was launched again"
    finally:
        runtime.stop()


def test_a_rendered_pages_requests_keep_the_hosts_delay(tmp_path, make_site, chromium):
    site = make_site(spakit.spa)
    # The pages render in a worker process: the times this process's server records are then not
    # delayed by the renderer's threads holding its GIL.
    runtime = Runtime(render_settings(tmp_path, chromium, worker_processes=1), role="run")
    runtime.start()
    try:
        run_crawl(runtime, site, max_depth=1, render="always", per_host_delay_ms=300, per_host_concurrency=1)
        assert set(saved(runtime, site)) == {"/", "/docs/one", "/docs/two"}
    finally:
        runtime.stop()
    requests = [r for r in site.requests if r.path != "/robots.txt"]
    assert {"/", "/static/app.js", "/api/page", "/docs/one", "/docs/two"} <= {r.path for r in requests}
    gaps = [round(b.time - a.time, 3) for a, b in zip(requests, requests[1:])]
    # 300 ms apart, less the scheduling jitter of a loaded machine (without the delay they are ~10 ms apart).
    assert min(gaps) >= 0.25, list(zip([r.target for r in requests[1:]], gaps))


def test_stopping_the_runtime_ends_its_browsers(tmp_path, make_site, chromium):
    site = make_site(spakit.spa)
    before = chromium_under(os.getpid())
    runtime = Runtime(render_settings(tmp_path, chromium), role="run")
    runtime.start()
    try:
        run_crawl(runtime, site, max_depth=0, render="always")
        launched = chromium_under(os.getpid()) - before
        assert launched, "no Chromium below this process although a page was rendered"
    finally:
        runtime.stop()
    wait_for(lambda: not [p for p in launched if _alive(p)], 10, what="the runtime's Chromium to end")


@pytest.mark.parametrize("missing", ["chromium", "playwright"])
def test_a_missing_browser_fails_the_page_saying_how_to_get_one(tmp_path, make_site, monkeypatch, missing):
    site = make_site(spakit.spa)
    browser_path = str(tmp_path / "no-chromium") if missing == "chromium" else CHROMIUM
    if missing == "playwright":  # as if the browser extra were not installed (the workers are threads here)
        monkeypatch.setitem(sys.modules, "playwright", None)
        monkeypatch.setitem(sys.modules, "playwright.async_api", None)
    runtime = Runtime(render_settings(tmp_path, browser_path), role="run")
    runtime.start()
    try:
        root, step = run_crawl(runtime, site, max_depth=0, render="always")
        [job] = runtime.jobs.children(step.id)
        assert root.status == "failed" and job.status == "failed" and job.attempts == 1
        fix = "browser_path" if missing == "chromium" else "pip install 'quaero[browser]'"
        assert fix in job.error_message, job.error_message
    finally:
        runtime.stop()


# ------------------------------------------------------------------------------------- example definitions

@pytest.mark.parametrize("example", sorted(path.name for path in EXAMPLES.glob("*.yaml")))
def test_every_shipped_definition_validates(runtime, example):
    runtime.definitions.parse((EXAMPLES / example).read_text())


@pytest.mark.parametrize("example", RENDERED_EXAMPLES)
def test_the_rendered_examples_render_with_stored_credentials(runtime, example):
    source = (EXAMPLES / example).read_text()
    runtime.definitions.parse(source)
    [step] = yaml.safe_load(source)["steps"]
    config = step["config"]
    assert step["action"] == "crawl" and config["render"] == "auto" and config["auth_id"] and config["wait_for"]
    assert "stored credentials" in source and "reachable" in source
