"""The live event stream for programs: ``WS /ws`` and ``GET /api/events`` (Server-Sent Events).

Both serve the seed's six events as ``{"type", "payload"}`` JSON, narrowed by ``types`` (a comma-separated
list) and ``job_id`` (that job and its descendants). Each client gets an :class:`EventFeed`: a bounded
queue that the loop's :class:`FeedHub` fills from the publishing threads. A slow or stalled client never
slows the workers or the other clients: when its queue is full, new events are dropped for it alone and
counted, and the next thing it receives is ``{"type": "events_dropped", "payload": {"count": n}}``.

With ``batch=1`` a WebSocket frame carries a JSON array of every event waiting (at most
:data:`BATCH_MAX`), instead of one event per frame: the way to follow thousands of events a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import HTTPConnection, Request
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from quaero.errors import NotFound, QuaeroError
from quaero.runtime import Runtime
from quaero.stores.events import EVENT_TYPES, Event
from quaero.stores.jsonutil import dumps
from quaero.web.http import runtime_of
from quaero.web.live import JobScope
from quaero.web.slots import StreamSlots, take_sse_slot, websocket_slot

QUEUE_LIMIT = 10_000
BATCH_MAX = 500
HUB_LIMIT = 100_000


class FeedHub:
    """The one bus subscription of an event loop, fanning events out to that loop's feeds.

    The bus calls :meth:`_put` on the publishing thread (a worker, the monitor, the orchestrator). It only
    appends to a deque and, when the deque was empty, asks the loop once to fan out: however many clients
    listen, a burst of events costs one cross-thread wake-up, and the publisher never waits for a client.
    """

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._incoming: deque[Event] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._overflow = 0
        self.feeds: set[EventFeed] = set()
        self._unsubscribe = runtime.bus.subscribe(self._put)

    def _put(self, event: Event) -> None:
        if not self.feeds:
            return
        with self._lock:
            if len(self._incoming) >= HUB_LIMIT:  # the loop itself is stalled: every feed misses this one
                self._overflow += 1
                return
            self._incoming.append(event)
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._fan_out)

    def _fan_out(self) -> None:
        with self._lock:
            events, self._incoming = self._incoming, deque()
            overflow, self._overflow = self._overflow, 0
            self._scheduled = False
        for feed in list(self.feeds):
            feed.offer(events, overflow)

    def feed(self, *, types: Iterable[str] | None = None, scope: JobScope | None = None,
             limit: int = QUEUE_LIMIT) -> EventFeed:
        """A new client's feed (close it when the client leaves)."""
        feed = EventFeed(self, frozenset(types) if types else None, scope, limit)
        self.feeds.add(feed)
        return feed

    def close(self) -> None:
        self._unsubscribe()


def hub_of(connection: HTTPConnection) -> FeedHub:
    """The app's hub for the running loop (made on first use; a new loop, as in tests, gets its own)."""
    state = connection.app.state
    loop = asyncio.get_running_loop()
    hub = getattr(state, "feed_hub", None)
    if hub is None or hub.loop is not loop:
        if hub is not None:
            hub.close()
        hub = state.feed_hub = FeedHub(runtime_of(connection), loop)
    return hub


class EventFeed:
    """One client's filtered, bounded queue of events; lives on the event loop (no locks)."""

    def __init__(self, hub: FeedHub, types: frozenset[str] | None, scope: JobScope | None, limit: int) -> None:
        self._hub = hub
        self._types = types
        self._scope = scope
        self._limit = limit
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0

    def offer(self, events: Iterable[Event], missed: int = 0) -> None:
        """Take the events this client asked for; past the limit, count them instead."""
        queue, types, scope = self._queue, self._types, self._scope
        self.dropped += missed
        for event in events:
            if (types is not None and event.type not in types) or (scope is not None and event not in scope):
                continue
            if len(queue) >= self._limit:
                self.dropped += 1
            else:
                queue.append(event)
        if queue or self.dropped:
            self._wake.set()

    async def get(self, most: int = 1) -> tuple[int, list[Event]]:
        """Wait for events; return (how many were dropped since the last call, up to ``most`` events)."""
        while not self._queue and not self.dropped:
            self._wake.clear()
            await self._wake.wait()
        queue = self._queue
        events = [queue.popleft() for _ in range(min(most, len(queue)))]
        dropped, self.dropped = self.dropped, 0
        return dropped, events

    def close(self) -> None:
        self._hub.feeds.discard(self)


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
        await asyncio.to_thread(runtime.jobs.get, job_id)
        scope = await asyncio.to_thread(JobScope, runtime, job_id)
    return hub_of(connection).feed(types=types or None, scope=scope)


async def events_ws(websocket: WebSocket) -> None:
    """Stream events as JSON: ``?types=a,b``, ``?job_id=`` and ``?batch=1`` narrow and shape the stream."""
    async with websocket_slot(websocket) as admitted:
        if admitted:
            await _events_ws(websocket)


async def _events_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        feed = await open_feed(websocket)
    except QuaeroError as exc:
        known = list(EVENT_TYPES) if not isinstance(exc, NotFound) else None
        await websocket.send_text(dumps({"type": "error", "payload": {"error": exc.message, "known": known}}))
        await websocket.close(code=1008)
        return
    batch = websocket.query_params.get("batch") in ("1", "true", "yes")
    closed = asyncio.create_task(_until_closed(websocket))
    try:
        while True:
            # Everything waiting at once, whatever the mode: one wait per burst, not one per event.
            getting = asyncio.ensure_future(feed.get(BATCH_MAX))
            await asyncio.wait({getting, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done():  # the client left: stop now, not at the next event
                getting.cancel()
                break
            dropped, events = getting.result()
            if dropped:
                await websocket.send_text(dumps(dropped_message(dropped)))
            if not events:
                continue
            if batch:
                await websocket.send_text("[" + ",".join(e.as_json() for e in events) + "]")
            else:
                for event in events:
                    await websocket.send_text(event.as_json())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        feed.close()
        closed.cancel()


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # text or bytes: either is ignored


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
      503:
        description: "the server already serves max_stream_clients streams: try again after Retry-After seconds"
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Error"}
    """
    slots = take_sse_slot(request)
    try:
        feed = await open_feed(request)
    except BaseException:
        slots.give_back()
        raise

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

    return _HoldingResponse(messages(), slots, ping=15)


class _HoldingResponse(EventSourceResponse):
    """An event stream that gives its client slot back when it ends, however it ends."""

    def __init__(self, content: AsyncIterator[dict[str, str]], slots: StreamSlots, **options: Any) -> None:
        super().__init__(content, **options)
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.give_back()


routes = [
    Route("/api/events", events_sse, methods=["GET"]),
    WebSocketRoute("/ws", events_ws),
]
