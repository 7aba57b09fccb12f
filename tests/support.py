"""Helpers shared by the tests: settings for a temporary data dir, waiting, running definitions."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from quaero.runtime import Runtime
from quaero.settings import Settings, load_settings

#: Where browser tests save their screenshots.
ARTIFACTS = Path(os.environ.get("QUAERO_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: What the tests' outbound requests may reach although it is private: the local servers they start.
LOCAL_NETWORKS = ["127.0.0.0/8", "::1/128"]


def local(**core: Any) -> dict[str, Any]:
    """Core settings for a :class:`quaero.testing.Testbed` whose plugins call servers on 127.0.0.1."""
    return {**core, "allow_private_networks": LOCAL_NETWORKS}


def need_service(name: str, host: str, port: int) -> None:
    """Skip when a service is missing on a user's machine; fail in CI, where it must be there."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError:
        message = f"{name} is not reachable on {host}:{port}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the service must be running)")
        pytest.skip(message)



def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)



#: The default allowed hosts and the one Starlette's TestClient sends.
TEST_HOSTS = ["localhost", "127.0.0.1", "::1", "testserver"]


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test process; outbound requests may reach the local test servers (LOCAL_NETWORKS)."""
    values = dict(data_dir=tmp_path / "data", worker_processes=0, worker_threads=4,
                  plugin_modules=["quaero.testing.actions"], definitions_dir=tmp_path / "defs", monitor_interval=0.2,
                  queue_lease_ms=2000, allowed_hosts=TEST_HOSTS, allow_private_networks=LOCAL_NETWORKS,
                  # Search by meaning has its own tests (tests/engine/test_search_by_meaning.py): elsewhere the
                  # background embedding of every saved page would only add work to tests about other things.
                  embedder="none")
    values.update(overrides)
    return load_settings(environ={}, overrides=values)



def execute(runtime: Runtime, yaml_text: str) -> str:
    """Validate and start a definition; returns the root job id."""
    definition = runtime.definitions.parse(yaml_text)
    return runtime.orchestrator.execute(definition)



def wait_done(runtime: Runtime, job_id: str, timeout: float = 30.0):
    """Wait until a job is terminal and return it."""
    return wait_for(lambda: (j := runtime.jobs.get(job_id)).is_terminal and j, timeout,
                    what=f"job {job_id} to finish")


def csrf_of(client: Any, path: str = "/") -> str:
    """The CSRF token a page gives this test client (its cookie is set by the same response)."""
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


@contextlib.contextmanager
def served(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free port of 127.0.0.1 answering with ``handler``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def app_client(settings: Settings) -> Iterator[Any]:
    """A started runtime of ``settings`` and Starlette's test client over its app; both stopped afterwards."""
    from starlette.testclient import TestClient

    from quaero.web.app import create_app

    runtime = Runtime(settings, role="run")
    runtime.start()
    try:
        with TestClient(create_app(settings, runtime=runtime)) as client:
            yield client
    finally:
        runtime.stop()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (for a server a test starts in a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(client: Any) -> bool:
    """Whether the Quaero server behind ``client`` (an ``httpx.Client`` with its base URL) answers yet."""
    import httpx

    try:
        return bool(client.get("/api/health").status_code == 200)
    except httpx.HTTPError:
        return False
