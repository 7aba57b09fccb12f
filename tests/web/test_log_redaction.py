"""No secret reaches a log in clear: the access log, the process log, the job log, its events, job errors."""

from __future__ import annotations

import logging

import httpx
import pytest
from support import make_settings, wait_for

from quaero.runtime import Runtime
from quaero.runtime.logsetup import configure_logging
from quaero.stores.events import JOB_LOG
from quaero.stores.redaction import process_redactor

COOKIE = "cookie-c0ffee-91b2"
QUERY_TOKEN = "qtok-7d1e4a9b"
PLACES_KEY = "places-literal-key-5521"


@pytest.fixture
def logged(tmp_path):
    """Settings whose process logs go to <data_dir>/logs/quaero.log; the logging set-up put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    settings = make_settings(tmp_path, plugins={"places": {"api_key": PLACES_KEY}})
    configure_logging(settings)
    try:
        yield settings
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def log_text(settings) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (settings.data_dir / "logs" / "quaero.log").read_text()


def test_the_access_log_masks_tokens_in_query_strings(logged, tmp_path):
    import socket
    import threading

    import uvicorn

    from quaero.web.app import create_app

    runtime = Runtime(logged, role="run")
    runtime.start()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(logged, runtime=runtime), log_config=None, lifespan="on",
                                           access_log=True))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # (access_token= itself is taken out of the request before anything logs it: see test_accounts.py)
        assert httpx.get(f"{url}/api/jobs?token={QUERY_TOKEN}&limit=5").status_code == 200
        httpx.get(f"{url}/api/health?api_key={QUERY_TOKEN}x")
        text = wait_for(lambda: "/api/health" in (t := log_text(logged)) and t, 10)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        runtime.stop()
    assert "GET /api/jobs?token=***&limit=5" in text
    assert QUERY_TOKEN not in text


def test_credential_values_and_plugin_secrets_are_masked_in_job_logs_events_and_errors(logged):
    with Runtime(logged, role="run") as runtime:
        runtime.credentials.save("site", base_url="https://site.example/", cookies={"sid": COOKIE})
        job_id = runtime.jobs.create_job("test_fanout", "redaction test").id
        events = []
        unsubscribe = runtime.bus.subscribe(events.append, [JOB_LOG])
        runtime.logs.write(job_id, "warn", f"sent Cookie sid={COOKIE} and key {PLACES_KEY}",
                           note=f"again {COOKIE}")
        unsubscribe()
        runtime.jobs.transition(job_id, "running")
        runtime.jobs.transition(job_id, "failed", error=f"HTTP 401 for https://site.example/?token=t-{COOKIE}")
        lines = runtime.logs.read([job_id])
        error = runtime.jobs.get(job_id).error_message
    stored = " ".join(line["message"] for line in lines)
    published = str([event.payload for event in events])
    for text in (stored, published, error, log_text(logged)):
        assert COOKIE not in text and PLACES_KEY not in text
    assert "***" in stored and "***" in error
    assert process_redactor().redact(PLACES_KEY) == "***"  # a plugin's secret setting is known
