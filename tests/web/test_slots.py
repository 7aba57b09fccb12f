"""Stream clients are bounded per process: past max_stream_clients, 1013 on a WebSocket, 503 on SSE."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect
from support import app_client, make_settings


@pytest.fixture
def small(tmp_path):
    with app_client(make_settings(tmp_path, max_stream_clients=2)) as client:
        yield client


def refused_with(client, path: str) -> int:
    with client.websocket_connect(path) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    return closed.value.code


def test_past_the_limit_websockets_close_with_1013_and_sse_answers_503(small):
    with small.websocket_connect("/ws") as first, small.websocket_connect("/live/dashboard") as second:
        assert first and second
        assert refused_with(small, "/ws") == 1013
        assert refused_with(small, "/live/jobs") == 1013
        response = small.get("/api/events")
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "max_stream_clients" in response.json()["error"]
    # Both slots came back when their clients left.
    with small.websocket_connect("/ws"), small.websocket_connect("/ws"):
        assert refused_with(small, "/ws") == 1013
    assert small.app.state.stream_slots.open == 0


def test_a_refused_sse_request_for_an_unknown_job_gives_its_slot_back(small):
    for _ in range(3):
        assert small.get("/api/events", params={"job_id": "job_missing"}).status_code == 404
    assert small.app.state.stream_slots.open == 0
