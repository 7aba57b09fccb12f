"""The live event stream for programs: ``WS /ws`` and ``GET /api/events`` (Server-Sent Events).

Both serve the seed's six events as ``{"type", "payload"}`` JSON, narrowed by ``types`` (a comma-separated
list) and ``job_id`` (that job and its descendants). Each client gets an :class:`EventFeed`: a bounded
queue filled from the publishing threads. A slow or stalled client never slows the workers or the other
clients: when its queue is full, new events are dropped for it alone and counted, and the next thing it
receives is ``{"type": "events_dropped", "payload": {"count": n}}``.

With ``batch=1`` a WebSocket frame carries a JSON array of every event waiting (at most
:data:`BATCH_MAX`), instead of one event per frame: the way to follow thousands of events a second.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import HTTPConnection, Request
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from quaero.errors import NotFound, QuaeroError
from quaero.events import EVENT_TYPES, Event
from quaero.jsonutil import dumps
from quaero.runtime import Runtime
from quaero.web.http import runtime_of
from quaero.web.live import JobScope

QUEUE_LIMIT = 10_000
BATCH_MAX = 500


class EventFeed:
    """One client's filtered, bounded view of the event bus.

    The bus calls :meth:`_put` on the publishing thread; it only appends to a deque under a lock and
    wakes the client's task when the deque goes from empty to non-empty, so a busy stream costs one
    cross-thread wake-up per batch, not per event.
    """

    def __init__(self, runtime: Runtime, *, types: Iterable[str] | None = None, scope: JobScope | None = None,
                 limit: int = QUEUE_LIMIT) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: deque[Event] = deque()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._limit = limit
        self._scope = scope
        self.dropped = 0
        self._unsubscribe = runtime.bus.subscribe(self._put, list(types) if types else None)

    def _put(self, event: Event) -> None:
        if self._scope is not None and event not in self._scope:
            return
        with self._lock:
            if len(self._queue) >= self._limit:
                self.dropped += 1
                return
            self._queue.append(event)
            first = len(self._queue) == 1
        if first:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def get(self, most: int = 1) -> tuple[int, list[Event]]:
        """Wait for events; return (how many were dropped since the last call, up to ``most`` events)."""
        while True:
            with self._lock:
                if self._queue or self.dropped:
                    events = [self._queue.popleft() for _ in range(min(most, len(self._queue)))]
                    dropped, self.dropped = self.dropped, 0
                    return dropped, events
                self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        self._unsubscribe()


def dropped_message(count: int) -> dict[str, Any]:
    return {"type": "events_dropped", "payload": {"count": count}}


async def open_feed(connection: HTTPConnection) -> EventFeed:
    """The feed a request asks for; a :class:`QuaeroError` names a bad ``types`` or ``job_id``."""
    runtime = runtime_of(connection)
    types = [t for t in connection.query_params.get("types", "").split(",") if t]
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise QuaeroError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    job_id = connection.query_params.get("job_id")
    scope = None
    if job_id:
        await asyncio.to_thread(runtime.services.jobs.get, job_id)
        scope = await asyncio.to_thread(JobScope, runtime, job_id)
    return EventFeed(runtime, types=types or None, scope=scope)


async def events_ws(websocket: WebSocket) -> None:
    """Stream events as JSON: ``?types=a,b``, ``?job_id=`` and ``?batch=1`` narrow and shape the stream."""
    await websocket.accept()
    try:
        feed = await open_feed(websocket)
    except QuaeroError as exc:
        known = list(EVENT_TYPES) if not isinstance(exc, NotFound) else None
        await websocket.send_text(dumps({"type": "error", "payload": {"error": exc.message, "known": known}}))
        await websocket.close(code=1008)
        return
    batch = websocket.query_params.get("batch") in ("1", "true", "yes")
    try:
        while True:
            dropped, events = await feed.get(BATCH_MAX if batch else 1)
            if dropped:
                await websocket.send_text(dumps(dropped_message(dropped)))
            if not events:
                continue
            if batch:
                await websocket.send_text("[" + ",".join(e.as_json() for e in events) + "]")
            else:
                await websocket.send_text(events[0].as_json())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        feed.close()


async def events_sse(request: Request) -> EventSourceResponse:
    """The same stream as Server-Sent Events (``event:`` is the type, ``data:`` the message).
    ---
    summary: Live events as Server-Sent Events
    parameters:
      - {name: types, in: query, description: "comma-separated event types (default: all six)", schema: {type: string}}
      - {name: job_id, in: query, description: "only this job and its descendants", schema: {type: string}}
    responses:
      200:
        description: "an endless text/event-stream; each event's data is {\\"type\\", \\"payload\\"}"
        content:
          text/event-stream:
            schema: {type: string}
      400:
        description: an unknown event type
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Error"}
      404:
        description: no such job
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Error"}
    """
    feed = await open_feed(request)

    async def messages() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                dropped, events = await feed.get(BATCH_MAX)
                if dropped:
                    yield {"event": "events_dropped", "data": dumps(dropped_message(dropped))}
                for event in events:
                    yield {"event": event.type, "data": event.as_json()}
        finally:
            feed.close()

    return EventSourceResponse(messages(), ping=15)


routes = [
    Route("/api/events", events_sse, methods=["GET"]),
    WebSocketRoute("/ws", events_ws),
]
