"""No secret used in a run is found in clear anywhere: the data dir, the server's log, any API answer or page.

A real ``quaero serve`` (with a worker process) crawls a local site that only answers when the stored
credential's cookie and a ``${ENV_VAR}`` header are sent, so every secret is really used. Then every file
of the data directory (databases, WAL files, logs), everything the server wrote to its output (access log
included) and the answers of every GET route are searched for each secret, as bytes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from support import free_port, healthy, served, wait_for

SECRETS = {
    "access token": "tok-Sx9q2VbLm4Rw7PzK1dHf",
    "cookie": "cookie-Gh3Jt8Nw2Qc5Lx7Vb0Ma",
    "stored header": "hdr-Pq4Zx1Wm8Rt6Yu2Io9Ea",
    "env header": "env-Kd7Fg2Hj5Lq9Zx3Cv6Bn",
}
PAGES = 6


class _Site(BaseHTTPRequestHandler):
    """Pages /p0 ... /p5 that link to each other, served only to a request carrying every secret."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.path == "/robots.txt":
            self._send(200, "text/plain", b"User-agent: *\nAllow: /\n")
            return
        authorised = (f"session={SECRETS['cookie']}" in self.headers.get("cookie", "")
                      and self.headers.get("x-stored") == SECRETS["stored header"]
                      and self.headers.get("x-api-key") == SECRETS["env header"])
        match = re.fullmatch(r"/p(\d+)", self.path)
        if not authorised or match is None or int(match.group(1)) >= PAGES:
            self._send(403 if match else 404, "text/plain", b"no")
            return
        n = int(match.group(1))
        links = "".join(f'<a href="/p{i}">page {i}</a> ' for i in range(PAGES) if i != n)
        body = f"<html><head><title>Page {n}</title></head><body><main><h1>Page {n}</h1>" \
               f"<p>Words of page {n} about zebras.</p>{links}</main></body></html>"
        self._send(200, "text/html; charset=utf-8", body.encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    with served(type("Handler", (_Site,), {"seen": seen})) as url:
        yield url, seen



def _found(data: bytes) -> list[str]:
    """The names of the secrets that ``data`` holds in clear."""
    return [name for name, value in SECRETS.items() if value.encode() in data]


def test_no_secret_of_a_run_is_stored_logged_or_answered_in_clear(tmp_path: Path, site) -> None:
    site_url, seen = site
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "QUAERO_ACCESS_TOKEN": SECRETS["access token"], "SITE_API_KEY": SECRETS["env header"],
           "QUAERO_ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128", "QUAERO_LOG_LEVEL": "DEBUG",
           "QUAERO_WORKER_PROCESSES": "1", "QUAERO_QUEUE_LEASE_MS": "2000"}
    output = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "quaero", "serve", "--port", str(port), "--data-dir", "data"],
                              cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    auth = {"authorization": f"Bearer {SECRETS['access token']}"}
    answers: list[tuple[str, bytes]] = []
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            wait_for(lambda: healthy(client), 60, what="the server to answer")
            created = client.post("/api/auth", json={
                "id": "site", "base_url": site_url + "/", "cookies": {"session": SECRETS["cookie"]},
                "headers": {"X-Stored": SECRETS["stored header"]}})
            assert created.status_code == 201, created.text
            definition = f"""id: secret-crawl
name: Secret crawl
steps:
  - name: crawl
    action: crawl
    config:
      start_urls: ["{site_url}/p0"]
      max_pages: {PAGES}
      per_host_delay_ms: 0
      auth_id: site
      headers: {{X-Api-Key: "${{SITE_API_KEY}}"}}
"""
            saved = client.post("/api/jobs/definitions", content=definition,
                                headers={"content-type": "application/yaml"})
            assert saved.status_code in (200, 201), saved.text
            started = client.post("/api/jobs/definitions/secret-crawl/execute")
            assert started.status_code in (200, 201, 202), started.text
            root = started.json()["job_id"]
            job = wait_for(lambda: (j := client.get(f"/api/jobs/{root}").json())["status"]
                           in ("completed", "failed") and j, 90, what="the crawl")
            assert job["status"] == "completed", job
            documents = client.get("/api/documents", params={"limit": 50}).json()
            # Every page was fetched with every secret, or the site would have refused it.
            assert len(documents["items"]) == PAGES, documents
            # The access token in a query string (WebSocket-style clients) must not reach the access log.
            client.get("/api/health", params={"access_token": SECRETS["access token"]}, headers={})
            answers += _every_get_answer(client, root)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        output.close()
    assert len(seen) > PAGES  # the site saw the crawl (robots.txt and the pages)

    leaks = [(path, names) for path, data in answers if (names := _found(data))]
    assert leaks == [], f"secrets in API answers or pages: {leaks}"
    log = (tmp_path / "server.log").read_bytes()
    assert b"GET /api/health" in log or b"/api/" in log  # the log is the server's, with its access lines
    assert _found(log) == [], "secrets in the server's output"
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files), files
    in_files = [(str(p.relative_to(tmp_path)), names) for p in files if (names := _found(p.read_bytes()))]
    assert in_files == [], f"secrets in the data directory: {in_files}"



def _every_get_answer(client: httpx.Client, root: str) -> list[tuple[str, bytes]]:
    """The answer of every GET route of the OpenAPI document (ids filled in from the run), and the pages."""
    spec = client.get("/api/openapi.json").json()
    jobs = client.get("/api/jobs", params={"limit": 100}).json()
    job_ids = [root, *(j["id"] for j in jobs["items"])]
    documents = client.get("/api/documents", params={"limit": 5}).json()["items"]
    ids = {"id": None, "job_id": root, "definition_id": "secret-crawl", "auth_id": "site",
           "doc_id": documents[0]["id"] if documents else 1}
    paths: list[str] = []
    for path, operations in spec["paths"].items():
        if "get" not in operations:
            continue
        names = re.findall(r"{(\w+)}", path)
        if not names:
            paths.append(path)
            continue
        for job_id in job_ids[:3] if "jobs" in path else [None]:
            filled = path
            for name in names:
                value = job_id if job_id and name in ("id", "job_id") else ids.get(name)
                if value is None:
                    value = "secret-crawl" if "definitions" in path else "site" if "credentials" in path \
                        else documents[0]["id"] if "documents" in path and documents else root
                filled = filled.replace("{" + name + "}", str(value))
            paths.append(filled)
    pages = ["/", "/jobs", f"/jobs/{root}", "/definitions", "/definitions/secret-crawl", "/documents",
             "/search?q=zebras", "/settings", "/queue", "/plugins", "/credentials", "/metrics"]
    answers = []
    for path in [*paths, *pages]:
        if path.endswith(("/stream", "/events")):
            continue  # endless streams: the job pages and API above carry the same payloads
        response = client.get(path)
        answers.append((path, response.content + json.dumps(dict(response.headers)).encode()))
    assert len(answers) > 20, [p for p, _ in answers]
    time.sleep(0.2)
    return answers
