"""quaero users (add, list, token, tokens, revoke-token, password, role, remove), and serve refusing to listen
on the network with nothing to sign in with, through the real command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support import wait_for
from test_cli import free_port, quaero


def users(*args: str, cwd: Path, password: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "quaero", "users", *args, "--data-dir", "data"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=60,
                          input=None if password is None else password + "\n")


def test_users_are_added_listed_given_tokens_and_removed(tmp_path):
    added = users("add", "ada", "--role", "admin", "--password-stdin", cwd=tmp_path, password="ada-password")
    assert added.returncode == 0 and added.stdout.strip() == "added ada (admin)", added.stderr
    assert users("add", "vic", "--role", "viewer", "--password-stdin", cwd=tmp_path,
                 password="vic-password").returncode == 0
    # No terminal and no --password-stdin: nothing to ask the password on, and never from the command line.
    no_tty = users("add", "eve", "--role", "viewer", cwd=tmp_path, password="")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    short = users("add", "eve", "--role", "viewer", "--password-stdin", cwd=tmp_path, password="short")
    assert short.returncode == 2 and "8 to 1024 characters" in short.stderr
    taken = users("add", "ada", "--role", "viewer", "--password-stdin", cwd=tmp_path, password="whatever-1")
    assert taken.returncode == 2 and "already exists" in taken.stderr

    listed = json.loads(users("list", "--json", cwd=tmp_path).stdout)
    assert [(u["name"], u["role"], u["tokens"]) for u in listed] == [("ada", "admin", 0), ("vic", "viewer", 0)]
    table = users("list", cwd=tmp_path).stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "TOKENS", "ADDED"] and table[2].split()[:2] == ["vic", "viewer"]

    made = users("token", "vic", "--name", "nightly report", cwd=tmp_path)
    token = made.stdout.strip()
    assert made.returncode == 0 and re.fullmatch(r"qk_[\w-]{43}", token), made.stdout
    assert "shown this once" in made.stderr and token not in made.stderr
    as_json = json.loads(users("token", "ada", "--json", cwd=tmp_path).stdout)
    assert as_json["user"] == "ada" and as_json["token"].startswith("qk_")
    tokens = users("tokens", "--json", cwd=tmp_path).stdout
    assert token not in tokens and as_json["token"] not in tokens
    [vic_token] = json.loads(users("tokens", "vic", "--json", cwd=tmp_path).stdout)
    assert vic_token["name"] == "nightly report" and vic_token["last_used_at"] is None

    assert users("revoke-token", str(vic_token["id"]), cwd=tmp_path).returncode == 0
    again = users("revoke-token", str(vic_token["id"]), cwd=tmp_path)
    assert again.returncode == 2 and "no token" in again.stderr
    assert users("role", "vic", "admin", cwd=tmp_path).stdout.strip() == "vic is now admin"
    assert users("password", "vic", "--password-stdin", cwd=tmp_path, password="vic-password-2").returncode == 0
    assert users("remove", "ada", cwd=tmp_path).returncode == 0
    last = users("role", "vic", "viewer", cwd=tmp_path)
    assert last.returncode == 0  # alone, vic may stop being an admin: there is nobody left to lock out
    assert users("remove", "vic", cwd=tmp_path).returncode == 0
    assert users("list", cwd=tmp_path).stdout.startswith("no users")
    missing = users("remove", "nobody", cwd=tmp_path)
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr


def test_serve_on_a_network_address_with_no_accounts_refuses_to_start(tmp_path):
    started = time.monotonic()
    refused = quaero("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", "data", "--workers",
                     "0", cwd=tmp_path, timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refusing to listen on 0.0.0.0" in refused.stderr
    assert "quaero users add NAME --role admin" in refused.stderr and "access_token" in refused.stderr
    assert time.monotonic() - started < 30 and "Uvicorn running" not in refused.stderr


def test_serve_with_an_account_signs_in_keeps_tokens_out_of_its_log_and_users_remove_ends_sessions(tmp_path):
    assert users("add", "vic", "--role", "viewer", "--password-stdin", cwd=tmp_path,
                 password="vic-password").returncode == 0
    token = users("token", "vic", cwd=tmp_path).stdout.strip()
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    environ["QUAERO_PLUGIN_MODULES"] = "quaero.testing.actions"
    # An account exists, so a network address is allowed now.
    server = subprocess.Popen([sys.executable, "-m", "quaero", "serve", "--host", "0.0.0.0", "--port", str(port),
                               "--data-dir", "data", "--workers", "0"], cwd=tmp_path, env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                return httpx.get(f"{base}/api/health", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, 0.2, "the server to answer")
        assert httpx.get(f"{base}/api/jobs").status_code == 401
        assert httpx.get(f"{base}/api/jobs", params={"access_token": token}).status_code == 401
        assert httpx.get(f"{base}/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with httpx.stream("GET", f"{base}/api/events", params={"access_token": token}, timeout=10) as sse:
            assert sse.status_code == 200
        with httpx.Client(base_url=base) as browser:
            login = browser.get("/login").text
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
            signed = browser.post("/login", data={"name": "vic", "password": "vic-password", "csrf_token": csrf})
            assert signed.status_code == 303 and browser.get("/api/me").json()["name"] == "vic"
            assert users("remove", "vic", cwd=tmp_path).returncode == 0
            assert browser.get("/api/me").status_code == 401  # the running server sees the removal at once
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    log = (tmp_path / "data" / "logs" / "quaero.log").read_text()
    assert "set allowed_hosts (QUAERO_ALLOWED_HOSTS)" in log  # 0.0.0.0 with the default names: said at start
    for text in (output, log):
        assert '"GET /api/jobs HTTP/1.1" 401' in text and "/api/events" in text, text[-2000:]
        assert token not in text and "access_token" not in text
