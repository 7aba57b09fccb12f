"""How many stream clients (``/ws``, ``/api/events``, the live pages) one server process serves at once.

Each open stream holds a bus subscription, a queue and a task: without a bound, clients that open streams
and never read them would take the process's memory. Past ``max_stream_clients`` a WebSocket is closed
with 1013 (try again later) and an SSE request answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from quaero.web.http import runtime_of

TRY_AGAIN_LATER = 1013  # the WebSocket close code for "try again later" (RFC 6455 registry)
RETRY_AFTER = 5  # seconds


class StreamSlots:
    """A counter of open streams with a limit (shared by the loops of one process, hence the lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take a slot; ``False`` when every one is taken."""
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


def slots_of(connection: HTTPConnection) -> StreamSlots:
    """The app's slots (made on first use)."""
    state = connection.app.state
    slots = getattr(state, "stream_slots", None)
    if slots is None:
        slots = state.stream_slots = StreamSlots(runtime_of(connection).settings.max_stream_clients)
    return slots


def full_message(slots: StreamSlots) -> str:
    return (f"this server already serves {slots.limit} live streams (the setting max_stream_clients): "
            f"try again later")


@contextlib.asynccontextmanager
async def websocket_slot(websocket: WebSocket) -> AsyncIterator[bool]:
    """Hold a slot while the block runs; when none is free, accept and close with 1013 and yield ``False``."""
    slots = slots_of(websocket)
    if not slots.take():
        await websocket.accept()
        await websocket.close(code=TRY_AGAIN_LATER, reason=full_message(slots)[:120])
        yield False
        return
    try:
        yield True
    finally:
        slots.give_back()


def take_sse_slot(request: HTTPConnection) -> StreamSlots:
    """Take a slot for an SSE response (give it back when the stream ends); a 503 when none is free."""
    slots = slots_of(request)
    if not slots.take():
        raise HTTPException(503, full_message(slots), headers={"Retry-After": str(RETRY_AFTER)})
    return slots
