"""Security basics over the real app: the access token, cross-origin writes, CSRF on the pages."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect
from support import app_client, csrf_of, make_settings

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def locked(tmp_path):
    with app_client(make_settings(tmp_path, access_token=TOKEN)) as client:
        yield client


def test_the_api_needs_the_token_when_one_is_set(locked):
    refused = locked.get("/api/jobs")
    assert refused.status_code == 401 and refused.json()["error"].startswith("sign in first")
    assert locked.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert locked.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert locked.get("/metrics").status_code == 401
    assert locked.get("/api/health").status_code == 200  # liveness probes need no token


def test_the_websocket_needs_the_token(locked):
    with pytest.raises(WebSocketDisconnect) as refused:
        with locked.websocket_connect("/ws") as ws:
            ws.receive_text()
    assert refused.value.code == 1008
    with locked.websocket_connect(f"/ws?access_token={TOKEN}") as ws:
        ws.close()


def test_pages_send_to_the_login_page_and_the_session_cookie_opens_them(locked):
    first = locked.get("/jobs", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/jobs"
    token = csrf_of(locked, "/login")
    wrong = locked.post("/login?next=/jobs", data={"token": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "not right" in wrong.text
    signed_in = locked.post("/login?next=/jobs", data={"token": TOKEN, "csrf_token": token}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/jobs"
    assert TOKEN not in signed_in.headers["set-cookie"]  # the cookie holds a digest, not the token
    assert locked.get("/jobs").status_code == 200
    assert locked.get("/api/jobs").status_code == 200  # the browser's session works for the API too
    offsite = locked.post("/login?next=//evil.example/", data={"token": TOKEN, "csrf_token": token},
                          follow_redirects=False)
    assert offsite.headers["location"] == "/"


def test_cross_origin_writes_are_refused_everywhere(client):
    evil = {"Origin": "https://evil.example"}
    assert client.post("/api/jobs/definitions", content="x", headers=evil).status_code == 403
    assert client.post("/definitions/x/execute", headers=evil).status_code == 403
    same = {"Origin": "http://testserver"}
    body = "id: ok\nname: OK\nsteps:\n  - {name: a, action: test_fanout}\n"
    assert client.post("/api/jobs/definitions", content=body, headers=same).status_code == 201
    assert client.post("/api/jobs/definitions", content=body.replace("ok", "ok2")).status_code == 201  # curl


def test_page_forms_need_the_csrf_token(client):
    client.post("/api/jobs/definitions", content="id: d\nname: D\nsteps:\n  - {name: a, action: test_fanout}\n")
    assert client.post("/definitions/d/disable").status_code == 403
    assert client.post("/definitions/d/disable", data={"csrf_token": "forged"}).status_code == 403
    assert client.post("/definitions/d/disable", data={"csrf_token": "\u00e9t\u00e9"}).status_code == 403
    assert client.post("/definitions/d/disable",
                       headers={"X-CSRF-Token": "\u00e9".encode("latin-1")}).status_code == 403
    token = csrf_of(client, "/definitions")
    assert client.post("/definitions/d/disable", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.post("/definitions/d/enable", headers={"X-CSRF-Token": token},
                       follow_redirects=False).status_code == 303
    response = client.get("/definitions")
    assert "csrf-token" in response.text and "quaero_csrf" not in response.headers.get("set-cookie", "")


def test_pages_answer_errors_as_pages_and_unknown_actions_as_404(client):
    missing = client.get("/jobs/no-such-job")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "not found" in missing.text
    assert client.get("/jobs/x/explode").status_code == 404
    assert client.get("/documents/" + "9" * 5000).status_code == 404  # no int conversion blows up
    wrong_method = client.put("/api/jobs")
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["allow"]
    assert client.get("/api/jobs/no-such-job").json()["error"] == "job 'no-such-job' not found"
