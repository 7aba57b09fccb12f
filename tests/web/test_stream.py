"""The event stream for programs: WebSocket (one event per frame, or batches) and Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
from support import execute, wait_done, wait_for

from quaero.web.stream import FeedHub

FAN = "id: s\nname: S\nsteps:\n  - {name: fan, action: test_fanout, config: {count: 5}}\n"


def test_ws_narrowed_to_one_job_gets_its_descendants_and_nothing_else(client, runtime):
    other = execute(runtime, FAN.replace("id: s", "id: other"))
    wait_done(runtime, other)
    with client.websocket_connect("/ws?types=job_status_change") as everything:
        root_id = execute(runtime, FAN.replace("count: 5}", "count: 8, work_ms: 300}"))
        with client.websocket_connect(f"/ws?job_id={root_id}&types=job_status_change") as narrowed:
            seen = []
            while not any(m["payload"]["job_id"] == root_id and m["payload"]["status"] == "completed" for m in seen):
                assert len(seen) < 100, seen
                seen.append(json.loads(narrowed.receive_text()))
        step_id = runtime.jobs.children(root_id)[0].id
        children = {j.id for j in runtime.jobs.children(step_id)}
        ids = {m["payload"]["job_id"] for m in seen}
        assert ids <= {root_id, step_id} | children and children & ids  # grandchildren found by their parent
        assert json.loads(everything.receive_text())["type"] == "job_status_change"


def test_ws_rejects_unknown_types_and_jobs(client):
    with client.websocket_connect("/ws?types=bogus") as ws:
        message = json.loads(ws.receive_text())
        assert message["type"] == "error" and "bogus" in message["payload"]["error"]
    with client.websocket_connect("/ws?job_id=nope") as ws:
        assert "not found" in json.loads(ws.receive_text())["payload"]["error"]


def test_ws_batches_deliver_arrays_in_order(client, runtime):
    with client.websocket_connect("/ws?batch=1&types=job_log") as ws:
        for i in range(300):
            runtime.bus.publish("job_log", {"job_id": "j", "level": "info", "message": str(i)})
        got: list[str] = []
        while len(got) < 300:
            frame = json.loads(ws.receive_text())
            assert isinstance(frame, list)
            got += [m["payload"]["message"] for m in frame]
        assert got == [str(i) for i in range(300)]


def test_a_full_feed_drops_and_counts_instead_of_blocking(runtime):
    async def run() -> tuple[int, list]:
        hub = FeedHub(runtime, asyncio.get_running_loop())
        feed = hub.feed(types=["job_log"], limit=10)
        try:
            for i in range(25):  # the publisher never waits for this slow client
                runtime.bus.publish("job_log", {"job_id": "j", "message": str(i)})
            runtime.bus.publish("job_status_change", {"job_id": "j", "status": "running"})  # not asked for
            return await asyncio.wait_for(feed.get(100), 5)
        finally:
            feed.close()
            hub.close()

    # Its own thread and loop: the browser tests' Playwright keeps a loop running on the main thread.
    with ThreadPoolExecutor(1) as pool:
        dropped, events = pool.submit(asyncio.run, run()).result()
    assert dropped == 15 and [e.payload["message"] for e in events] == [str(i) for i in range(10)]


def test_server_sent_events_over_a_real_server(live_server):
    root_id = None
    with httpx.Client(base_url=live_server.url, timeout=20) as http:
        with http.stream("GET", "/api/events", params={"types": "job_status_change"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            root_id = execute(live_server.runtime, FAN)
            event_name = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event_name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    message = json.loads(line.split(":", 1)[1])
                    assert event_name == message["type"] == "job_status_change"
                    if message["payload"]["job_id"] == root_id and message["payload"]["status"] == "completed":
                        break
        assert http.get("/api/events", params={"types": "nope"}).status_code == 400


def test_a_client_that_leaves_is_let_go_at_once(client, runtime):
    with client.websocket_connect("/ws?types=job_log") as ws:
        ws.send_text("hello")  # clients may talk; the server ignores it
    hub = client.app.state.feed_hub
    wait_for(lambda: not hub.feeds, 5, what="the feed of the closed client to go")


def test_a_client_sending_bytes_is_ignored_not_dropped(client, runtime):
    with client.websocket_connect("/ws?types=job_log") as ws:
        ws.send_bytes(b"\x00\xff")
        runtime.bus.publish("job_log", {"job_id": "j", "message": "still here"})
        assert json.loads(ws.receive_text())["payload"]["message"] == "still here"
