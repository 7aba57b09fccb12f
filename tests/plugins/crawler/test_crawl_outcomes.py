"""Truthful outcomes of a crawl, end to end: a local site whose pages are saved, skipped by robots.txt, 404
and failed; every child records its outcome, and the counts agree in the store, the step's figures and the
API (root, step, children, per outcome). Also: a re-run's results, rates over the step's own run time,
jobs waiting for a per-host slot, the saved line at info."""

from __future__ import annotations

import json
import time
from collections import Counter

from outcome_site import EXPECTED, HOLD, outcome_site
from support import app_client, make_settings, wait_done, wait_for


def crawl(client, site, *, name="outcomes", **config):
    runtime = client.app.state.runtime
    config = {"start_urls": [site("/")], "per_host_delay_ms": 0, "max_depth": 1, **config}
    definition = runtime.definitions.parse(json.dumps(
        {"id": name, "name": name, "steps": [{"name": "crawl", "action": "crawl", "config": config}]}))
    return runtime.orchestrator.execute(definition)


def finished(client, root_id, timeout=60):
    runtime = client.app.state.runtime
    root = wait_done(runtime, root_id, timeout=timeout)
    runtime.orchestrator.wait_idle()
    runtime.logs.flush()
    [step] = runtime.jobs.children(root.id)
    return runtime.jobs.get(root.id), runtime.jobs.get(step.id)


def by_path(site, children):
    return {child["payload"]["config"]["url"][len(site.url):] or "/": child for child in children}


def test_every_child_records_its_outcome_and_the_counts_agree_everywhere(tmp_path):
    with outcome_site() as site, app_client(make_settings(tmp_path)) as client:
        root, step = finished(client, crawl(client, site))
        assert root.status == "completed" and step.status == "completed"

        children = client.get(f"/api/jobs/{step.id}/children", params={"limit": 100}).json()["items"]
        pages = by_path(site, children)
        assert {path: child["outcome"] for path, child in pages.items()} == EXPECTED
        assert pages["/reset"]["status"] == "failed" and pages["/reset"]["attempts"] == 3
        assert pages["/private/secret"]["status"] == "completed"  # skipped is not failed
        # A child that saved a document has one result; the others none.
        assert {path: child["result_count"] for path, child in pages.items()} == {
            path: 1 if outcome == "saved" else 0 for path, outcome in EXPECTED.items()}

        expected_counts = dict(Counter(EXPECTED.values()))
        step_json = client.get(f"/api/jobs/{step.id}").json()
        root_json = client.get(f"/api/jobs/{root.id}").json()
        assert step_json["outcomes"] == expected_counts == root_json["outcomes"]
        assert list(step_json["outcomes"]) == ["saved", "skipped:http_404", "skipped:robots", "failed"]
        stats = step_json["stats"]
        assert stats["pages_saved"] == 2 == step_json["result_count"] == root_json["result_count"]
        assert stats["pages_failed"] == 1 and stats["skipped_by_reason"] == {"robots": 1, "http_404": 1}
        assert step_json["counts"]["failed"] == 1 and step_json["counts"]["waiting"] == 0
        page = client.get(f"/jobs/{step.id}").text
        assert "http_404 1, robots 1" in page and "{&#39;" not in page  # skipped by reason, not a dict
        assert page.count('class="outcome outcome-skipped"') == 2 + 2  # the chips, then the badges

        def listed(outcome):
            answer = client.get(f"/api/jobs/{step.id}/children", params={"outcome": outcome})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["total"] == len(body["items"])
            return sorted(path for path in by_path(site, body["items"]))

        assert listed("skipped") == ["/missing", "/private/secret"]
        assert listed("skipped:robots") == ["/private/secret"]
        assert listed("SKIPPED:http_404") == ["/missing"]
        assert listed("saved") == ["/", "/a"]
        assert listed("failed") == ["/reset"]
        assert listed("unchanged") == []
        answer = client.get(f"/api/jobs/{step.id}/children", params={"outcome": "skipped", "status": "failed"})
        assert answer.json()["total"] == 0

        for bad in ("done", "kept:x", "skipped:Not A Reason!"):
            answer = client.get(f"/api/jobs/{step.id}/children", params={"outcome": bad})
            assert answer.status_code == 400, bad
            message = answer.json()["error"]
            assert "saved, unchanged, skipped, failed" in message and "skipped:robots" in message
            assert "this job's children have: saved, skipped:http_404, skipped:robots, failed" in message

        # The saved pages are logged at info, one line each.
        lines = client.get(f"/api/jobs/{root.id}/logs",
                           params={"include_children": "1", "level": "info", "limit": 5000}).json()["items"]
        saved_lines = [line for line in lines if line["message"].startswith("saved ")]
        assert sorted(line["message"].split()[1] for line in saved_lines) == [site("/"), site("/a")]
        assert all(line["level"] == "info" for line in saved_lines)


def test_a_rerun_counts_the_pages_it_found_unchanged_as_its_results(tmp_path):
    with outcome_site() as site, app_client(make_settings(tmp_path)) as client:
        finished(client, crawl(client, site, max_depth=0))
        root, step = finished(client, crawl(client, site, max_depth=0))
        children = client.get(f"/api/jobs/{step.id}/children").json()["items"]
        assert [(child["outcome"], child["result_count"]) for child in children] == [("unchanged", 1)]
        stats = client.get(f"/api/jobs/{step.id}").json()["stats"]
        assert stats["pages_saved"] == 1 == step.result_count == root.result_count
        runtime = client.app.state.runtime
        assert runtime.documents.get_by_ref("web", site("/")).job_id == children[0]["id"]


def test_a_finished_steps_rate_is_over_its_own_run_time(tmp_path):
    with outcome_site() as site, app_client(make_settings(tmp_path)) as client:
        _, step = finished(client, crawl(client, site))
        first = client.get(f"/api/jobs/{step.id}").json()["stats"]["pages_per_s"]
        assert first == round(2 / (step.finished_at - step.started_at), 2)
        time.sleep(1.2)  # time passes; a rate against "now" would fall
        assert client.get(f"/api/jobs/{step.id}").json()["stats"]["pages_per_s"] == first


def test_jobs_waiting_for_a_per_host_slot_are_shown_as_waiting(tmp_path):
    settings = make_settings(tmp_path, worker_threads=4)
    with outcome_site() as site, app_client(settings) as client:
        holds = [site(f"{HOLD}{i}") for i in range(3)]
        root_id = crawl(client, site, start_urls=holds, per_host_concurrency=1, respect_robots_txt=False,
                        max_depth=0)
        runtime = client.app.state.runtime

        def step_waiting():
            steps = runtime.jobs.children(root_id)
            if not steps:
                return None
            body = client.get(f"/api/jobs/{steps[0].id}").json()
            return body if body["counts"]["waiting"] >= 2 and body["counts"]["running"] == 1 else None

        step = wait_for(step_waiting, 30, what="two children waiting for the host's one slot")
        children = client.get(f"/api/jobs/{step['id']}/children").json()["items"]
        waiting = [child for child in children if child["waiting"]]
        assert len(waiting) == 2 and all(child["status"] == "running" for child in waiting)
        assert all(child["waiting"] == f"a per-host slot for {site.url[len('http://'):]}" for child in waiting)
        assert "1 running, 2 waiting" in step["progress_text"]
        page = client.get(f"/jobs/{step['id']}").text
        assert page.count('class="status status-waiting"') == 2
        site.release.set()
        root, step_job = finished(client, root_id)
        assert root.status == "completed"
        children = client.get(f"/api/jobs/{step_job.id}/children").json()["items"]
        assert [child["waiting"] for child in children] == [None, None, None]
        assert [child["outcome"] for child in children] == ["saved", "saved", "saved"]
