"""Live pages: server-rendered HTML fragments pushed over a WebSocket (htmx ``ws`` extension).

A page that updates live connects to ``/live/<view>`` with its own query string. The server subscribes to
the event bus for that connection, and when an event that concerns the page arrives it re-renders the
page's live blocks from the page's own context function and template (:mod:`quaero.web.pages`), marked
for out-of-band swapping, so htmx replaces each block by its id. Renders are coalesced: however many
events arrive, a connection renders at most once per ``min_interval``, and a bus callback only flips a
flag, so thousands of events per second cost the workers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from quaero.errors import QuaeroError
from quaero.runtime import Runtime
from quaero.stores.events import JOB_LOG, JOB_SPAWN, JOB_STATUS_CHANGE, Event
from quaero.stores.logs import last_id
from quaero.web import pages
from quaero.web.http import runtime_of
from quaero.web.render import blocks, templates_of, viewer_context
from quaero.web.slots import websocket_slot

log = logging.getLogger(__name__)


class JobScope:
    """A job and everything below it, learnt as events arrive.

    It starts as the job and its direct children; a job whose parent is in the scope joins it when its
    first event is seen, so a crawl's thousands of children need no lookup. Shared by the live pages and
    the JSON event stream's ``job_id`` filter.
    """

    def __init__(self, runtime: Runtime, job_id: str) -> None:
        self.ids = {job_id, *runtime.jobs.child_ids(job_id)}

    def __contains__(self, event: Event) -> bool:
        payload = event.payload
        job_id = payload.get("job_id") or payload.get("child_job_id")
        if job_id in self.ids:
            return True
        parent = payload.get("parent_id") or payload.get("parent_job_id")
        if parent in self.ids:
            if job_id:
                self.ids.add(job_id)
            return True
        return False


@dataclass
class LiveView:
    """One page's live part: its template, the blocks that change, its context, and which events matter."""

    template: str
    block_names: list[str]
    context: Callable[[Runtime, Mapping[str, str]], dict[str, Any]]
    event_types: tuple[str, ...] = (JOB_STATUS_CHANGE, JOB_SPAWN)
    min_interval: float = 1.0
    refresh: float | None = None  # re-render this often even without events (charts, queue depth)
    scoped: bool = False  # only events about the job in the URL and its descendants
    tails_log: bool = False


VIEWS: dict[str, LiveView] = {
    "dashboard": LiveView("dashboard.html", ["summary", "running", "failures"], pages.dashboard_context,
                          min_interval=2.0, refresh=30.0),
    "jobs": LiveView("jobs.html", ["table"], pages.jobs_context),
    "job": LiveView("job.html", ["header", "children"], pages.job_context,
                    event_types=(JOB_STATUS_CHANGE, JOB_SPAWN, JOB_LOG, "job_progress", "task_progress"),
                    min_interval=0.5, scoped=True, tails_log=True),
    "definitions": LiveView("definitions.html", ["table"], pages.definitions_context, min_interval=2.0),
    "definition": LiveView("definition.html", ["runs"], pages.definition_context, min_interval=2.0),
    "queue": LiveView("queue.html", ["stats", "dead"], pages.queue_context, min_interval=2.0, refresh=5.0),
}


@dataclass
class _Connection:
    """One live page: a dirty flag set from event threads and awaited by the render loop."""

    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _dirty: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mark(self) -> None:
        with self._lock:
            if self._dirty:
                return
            self._dirty = True
        self.loop.call_soon_threadsafe(self.wake.set)

    def take(self) -> None:
        with self._lock:
            self._dirty = False
        self.wake.clear()


def _render(runtime: Runtime, view: LiveView, params: dict[str, str], state: dict[str, Any],
            templates: jinja2.Environment, viewer: Mapping[str, Any] | None = None) -> str:
    """The view's live blocks, and with ``tails_log`` the log lines written since the last render.

    ``viewer`` is what the page knew of who looks (:func:`~quaero.web.render.viewer_context`): the blocks'
    forms keep their CSRF token and a viewer's blocks stay without buttons."""
    context = {**view.context(runtime, params), **(viewer or {})}
    html = blocks(view.template, view.block_names, context, templates=templates)
    if view.tails_log:
        lines = runtime.logs.read([params["id"]], after_id=state["after_id"], level=context["level"] or None,
                                           limit=500, descendants=True)
        if lines:
            state["after_id"] = last_id(lines)
            html += blocks(view.template, ["new_lines"], {**context, "lines": lines}, templates=templates)
    return html


def _last_log_id(runtime: Runtime, params: Mapping[str, str]) -> int:
    """Where the page's log ends now (the page itself was rendered a moment ago)."""
    lines = runtime.logs.read([params["id"]], before_id=0, limit=1, descendants=True)
    return last_id(lines)


async def live(websocket: WebSocket) -> None:
    """Push a page's changed blocks while it is open (one of the process's stream slots)."""
    async with websocket_slot(websocket) as admitted:
        if admitted:
            await _live(websocket)


async def _live(websocket: WebSocket) -> None:
    runtime = runtime_of(websocket)
    view = VIEWS.get(websocket.path_params["view"])
    await websocket.accept()
    if view is None:
        await websocket.close(code=1008, reason="unknown live view")
        return
    params = {**websocket.query_params}
    if "id" in websocket.path_params:
        params["id"] = websocket.path_params["id"]
    try:
        scope = await asyncio.to_thread(JobScope, runtime, params["id"]) if view.scoped else None
        state: dict[str, Any] = {}
        if view.tails_log:  # go on from the last line the page showed
            given = params.get("after_id", "")
            state["after_id"] = (int(given) if given.isdigit() and len(given) < 19
                                 else await asyncio.to_thread(_last_log_id, runtime, params))
    except (QuaeroError, KeyError):
        await websocket.close(code=1008, reason="unknown job")
        return
    connection = _Connection(asyncio.get_running_loop())
    viewer = viewer_context(websocket)

    def on_event(event: Event) -> None:
        if scope is None or event in scope:
            connection.mark()

    unsubscribe = runtime.bus.subscribe(on_event, view.event_types)
    # What changed between the page's render and this subscription had no one to tell it: the first
    # render goes out at once (the log goes on from the page's last line, so nothing shows twice).
    connection.mark()
    receiver = asyncio.create_task(_drain(websocket))
    try:
        while True:
            woken = asyncio.ensure_future(connection.wake.wait())
            await asyncio.wait({woken, receiver}, timeout=view.refresh or 60.0,
                               return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            if receiver.done():  # the page was closed
                break
            connection.take()
            html = await asyncio.to_thread(_render, runtime, view, params, state, templates_of(websocket), viewer)
            await websocket.send_text(html)
            await asyncio.sleep(view.min_interval)
    except (WebSocketDisconnect, RuntimeError):
        pass
    except QuaeroError as exc:  # the job was deleted while its page was open
        with contextlib.suppress(Exception):
            await websocket.close(code=1000, reason=exc.message[:120])
    finally:
        unsubscribe()
        receiver.cancel()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the browser sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # text or bytes: either is ignored


routes = [
    WebSocketRoute("/live/{view}", live),
    WebSocketRoute("/live/{view}/{id}", live),
]
