"""Accounts and roles over the real app: who may read, who may write, tokens, sessions, the sign-in throttle.

Each test reproduces a finding of issue 12 that the server had before accounts: one shared token or none,
a session cookie that never ended, no throttle, and a viewer role that did not exist.
"""

from __future__ import annotations

import json

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from support import csrf_of, execute, make_settings, wait_done

from quaero.runtime import Runtime
from quaero.web.app import create_app

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-1"
DEFINITION = "id: d\nname: D\nsteps:\n  - {name: a, action: test_fanout, config: {count: 2}}\n"


@pytest.fixture
def accounts(runtime):
    """An admin (ada) and a viewer (vic) in the test's runtime, and one definition to act on."""
    runtime.accounts.add("ada", "admin", ADMIN_PASSWORD)
    runtime.accounts.add("vic", "viewer", VIEWER_PASSWORD)
    runtime.definitions.create(DEFINITION)
    return runtime.accounts


def new_client(client: TestClient, **options) -> TestClient:
    """Another browser (its own cookies) on the same app."""
    return TestClient(client.app, **options)


def sign_in(client: TestClient, name: str, password: str, **params):
    token = csrf_of(client, "/login")
    return client.post("/login", params=params, data={"name": name, "password": password, "csrf_token": token},
                       follow_redirects=False)


def signed_in(client: TestClient, name: str, password: str) -> TestClient:
    browser = new_client(client)
    assert sign_in(browser, name, password).status_code == 303
    return browser


# ---------------------------------------------------------------------------------------------- no credential
def test_without_a_credential_the_api_is_401_and_pages_send_to_sign_in(accounts, client):
    refused = client.get("/api/jobs")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert set(refused.json()) == {"error", "detail"} and "Bearer" in refused.json()["detail"]
    page = client.get("/jobs?status=failed", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/jobs"
    assert client.post("/api/auth", json={"id": "x", "base_url": "https://x.example/"}).status_code == 401
    assert client.get("/api/events").status_code == 401
    assert client.get("/metrics").status_code == 401
    for path in ("/ws", "/live/dashboard"):
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect(path) as ws:
                ws.receive_text()
        assert closed.value.code == 1008
    # What anyone may open: signing in, the static files, the liveness probe.
    assert client.get("/login").status_code == 200
    assert client.get("/static/quaero.css").status_code == 200
    assert client.get("/api/health").status_code == 200


def test_the_first_account_closes_an_open_server(client, runtime):
    assert client.get("/api/me").json() == {"kind": "open", "role": "admin", "name": None}
    created = client.post("/api/users", json={"name": "ada", "role": "admin", "password": ADMIN_PASSWORD})
    assert created.status_code == 201 and created.json()["role"] == "admin" and "password" not in created.text
    assert client.get("/api/jobs").status_code == 401  # at once, not after a restart
    assert signed_in(client, "ada", ADMIN_PASSWORD).get("/api/me").json() == {
        "kind": "session", "role": "admin", "name": "ada"}


# ---------------------------------------------------------------------------------------------- viewers
def test_a_viewer_reads_every_page_the_api_and_the_live_streams(accounts, client, runtime):
    viewer = signed_in(client, "vic", VIEWER_PASSWORD)
    for path in ("/", "/jobs", "/definitions", "/definitions/d", "/queue", "/plugins", "/settings", "/documents",
                 "/search?q=x"):
        assert viewer.get(path).status_code == 200, path
    for path in ("/api/jobs", "/api/jobs/definitions", "/api/auth", "/api/plugins", "/api/documents",
                 "/api/queue/stats", "/api/openapi.json", "/metrics"):
        assert viewer.get(path).status_code == 200, path
    assert viewer.get("/api/me").json() == {"kind": "session", "role": "viewer", "name": "vic"}
    with viewer.websocket_connect("/ws?types=job_status_change") as ws:
        root_id = execute(runtime, DEFINITION)
        assert json.loads(ws.receive_text())["type"] == "job_status_change"
    wait_done(runtime, root_id)
    with viewer.websocket_connect("/live/dashboard") as live:
        live.close()
    # The users and their tokens are for admins only, reading included.
    assert viewer.get("/api/users").status_code == 403
    assert viewer.get("/users").status_code == 403


def test_a_viewer_cannot_change_anything_on_any_route(accounts, client, runtime):
    """Every state-changing route of the app (API, pages, plugins'), with the page's CSRF token: 403."""
    viewer = signed_in(client, "vic", VIEWER_PASSWORD)
    token = csrf_of(viewer, "/definitions")
    checked = 0
    for route in client.app.routes:
        if not isinstance(route, Route):
            continue
        if route.path in ("/login", "/logout"):  # what every role may do
            continue
        for method in sorted((route.methods or set()) - {"GET", "HEAD"}):
            url = route.path.replace("{id}", "d").replace("{name}", "ada").replace("{action:str}", "execute")
            response = viewer.request(method, url, headers={"X-CSRF-Token": token}, json={})
            assert response.status_code == 403, (method, url, response.status_code)
            checked += 1
    assert checked > 30
    refused = viewer.post("/api/jobs/definitions/d/execute")
    assert refused.json()["error"] == "your role does not allow this"
    assert "viewer role" in refused.json()["detail"] and "'vic'" in refused.json()["detail"]
    page = viewer.post("/definitions/d/execute", data={"csrf_token": token})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "viewer role" in page.text
    # The WebSocket carries no actions: what a viewer sends on it is read and ignored.
    with viewer.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"type": "execute", "id": "d"}))
    assert runtime.jobs.executions(definition_id="d", limit=5) == []
    assert runtime.definitions.record("d").enabled and runtime.accounts.get("ada")["role"] == "admin"


def test_pages_hide_the_write_buttons_from_a_viewer(accounts, client, runtime):
    root_id = execute(runtime, DEFINITION)
    wait_done(runtime, root_id)
    viewer, admin = signed_in(client, "vic", VIEWER_PASSWORD), signed_in(client, "ada", ADMIN_PASSWORD)
    for path, write in [("/definitions", 'action="/definitions/d/execute"'),
                        ("/definitions", 'href="/definitions/new"'),
                        ("/definitions/d", 'href="/definitions/d/edit"'),
                        (f"/jobs/{root_id}", f'href="/jobs/{root_id}/delete"'),
                        ("/settings", 'action="/settings/credentials"')]:
        assert write in admin.get(path).text, (path, write)
        assert write not in viewer.get(path).text, (path, write)
    header = viewer.get("/").text
    assert "vic (viewer)" in header and 'action="/logout"' in header and 'href="/users"' not in header
    assert 'href="/users"' in admin.get("/").text
    confirm = viewer.get(f"/jobs/{root_id}/delete").text  # the confirmation page itself, opened by hand
    assert "read but not change" in confirm and f'action="/jobs/{root_id}/delete"' not in confirm


# ---------------------------------------------------------------------------------------------- API tokens
def test_an_api_token_works_until_it_is_revoked(accounts, client, runtime):
    admin = signed_in(client, "ada", ADMIN_PASSWORD)
    made = admin.post("/api/users/vic/tokens", json={"name": "report script"})
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    token = made.json()["token"]
    assert token.startswith("qk_") and len(token) > 40
    script = new_client(client, headers={"Authorization": f"Bearer {token}"})
    assert script.get("/api/me").json() == {"kind": "token", "role": "viewer", "name": "vic"}
    assert script.get("/api/jobs").status_code == 200
    assert script.post("/api/auth", json={"id": "x", "base_url": "https://x.example/"}).status_code == 403
    [listed] = admin.get("/api/users/vic/tokens").json()["items"]
    assert listed["name"] == "report script" and listed["last_used_at"] is not None and token not in json.dumps(listed)
    # Kept as a hash only: the database holds nothing that opens the server.
    rows = runtime.database.execute("SELECT * FROM api_tokens").fetchall()
    assert token not in repr(rows)
    assert admin.delete(f"/api/users/vic/tokens/{listed['id']}").json() == {"revoked": listed["id"]}
    revoked = script.get("/api/jobs")
    assert revoked.status_code == 401 and "not valid" in revoked.json()["detail"]
    # An admin's token writes.
    _, admin_token = accounts.create_token("ada", "deploy")
    deploy = new_client(client, headers={"Authorization": f"Bearer {admin_token}"})
    assert deploy.post("/api/auth", json={"id": "x", "base_url": "https://x.example/"}).status_code == 201


def test_the_query_token_is_refused_outside_the_streams(accounts, client, runtime):
    _, token = accounts.create_token("vic")
    refused = client.get("/api/jobs", params={"access_token": token})
    assert refused.status_code == 401 and "only on /ws and /api/events" in refused.json()["detail"]
    assert client.get("/jobs", params={"access_token": token}, follow_redirects=False).status_code == 303
    with client.websocket_connect(f"/ws?access_token={token}&types=job_status_change") as ws:
        root_id = execute(runtime, DEFINITION)
        assert json.loads(ws.receive_text())["type"] == "job_status_change"
    wait_done(runtime, root_id)


# ---------------------------------------------------------------------------------------------- sessions
def test_the_session_cookie_is_random_httponly_lax_and_secure_over_https(accounts, client, runtime):
    signed = sign_in(client, "vic", VIEWER_PASSWORD)
    cookie = signed.headers["set-cookie"]
    value = client.cookies["quaero_session"]
    assert len(value) >= 40 and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert "Max-Age=604800" in cookie
    stored = [row[0] for row in runtime.database.execute("SELECT id_hash FROM sessions").fetchall()]
    assert value not in stored and len(stored) == 1  # the database keeps its hash only
    again = new_client(client)
    assert sign_in(again, "vic", VIEWER_PASSWORD).status_code == 303
    assert again.cookies["quaero_session"] != value  # each sign-in its own session
    https = new_client(client, base_url="https://testserver")
    assert "Secure" in sign_in(https, "vic", VIEWER_PASSWORD).headers["set-cookie"]


def test_sessions_end_when_idle_too_long_and_when_too_old(accounts, client, runtime, settings):
    browser = signed_in(client, "vic", VIEWER_PASSWORD)
    assert browser.get("/api/jobs").status_code == 200
    runtime.database.execute("UPDATE sessions SET seen_at = seen_at - ?", (settings.session_idle_timeout + 5,))
    assert browser.get("/api/jobs").status_code == 401
    assert browser.get("/jobs", follow_redirects=False).headers["location"] == "/login?next=/jobs"
    assert runtime.database.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0  # and it is gone
    browser = signed_in(client, "vic", VIEWER_PASSWORD)
    # Used a minute ago, but opened longer ago than the absolute limit.
    runtime.database.execute("UPDATE sessions SET created_at = created_at - ?, seen_at = seen_at - 60",
                             (settings.session_max_age + 5,))
    assert browser.get("/api/jobs").status_code == 401


def test_sign_out_password_change_and_removal_end_sessions(accounts, client, runtime):
    first, second = signed_in(client, "vic", VIEWER_PASSWORD), signed_in(client, "vic", VIEWER_PASSWORD)
    stolen = first.cookies["quaero_session"]
    out = first.post("/logout", data={"csrf_token": csrf_of(first, "/")}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    replayed = new_client(client, cookies={"quaero_session": stolen})  # the cookie kept after signing out
    assert replayed.get("/api/jobs").status_code == 401
    assert second.get("/api/jobs").status_code == 200  # the other browser is still signed in
    admin = signed_in(client, "ada", ADMIN_PASSWORD)
    changed = admin.patch("/api/users/vic", json={"password": "a-new-password"})
    assert changed.status_code == 200 and changed.json()["role"] == "viewer"
    assert second.get("/api/jobs").status_code == 401
    assert sign_in(new_client(client), "vic", VIEWER_PASSWORD).status_code == 401
    third = signed_in(client, "vic", "a-new-password")
    assert admin.delete("/api/users/vic").json() == {"deleted": "vic"}
    assert third.get("/api/jobs").status_code == 401
    assert runtime.database.execute("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL").fetchone()[0] == 1


def test_the_last_admin_stays_while_others_remain(accounts, client):
    admin = signed_in(client, "ada", ADMIN_PASSWORD)
    for response in (admin.delete("/api/users/ada"), admin.patch("/api/users/ada", json={"role": "viewer"})):
        assert response.status_code == 409 and "last admin" in response.json()["error"]
    for body, status in [({"name": "ada", "role": "viewer", "password": "12345678"}, 409),
                         ({"name": "bad name", "role": "admin", "password": "12345678"}, 400),
                         ({"name": "eve", "role": "root", "password": "12345678"}, 400),
                         ({"name": "eve", "role": "viewer", "password": "short"}, 400),
                         ({"name": "eve", "role": "viewer", "password": "12345678", "admin": True}, 400)]:
        assert admin.post("/api/users", json=body).status_code == status, body
    [ada, vic] = admin.get("/api/users").json()["items"]
    assert (ada["name"], ada["role"], vic["name"], vic["role"]) == ("ada", "admin", "vic", "viewer")


# ---------------------------------------------------------------------------------------------- throttle
@pytest.fixture
def throttled(tmp_path):
    """An app whose sign-in waits after 3 failures, with one viewer."""
    settings = make_settings(tmp_path, login_max_failures=3, login_lockout=30)
    runtime = Runtime(settings, role="run")
    runtime.accounts.add("vic", "viewer", VIEWER_PASSWORD)
    runtime.accounts.add("ada", "admin", ADMIN_PASSWORD)
    try:
        yield settings, runtime, create_app(settings, runtime=runtime)
    finally:
        runtime.stop()


def test_sign_in_is_throttled_per_user_name_across_processes(throttled):
    settings, runtime, app = throttled
    attacker = TestClient(app, client=("203.0.113.7", 40000))
    assert [sign_in(attacker, "vic", f"guess-{i}").status_code for i in range(2)] == [401, 401]
    third = sign_in(attacker, "vic", "guess-3")
    assert third.status_code == 429 and 25 <= int(third.headers["retry-after"]) <= 30
    assert "Too many failed sign-ins" in third.text
    # Now even the right password waits, from any address: the count is the name's.
    assert sign_in(attacker, "vic", VIEWER_PASSWORD).status_code == 429
    elsewhere = TestClient(app, client=("198.51.100.2", 40000))
    assert sign_in(elsewhere, "vic", VIEWER_PASSWORD).status_code == 429
    # Another process on the same database sees the same count.
    other = Runtime(settings, role="run")
    try:
        assert sign_in(TestClient(create_app(settings, runtime=other)), "vic", VIEWER_PASSWORD).status_code == 429
    finally:
        other.stop()
    # Each further failure after the wait doubles it.
    runtime.database.execute("UPDATE login_failures SET locked_until = 0")
    assert int(sign_in(attacker, "vic", "guess-4").headers["retry-after"]) > 55
    runtime.database.execute("UPDATE login_failures SET locked_until = 0")
    assert sign_in(elsewhere, "vic", VIEWER_PASSWORD).status_code == 303
    # A success forgets the name's failures.
    assert [sign_in(elsewhere, "vic", "wrong").status_code for _ in range(2)] == [401, 401]


def test_sign_in_is_throttled_per_client_address(throttled):
    _, _, app = throttled
    sprayer = TestClient(app, client=("203.0.113.9", 40000))
    assert [sign_in(sprayer, name, "password1").status_code for name in ("a1", "a2")] == [401, 401]
    assert sign_in(sprayer, "a3", "password1").status_code == 429
    assert sign_in(sprayer, "ada", ADMIN_PASSWORD).status_code == 429  # the address waits, whatever the name
    assert sign_in(TestClient(app, client=("198.51.100.3", 40000)), "ada", ADMIN_PASSWORD).status_code == 303


# ---------------------------------------------------------------------------------------------- a real server
def test_dns_rebinding_gets_400_and_stores_nothing(live_server):
    """The reproduction of issue 12: a page at evil.example rebinds its name to 127.0.0.1 and posts to it."""
    import httpx

    evil = {"Host": "evil.example", "Origin": "http://evil.example"}
    body = {"id": "stolen", "base_url": "https://x.example/", "headers": {"Authorization": "Bearer x"}}
    refused = httpx.post(f"{live_server.url}/api/auth", json=body, headers=evil)
    assert refused.status_code == 400
    assert "evil.example" in refused.json()["error"] and "allowed_hosts" in refused.json()["detail"]
    assert live_server.runtime.credentials.listing() == []
    page = httpx.get(live_server.url + "/settings", headers={"Host": "evil.example:8085"})
    assert page.status_code == 400 and "allowed_hosts" in page.text
    # The Origin must be this server by an allowed name, not merely equal to whatever Host was sent.
    here = live_server.url.removeprefix("http://")
    other_port = {"Origin": "http://127.0.0.1:1"}
    assert httpx.post(f"{live_server.url}/api/auth", json=body, headers=other_port).status_code == 403
    same = {"Origin": live_server.url}
    assert httpx.post(f"{live_server.url}/api/auth", json=body, headers=same).status_code == 201
    assert httpx.get(live_server.url + "/api/health", headers={"Host": f"localhost:{here.split(':')[1]}"}).is_success


def test_a_query_token_opens_the_streams_and_never_reaches_the_log(live_server, caplog):
    import logging

    import httpx
    from websockets.sync.client import connect

    runtime = live_server.runtime
    runtime.accounts.add("vic", "viewer", VIEWER_PASSWORD)
    _, token = runtime.accounts.create_token("vic", "dashboard")
    caplog.set_level(logging.INFO, logger="uvicorn")
    # Straight on the access logger: a test before this one may have configured logging (a process's
    # log setup stops uvicorn's loggers propagating to the root, where caplog listens).
    access = logging.getLogger("uvicorn.access")
    access.addHandler(caplog.handler)
    try:
        with httpx.Client(base_url=live_server.url, timeout=20) as http:
            refused = http.get("/api/jobs", params={"access_token": token, "limit": 5})
            assert refused.status_code == 401
            with http.stream("GET", "/api/events",
                             params={"access_token": token, "types": "job_status_change"}) as sse:
                assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
        ws_url = live_server.url.replace("http://", "ws://") + f"/ws?types=job_log&access_token={token}"
        with connect(ws_url, open_timeout=10) as ws:
            ws.send("hello")
    finally:
        access.removeHandler(caplog.handler)
    logged = caplog.text
    assert "/api/jobs?limit=5" in logged and "/api/events?types=job_status_change" in logged and "/ws?" in logged
    assert token not in logged and "access_token" not in logged


# ---------------------------------------------------------------------------------------------- allowed hosts
def test_allowed_hosts_default_to_the_loopback_names_and_the_bound_address():
    from quaero.settings import load_settings
    from quaero.web.security import host_allowed, hostname_of

    default = load_settings(environ={})
    assert default.resolved_allowed_hosts == ("localhost", "127.0.0.1", "::1")
    assert load_settings(environ={"QUAERO_HOST": "0.0.0.0"}).resolved_allowed_hosts == default.resolved_allowed_hosts
    assert load_settings(environ={"QUAERO_HOST": "192.168.1.5"}).resolved_allowed_hosts[-1] == "192.168.1.5"
    listed = load_settings(environ={"QUAERO_ALLOWED_HOSTS": "kb.example.com, [::1],.corp.example"})
    assert listed.resolved_allowed_hosts == ("kb.example.com", "::1", ".corp.example")
    assert [hostname_of(h) for h in ("LocalHost:8085", "[::1]:8085", "[::1]", "kb.example.com.", "::1", "")] == [
        "localhost", "::1", "::1", "kb.example.com", "::1", ""]
    allowed = listed.resolved_allowed_hosts
    assert host_allowed("wiki.corp.example", allowed) and host_allowed("corp.example", allowed)
    assert not host_allowed("evilcorp.example", allowed) and not host_allowed("", allowed)
    assert host_allowed("anything.example", ("*",))


def test_allowed_hosts_star_answers_any_host(tmp_path):
    settings = make_settings(tmp_path, allowed_hosts="*")
    runtime = Runtime(settings, role="run")
    try:
        client = TestClient(create_app(settings, runtime=runtime))
        assert client.get("/api/health", headers={"Host": "kb.example.com"}).status_code == 200
        refused = TestClient(create_app(make_settings(tmp_path / "b"), runtime=runtime))
        assert refused.get("/api/health", headers={"Host": "kb.example.com"}).status_code == 400
    finally:
        runtime.stop()
