"""Re-run failed children and bulk actions over the API and the pages: answers, errors, roles, CSRF."""

from __future__ import annotations

import re

import pytest
from support import csrf_of, wait_done, wait_for
from test_accounts import VIEWER_PASSWORD, signed_in

FAILING = """id: failing
name: Failing items
steps:
  - {name: fan, action: test_fanout, config: {count: 6, fail_every: 3}}
"""


@pytest.fixture
def finished(runtime):
    """One finished execution of a step whose children 2 and 5 failed."""
    runtime.definitions.create(FAILING)
    root = wait_done(runtime, runtime.orchestrator.execute("failing"))
    [step] = runtime.jobs.children(root.id)
    assert step.count_failed == 2
    return root, step


def test_rerun_failed_over_the_api(client, runtime, finished):
    root, step = finished
    answer = client.post(f"/api/jobs/{step.id}/rerun-failed")
    assert answer.status_code == 200, answer.text
    assert answer.json()["requeued"] == 2 and answer.json()["job_id"] == step.id
    # While its execution runs again, another re-run is refused with what to do.
    again = client.post(f"/api/jobs/{root.id}/rerun-failed", json={"include_cancelled": True})
    if again.status_code == 409:
        assert "still running" in again.json()["error"]
    wait_for(lambda: runtime.jobs.get(root.id).is_terminal, 30)
    assert runtime.jobs.get(root.id).status == "completed"
    assert runtime.jobs.counts(step.id) == runtime.jobs.recount(step.id)
    child = runtime.jobs.children(step.id, limit=1)[0]
    refused = client.post(f"/api/jobs/{child.id}/rerun-failed")
    assert refused.status_code == 409 and "from a step or an execution" in refused.json()["error"]
    assert client.post("/api/jobs/job_nope/rerun-failed").status_code == 404
    bad = client.post(f"/api/jobs/{step.id}/rerun-failed", json={"include_cancelled": "yes"})
    assert bad.status_code == 400 and bad.json()["detail"][0]["path"] == "include_cancelled"


def test_bulk_dry_run_then_do(client, runtime, finished):
    root, step = finished
    failed = {"status": "failed", "type": "test_task"}
    dry = client.post("/api/jobs/bulk", json={"action": "delete", "filter": failed, "dry_run": True})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["matched"] == 2 and len(body["ids"]) == 2 and body["by_status"] == {"failed": 2}
    assert body["dry_run"] is True and body["confirm_required"] is False
    assert runtime.jobs.counts(step.id).failed == 2  # nothing changed

    changed = client.post("/api/jobs/bulk", json={"action": "delete", "filter": failed, "confirm_count": 3})
    assert changed.status_code == 409 and "now matches 2 jobs, not the 3" in changed.json()["error"]
    done = client.post("/api/jobs/bulk", json={"action": "delete", "filter": failed, "confirm_count": 2}).json()
    assert done["done"] == 2 and done["jobs_removed"] == 2 and done["skipped"] == {}
    step_now = runtime.jobs.get(step.id)
    assert step_now.count_failed == 0 and runtime.jobs.counts(step.id) == runtime.jobs.recount(step.id)

    # Cancel skips what is finished, and says why.
    cancelled = client.post("/api/jobs/bulk", json={"action": "cancel", "filter": {"type": "parent"}}).json()
    assert cancelled["done"] == 0 and cancelled["skipped"] == {"finished": 1}
    # Rerun of the execution: a fresh one of its definition.
    rerun = client.post("/api/jobs/bulk", json={"action": "rerun", "filter": {"definition_id": "failing",
                                                                               "type": "parent"}}).json()
    assert rerun["done"] == 1 and len(rerun["started"]) == 1
    wait_done(runtime, rerun["started"][0])


@pytest.mark.parametrize(("body", "path", "words"), [
    ({"action": "purge"}, "action", "'cancel', 'delete' or 'rerun'"),
    ({"action": "cancel", "filter": {"colour": "red"}}, "filter", "the filter takes: status, type, parent_id"),
    ({"action": "cancel", "filter": {"status": "stuck"}}, "filter.status", "'pending', 'running'"),
    ({"action": "cancel", "dry_run": "yes"}, "dry_run", "true or false"),
    ({"action": "cancel", "confirm_count": -1}, "confirm_count", "greater than or equal to 0"),
    ({"filter": {}}, "action", "required"),
])
def test_bad_bulk_input_is_a_400_naming_what_is_allowed(client, body, path, words):
    answer = client.post("/api/jobs/bulk", json=body)
    assert answer.status_code == 400, answer.text
    problem = answer.json()["detail"][0]
    assert problem["path"] == path and words in problem["message"], problem


def test_the_openapi_document_describes_both_endpoints(client):
    document = client.get("/api/openapi.json").json()
    bulk = document["paths"]["/api/jobs/bulk"]["post"]
    assert bulk["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BulkInput"}
    assert {"200", "400", "409", "401", "403"} <= set(bulk["responses"])
    assert "/api/jobs/{id}/rerun-failed" in document["paths"]
    assert "BulkResult" in document["components"]["schemas"]


def test_the_pages_confirm_then_act(client, runtime, finished):
    root, step = finished
    job_page = client.get(f"/jobs/{step.id}").text
    assert f'href="/jobs/{step.id}/rerun-failed">Re-run failed children (2)…' in job_page
    assert "Re-run failed children (2)…" in client.get(f"/jobs/{root.id}").text  # from the execution too
    confirm = client.get(f"/jobs/{step.id}/rerun-failed")
    assert confirm.status_code == 200 and "2 failed child jobs" in confirm.text
    token = csrf_of(client, f"/jobs/{step.id}/rerun-failed")
    assert client.post(f"/jobs/{step.id}/rerun-failed", data={}).status_code == 403  # no CSRF token
    done = client.post(f"/jobs/{step.id}/rerun-failed", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/jobs/{step.id}?done=rerun-failed"
    wait_for(lambda: runtime.jobs.get(root.id).is_terminal, 30)

    # Bulk: the jobs page offers it for its filter; the confirmation counts; the post acts and reports.
    listing = client.get("/jobs?status=failed&type=test_task").text
    assert 'action="/jobs/bulk"' in listing and "Bulk actions…" in listing
    dry = client.get("/jobs/bulk?action=delete&status=failed&type=test_task")
    assert dry.status_code == 200 and re.search(r'id="bulk-matched">2<', dry.text)
    assert 'name="confirm_count" value="2"' in dry.text
    form = {"csrf_token": token, "action": "delete", "status": "failed", "type": "test_task", "confirm_count": "2"}
    report = client.post("/jobs/bulk", data=form)
    assert report.status_code == 200 and re.search(r'id="bulk-done"><strong>2</strong> jobs deleted', report.text)
    assert runtime.jobs.get(step.id).count_failed == 0
    stale = client.post("/jobs/bulk", data=form)  # the same confirmation again: the count changed since
    assert stale.status_code == 409 and "now matches 0 jobs, not the 2" in stale.text
    bad = client.get("/jobs/bulk?action=purge")
    assert bad.status_code == 400 and "one of cancel, delete, rerun" in bad.text


def test_a_viewer_may_not_use_them(client, runtime, finished):
    root, step = finished
    runtime.accounts.add("ada", "admin", "admin-password-1")
    runtime.accounts.add("vic", "viewer", VIEWER_PASSWORD)
    viewer = signed_in(client, "vic", VIEWER_PASSWORD)
    token = csrf_of(viewer, "/jobs")
    assert viewer.get("/jobs/bulk?action=delete&type=parent").status_code == 403
    assert viewer.get(f"/jobs/{step.id}/rerun-failed").status_code == 403
    assert "Re-run failed children" not in viewer.get(f"/jobs/{step.id}").text
    assert "Bulk actions…" not in viewer.get("/jobs").text
    refused = viewer.post("/api/jobs/bulk", json={"action": "delete", "dry_run": True},
                          headers={"X-CSRF-Token": token})
    assert refused.status_code == 403
    assert viewer.post(f"/api/jobs/{step.id}/rerun-failed", headers={"X-CSRF-Token": token}).status_code == 403
    assert runtime.jobs.get(step.id).count_failed == 2
