"""The user guide at /guide/ and the first crawl that needs no internet: the shipped example crawls it.

The policy part is checked on its own (what the server's own address lets a request read, and what not);
the end-to-end test runs a real ``quaero serve`` with no private network allowed, runs the shipped
``crawl-quaero-guide`` definition (its port changed to the test's) and searches what it saved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import app_client, free_port, healthy, make_settings, wait_for

from quaero.engine.addresses import AddressPolicy
from quaero.engine.outbound import make_client
from quaero.web.guide import ROBOTS, split_sections

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_splits_into_sections_and_a_heading_inside_code_is_not_one() -> None:
    title, intro, sections = split_sections(
        "# Name\n\nIntro words.\n\n## Set up\n\n```sh\n## not a heading\n```\n\n### Sub part\n\n## Using it\n\nText.\n")
    assert title == "Name"
    assert intro == "Intro words."
    assert [(s.slug, s.title) for s in sections] == [("set-up", "Set up"), ("using-it", "Using it")]
    assert "## not a heading" in sections[0].markdown and "### Sub part" in sections[0].markdown


def test_the_guide_is_the_readme_one_page_per_section_open_to_anyone(tmp_path: Path) -> None:
    # An access token is set: every other page needs it, the guide and robots.txt do not.
    with app_client(make_settings(tmp_path, access_token="guide-test-token")) as client:
        assert client.get("/jobs", follow_redirects=False).status_code in (303, 401)
        index = client.get("/guide/")
        assert index.status_code == 200
        readme = (ROOT / "README.md").read_text()
        headings = [line[3:] for line in readme.splitlines() if line.startswith("## ")]
        for heading in headings[:5]:
            assert heading.replace("`", "") in index.text.replace("<code>", "").replace("</code>", "")
        section = client.get("/guide/set-up")
        assert section.status_code == 200 and "make serve" in section.text
        assert 'rel="next" href="/guide/' in section.text
        missing = client.get("/guide/no-such-part")
        assert missing.status_code == 404 and "/guide/" in missing.text
        assert client.get("/guide", follow_redirects=False).headers["location"] == "/guide/"
        robots = client.get("/robots.txt")
        assert robots.status_code == 200 and robots.text == ROBOTS


def test_the_policy_reads_the_servers_own_guide_and_nothing_else_of_its_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, allow_private_networks=[], port=8085)
    policy = AddressPolicy.from_settings(settings)
    assert policy.reads("GET", "http://127.0.0.1:8085/guide/")
    assert policy.reads("HEAD", "http://127.0.0.1:8085/guide/set-up")
    assert policy.reads("GET", "http://127.0.0.1:8085/robots.txt")
    assert policy.url_refusal("http://127.0.0.1:8085/guide/set-up") is None
    for method, url in [("POST", "http://127.0.0.1:8085/guide/"), ("GET", "http://127.0.0.1:8085/api/jobs"),
                        ("GET", "http://127.0.0.1:8085/guide/../api/jobs"),
                        ("GET", "http://127.0.0.1:8085/guide/%2e%2e/api/jobs"),
                        ("GET", "http://127.0.0.1:8085/guide%2f..%2fapi"),
                        ("GET", "http://127.0.0.1:8085/robots.txt.bak"),
                        ("GET", "http://127.0.0.1:8086/guide/"), ("GET", "https://127.0.0.1:8085/guide/"),
                        ("GET", "http://user:pw@127.0.0.1:8085/guide/"), ("GET", "http://10.0.0.1:8085/guide/")]:
        assert not policy.reads(method, url), (method, url)
    assert policy.url_refusal("http://127.0.0.1:8085/api/jobs") is not None
    # A server bound to every address reads its guide on loopback; one bound to a name reads none.
    assert AddressPolicy.from_settings(settings.replace(host="0.0.0.0")).reads("GET", "http://127.0.0.1:8085/guide/")
    assert not AddressPolicy.from_settings(settings.replace(host="quaero.example")).readable


def test_a_connection_opened_for_the_guide_is_not_used_for_another_path(tmp_path: Path) -> None:
    """The request to the guide goes through its own pool; the next request, to the same address and port,
    goes through the guarded one and is refused, though a connection to that port is open."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        policy = AddressPolicy(readable=[f"http://127.0.0.1:{port}/guide/"])
        with make_client(policy) as client:
            assert client.get(f"http://127.0.0.1:{port}/guide/x").text == "ok"
            with pytest.raises(httpx.ConnectError, match="allow_private_networks"):
                client.get(f"http://127.0.0.1:{port}/api/jobs")
    finally:
        server.shutdown()
        server.server_close()



def test_the_shipped_first_crawl_works_with_no_private_network_allowed(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shipped = (ROOT / "job-definitions" / "crawl-quaero-guide.yaml").read_text()
    assert "127.0.0.1:8085" in shipped
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUAERO_")}
    env.update(QUAERO_WORKER_PROCESSES="1", QUAERO_QUEUE_LEASE_MS="2000")
    output = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "quaero", "serve", "--port", str(port), "--data-dir", "data",
                               "--definitions", str(tmp_path / "none")],
                              cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            wait_for(lambda: healthy(client), 60, what="the server to answer")
            saved = client.post("/api/jobs/definitions", content=shipped.replace(":8085", f":{port}"),
                                headers={"content-type": "application/yaml"})
            assert saved.status_code in (200, 201), saved.text
            root = client.post("/api/jobs/definitions/crawl-quaero-guide/execute").json()["job_id"]
            job = wait_for(lambda: (j := client.get(f"/api/jobs/{root}").json())["status"]
                           in ("completed", "failed") and j, 90, what="the guide crawl")
            assert job["status"] == "completed", job
            sections = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("## ")]
            assert job["result_count"] == len(sections) + 1, job  # the contents page and each section
            hits = client.get("/api/search", params={"q": "worker processes", "limit": 5}).json()["items"]
            assert hits and all(hit["source_ref"].startswith(f"{base}/guide/") for hit in hits)
            # Nothing but the guide was read: the server's own API stays out of reach of its crawler.
            documents = client.get("/api/documents", params={"limit": 100}).json()["items"]
            assert len(documents) == job["result_count"]
            assert all(d["source_ref"].startswith(f"{base}/guide/") for d in documents), documents
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log = (tmp_path / "server.log").read_text()
    assert f"Quaero is ready: open {base}/" in log
