"""Webhooks end to end: real executions, a real receiver on 127.0.0.1, the real outbound policy and SQLite file."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support import execute, make_settings, wait_for
from webhook_receiver import receiving

from quaero.engine.webhooks import backoff
from quaero.runtime import Runtime
from quaero.web.app import create_app

SECRET = "whsec-Vq8Lm2Rt5Yx9Kc3Jh7Pz"
FANOUT = """name: hooked
steps:
  - {name: fan, action: test_fanout, config: {count: 3, save_documents: true}}
"""
FAST = dict(webhook_backoff=0.05, webhook_backoff_max=0.2, webhook_timeout=5)


def settings_for(tmp_path: Path, url: str, **overrides):
    values = {**FAST, "webhooks": [{"url": url + "/hook?tag=x", "secret": SECRET}], **overrides}
    return make_settings(tmp_path, **values)


def deliveries(runtime: Runtime, job_id: str) -> list[dict]:
    return runtime.webhooks.for_job(job_id)[0]


def settled(runtime: Runtime, job_id: str, count: int):
    def check():
        found = deliveries(runtime, job_id)
        return found if len(found) == count and all(d["status"] != "pending" for d in found) else None

    return check


def test_an_execution_sends_started_and_completed_signed_with_counts_and_links(tmp_path):
    with receiving() as receiver:
        settings = settings_for(tmp_path, receiver.url, public_url="https://quaero.example.com/")
        with Runtime(settings, role="run") as runtime:
            job_id = execute(runtime, FANOUT)
            wait_for(settled(runtime, job_id, 2), what="both deliveries")
            rows = deliveries(runtime, job_id)
        assert receiver.events() == ["started", "completed"]
        for request in receiver.requests:
            assert request.signed_with(SECRET)
            assert not request.signed_with("another secret")
            assert request.path == "/hook?tag=x"
            assert request.headers["content-type"] == "application/json"
            assert request.headers["x-quaero-delivery"] == request.json["delivery_id"]
        started, completed = (r.json for r in receiver.requests)
        assert started["event"] == "started" and started["execution"]["status"] == "running"
        body = completed["execution"]
        assert body["id"] == job_id and body["name"] == "hooked" and body["definition_id"] == "hooked"
        assert body["status"] == "completed" and body["error"] is None
        assert body["result_count"] == 3 and body["counts"]["completed"] == 1  # one step, done
        step = body["steps"][0]
        assert step["name"] == "fan" and step["action"] == "test_fanout" and step["counts"]["completed"] == 3
        assert step["result_count"] == 3
        assert body["finished_at"] and body["duration_s"] is not None
        assert completed["links"] == {"page": f"https://quaero.example.com/jobs/{job_id}",
                                      "api": f"https://quaero.example.com/api/jobs/{job_id}",
                                      "webhooks": f"https://quaero.example.com/api/jobs/{job_id}/webhooks"}
        # Each transition once: no event sent twice, and the query string is not kept in clear.
        assert [(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in rows] == [
            ("started", "delivered", 1, 200), ("completed", "delivered", 1, 200)]
        assert rows[0]["url"] == receiver.url + "/hook"


def test_a_500_is_retried_and_the_attempts_show_in_the_api_and_on_the_page(tmp_path):
    with receiving(500) as receiver:
        settings = settings_for(tmp_path, receiver.url, webhooks=[
            {"url": receiver.url + "/hook", "secret": SECRET, "events": ["completed"]}])
        runtime = Runtime(settings, role="run")
        runtime.start()
        try:
            with TestClient(create_app(settings, runtime=runtime)) as client:
                job_id = execute(runtime, FANOUT)
                wait_for(settled(runtime, job_id, 1), what="the delivery")
                answer = client.get(f"/api/jobs/{job_id}/webhooks")
                section = client.get(f"/jobs/{job_id}/webhooks", headers={"HX-Request": "true"}).text
                page = client.get(f"/jobs/{job_id}").text
        finally:
            runtime.stop()
    assert receiver.events() == ["completed", "completed"]
    assert all(request.signed_with(SECRET) for request in receiver.requests)
    # The same delivery both times: a receiver can drop a repeat by its id.
    assert len({request.headers["x-quaero-delivery"] for request in receiver.requests}) == 1
    assert answer.status_code == 200
    (item,) = answer.json()["items"]
    assert item["status"] == "delivered" and item["attempts"] == 2 and item["last_status_code"] == 200
    assert 'data-attempts="2"' in section and "delivered" in section and "/hook" in section
    assert 'id="job-webhooks"' in page and f'hx-get="/jobs/{job_id}/webhooks"' in page
    assert SECRET not in section and SECRET not in page and SECRET not in answer.text


def test_a_400_is_not_retried_and_the_answer_is_kept(tmp_path):
    with receiving(400, 400) as receiver:
        settings = settings_for(tmp_path, receiver.url, webhooks=[
            {"url": receiver.url + "/hook", "secret": SECRET, "events": ["completed"]}])
        with Runtime(settings, role="run") as runtime:
            job_id = execute(runtime, FANOUT)
            (delivery,) = wait_for(settled(runtime, job_id, 1), what="the delivery")
            time.sleep(0.5)  # several backoffs' time: a retry would have come by now
            assert len(receiver.requests) == 1
    assert delivery["status"] == "failed" and delivery["attempts"] == 1 and delivery["last_status_code"] == 400
    assert "HTTP 400" in delivery["last_error"] and "no thanks" in delivery["last_error"]


def test_attempts_stop_at_the_limit_and_a_failed_delivery_can_be_sent_again(tmp_path):
    with receiving(503, 503, 503, 503) as receiver:
        settings = settings_for(tmp_path, receiver.url, webhook_attempts=2, webhooks=[
            {"url": receiver.url + "/hook", "events": ["completed"]}])
        runtime = Runtime(settings, role="run")
        runtime.start()
        try:
            with TestClient(create_app(settings, runtime=runtime)) as client:
                job_id = execute(runtime, FANOUT)
                (delivery,) = wait_for(settled(runtime, job_id, 1), what="the delivery")
                assert delivery["status"] == "failed" and delivery["attempts"] == 2
                assert "HTTP 503" in delivery["last_error"] and "gave up after 2 attempts" in delivery["last_error"]
                assert "Send again" in client.get(f"/jobs/{job_id}/webhooks").text
                again = client.post(f"/api/jobs/{job_id}/webhooks/{delivery['id']}/redeliver")
                assert again.status_code == 202 and again.json()["status"] == "pending"
                (delivery,) = wait_for(settled(runtime, job_id, 1), what="the second round")
                # A fresh set of two attempts, both 503 again: given up again.
                assert delivery["status"] == "failed" and delivery["attempts"] == 2 and len(receiver.requests) == 4
                # The page's button does the same (a form with its CSRF token, redirected back to the job).
                section = client.get(f"/jobs/{job_id}/webhooks").text
                token = re.search(r'name="csrf_token" value="([^"]+)"', section).group(1)
                form = client.post(f"/jobs/{job_id}/webhooks/{delivery['id']}/redeliver",
                                   data={"csrf_token": token}, follow_redirects=False)
                assert form.status_code == 303 and form.headers["location"] == f"/jobs/{job_id}#job-webhooks"
                (delivery,) = wait_for(settled(runtime, job_id, 1), what="the third round")
                refused = client.post(f"/api/jobs/{job_id}/webhooks/{delivery['id']}/redeliver")
                unknown = client.post(f"/api/jobs/{job_id}/webhooks/whd_nope/redeliver")
        finally:
            runtime.stop()
    # Unsigned without a secret; requests 1-4 answered 503, the fifth (200) delivered at its first attempt.
    assert "x-quaero-signature" not in receiver.requests[0].headers
    assert len(receiver.requests) == 5
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert refused.status_code == 409 and "only a failed delivery" in refused.json()["error"]
    assert unknown.status_code == 404


def test_a_429_waits_as_long_as_its_retry_after_says(tmp_path):
    with receiving(429, headers={"Retry-After": "1"}) as receiver:
        settings = settings_for(tmp_path, receiver.url, webhook_backoff_max=5, webhooks=[
            {"url": receiver.url + "/hook", "events": ["completed"]}])
        with Runtime(settings, role="run") as runtime:
            job_id = execute(runtime, FANOUT)
            wait_for(settled(runtime, job_id, 1), what="the delivery")
    first, second = receiver.requests
    # Retry-After: 1 beats the 0.05 s backoff (the receiver's clock, whole seconds: at least 1 s apart).
    assert int(second.headers["x-quaero-timestamp"]) - int(first.headers["x-quaero-timestamp"]) >= 1


def test_a_private_address_is_refused_by_the_outbound_policy(tmp_path):
    with receiving() as receiver:
        settings = settings_for(tmp_path, receiver.url, allow_private_networks=[])
        with Runtime(settings, role="run") as runtime:
            job_id = execute(runtime, FANOUT)
            found = wait_for(settled(runtime, job_id, 2), what="both deliveries")
    assert receiver.requests == []
    for delivery in found:
        assert delivery["status"] == "failed" and delivery["attempts"] == 1  # refused again if retried: not retried
        assert "outbound request refused: 127.0.0.1 (loopback)" in delivery["last_error"]
        assert "allow_private_networks" in delivery["last_error"]


def test_a_definition_webhook_reads_its_secret_and_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "env-secret-Hq3Zr8Lw5Nc")
    with receiving() as receiver:
        monkeypatch.setenv("HOOK_PATH", "T0K3N-in-the-path")  # as in a Slack incoming-webhook URL
        definition = FANOUT + f"""webhooks:
  - url: {receiver.url}/defined/${{HOOK_PATH}}
    secret: ${{HOOK_SECRET}}
    events: [failed, completed]
"""
        with Runtime(make_settings(tmp_path, **FAST), role="run") as runtime:
            job_id = execute(runtime, definition)
            (delivery,) = wait_for(settled(runtime, job_id, 1), what="the delivery")
    (request,) = receiver.requests
    assert request.event == "completed" and request.path == "/defined/T0K3N-in-the-path"
    assert request.signed_with("env-secret-Hq3Zr8Lw5Nc")
    assert delivery["url"] == receiver.url + "/defined/${HOOK_PATH}"  # shown as configured


def test_the_secret_is_never_in_the_database_nor_on_the_pages(tmp_path):
    with receiving() as receiver:
        settings = settings_for(tmp_path, receiver.url + "/" + "path", webhooks=[
            {"url": receiver.url + "/hook?token=tok-Jd8Ws2Kq7Lp4", "secret": SECRET}])
        runtime = Runtime(settings, role="run")
        runtime.start()
        try:
            with TestClient(create_app(settings, runtime=runtime)) as client:
                job_id = execute(runtime, FANOUT)
                wait_for(settled(runtime, job_id, 2), what="both deliveries")
                shown = [client.get(path).text for path in (
                    f"/jobs/{job_id}", f"/jobs/{job_id}/webhooks", f"/api/jobs/{job_id}/webhooks", "/settings",
                    f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/logs")]
        finally:
            runtime.stop()
    assert len(receiver.requests) == 2 and receiver.requests[0].path == "/hook?token=tok-Jd8Ws2Kq7Lp4"
    assert "/hook (started, completed, failed, cancelled; secret ********)" in shown[3]
    for text in shown:
        assert SECRET not in text and "tok-Jd8Ws2Kq7Lp4" not in text
    files = [path for path in (tmp_path / "data").rglob("*") if path.is_file()]
    assert any(path.name == "quaero.stores.db" for path in files)
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data, path
        assert b"tok-Jd8Ws2Kq7Lp4" not in data, path


def test_a_pending_delivery_is_sent_by_the_next_runtime(tmp_path):
    with receiving(503) as receiver:
        # The first process stops (as if killed) after one failed attempt, with the next one seconds away.
        settings = settings_for(tmp_path, receiver.url, webhook_backoff=3, webhooks=[
            {"url": receiver.url + "/hook", "secret": SECRET, "events": ["completed"]}])
        with Runtime(settings, role="run") as first:
            job_id = execute(first, FANOUT)
            wait_for(lambda: [d for d in deliveries(first, job_id) if d["attempts"] == 1
                              and d["last_status_code"] == 503], what="the first attempt")
        assert len(receiver.requests) == 1
        with Runtime(settings, role="run") as second:
            (delivery,) = wait_for(settled(second, job_id, 1), what="the delivery by the new runtime")
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert len(receiver.requests) == 2 and receiver.requests[1].signed_with(SECRET)


def test_failed_and_cancelled_executions_are_notified(tmp_path):
    with receiving() as receiver:
        settings = settings_for(tmp_path, receiver.url, webhooks=[
            {"url": receiver.url + "/hook", "events": ["failed", "cancelled"]}])
        with Runtime(settings, role="run") as runtime:
            failing = execute(runtime, """name: failing
steps:
  - {name: fan, action: test_fanout, config: {count: 2, fail_every: 1}}
""")
            slow = execute(runtime, """name: slow
steps:
  - {name: fan, action: test_fanout, config: {count: 50, work_ms: 2000}}
""")
            wait_for(lambda: runtime.jobs.get(slow).status == "running")
            runtime.orchestrator.cancel(slow)
            wait_for(settled(runtime, failing, 1), what="the failed delivery")
            wait_for(settled(runtime, slow, 1), what="the cancelled delivery")
    by_job = {request.json["execution"]["id"]: request.json for request in receiver.requests}
    assert by_job[failing]["event"] == "failed" and "all 2 child jobs failed" in by_job[failing]["execution"]["error"]
    assert by_job[slow]["event"] == "cancelled" and by_job[slow]["execution"]["status"] == "cancelled"
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(("attempts", "wait"), [(1, 1.0), (2, 4.0), (3, 16.0), (4, 64.0), (6, 600.0)])
def test_backoff_multiplies_by_four_up_to_the_cap(tmp_path, attempts, wait):
    settings = make_settings(tmp_path, webhook_backoff=1, webhook_backoff_max=600)
    assert backoff(settings, attempts) == wait


def test_an_execution_on_postgresql_is_notified_once_per_transition(tmp_path, postgres_url):
    with receiving(500) as receiver:
        settings = settings_for(tmp_path, receiver.url, database_url=postgres_url)
        with Runtime(settings, role="run") as runtime:
            job_id = execute(runtime, FANOUT)
            found = wait_for(settled(runtime, job_id, 2), what="both deliveries")
    assert sorted(receiver.events()) == ["completed", "started", "started"]  # the first answer was a 500
    assert [(d["event"], d["status"], d["attempts"]) for d in found] == [("started", "delivered", 2),
                                                                         ("completed", "delivered", 1)]
    assert all(request.signed_with(SECRET) for request in receiver.requests)
