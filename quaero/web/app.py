"""The Starlette application: REST API and WebSocket event stream over one Runtime.

Views are thin: parse the request, call a service, return JSON. Errors from the ``QuaeroError`` tree
become ``{"error", "detail"}`` with their status code; nothing a client sends produces a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from quaero import __version__
from quaero.definition_store import definition_source, record_dict
from quaero.definitions import validate_definition
from quaero.errors import DefinitionError, QuaeroError
from quaero.events import EVENT_TYPES, Event
from quaero.models import JOB_STATUSES
from quaero.runtime import Runtime
from quaero.settings import Settings
from quaero.views import job_dict

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000
WS_QUEUE_LIMIT = 1000


def _runtime(request: Request | WebSocket) -> Runtime:
    return request.app.state.runtime


def _int(request: Request, name: str, default: int, *, low: int = 0, high: int = 10_000) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QuaeroError(f"query parameter {name!r} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise QuaeroError(f"query parameter {name!r} must be between {low} and {high}, got {value}")
    return value


def _status(request: Request) -> str | None:
    """The ``status`` query parameter, checked."""
    status = request.query_params.get("status") or None
    if status is not None and status not in JOB_STATUSES:
        raise QuaeroError(f"status {status!r} is not one of {', '.join(JOB_STATUSES)}")
    return status


def _page(request: Request) -> tuple[int, int]:
    """The ``limit`` and ``offset`` query parameters, checked."""
    return _int(request, "limit", 50, low=1, high=1000), _int(request, "offset", 0, high=10_000_000)


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    return body


INDEX = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Quaero</title></head>
<body><h1>Quaero {version}</h1><p>The dashboard pages are not built yet. The API:</p><ul>
<li><a href="/api/health">/api/health</a></li><li><a href="/api/plugins">/api/plugins</a></li>
<li><a href="/api/jobs/definitions">/api/jobs/definitions</a></li><li><a href="/api/jobs">/api/jobs</a></li>
<li><a href="/api/queue/stats">/api/queue/stats</a></li><li>WebSocket events: <code>/ws</code></li></ul></body></html>"""


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(INDEX.format(version=__version__))


async def health(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    return JSONResponse({"status": "ok", "version": __version__, "role": runtime.role,
                         "worker_processes": runtime.worker_processes})


async def plugins(request: Request) -> JSONResponse:
    return JSONResponse({"items": _runtime(request).registry.listing()})


async def list_definitions(request: Request) -> JSONResponse:
    records = _runtime(request).services.definitions.list()
    return JSONResponse({"items": [record_dict(r) for r in records], "total": len(records)})


async def create_definition(request: Request) -> JSONResponse:
    store = _runtime(request).services.definitions
    source = definition_source(await _body(request), request.headers.get("content-type"))
    record, definition = await asyncio.to_thread(store.create, source)
    return JSONResponse(record_dict(record, definition), status_code=201)


async def check_definition(request: Request) -> JSONResponse:
    store = _runtime(request).services.definitions
    source = definition_source(await _body(request), request.headers.get("content-type"))
    try:
        definition = store.parse(source)
    except DefinitionError as exc:
        return JSONResponse({"valid": False, "error": exc.message, "detail": exc.detail})
    return JSONResponse({"valid": True, "definition": definition.to_dict()})


async def definition(request: Request) -> JSONResponse:
    store = _runtime(request).services.definitions
    definition_id = request.path_params["id"]
    if request.method == "GET":
        record, parsed = store.get(definition_id)
        return JSONResponse(record_dict(record, parsed))
    if request.method == "PUT":
        source = definition_source(await _body(request), request.headers.get("content-type"))
        record, parsed = await asyncio.to_thread(store.update, definition_id, source)
        return JSONResponse(record_dict(record, parsed))
    await asyncio.to_thread(store.delete, definition_id)
    return JSONResponse({"deleted": definition_id})


async def execute_definition(request: Request) -> JSONResponse:
    orchestrator = _runtime(request).orchestrator
    job_id = await asyncio.to_thread(orchestrator.execute, request.path_params["id"])
    return JSONResponse({"job_id": job_id}, status_code=202)


async def list_jobs(request: Request) -> JSONResponse:
    models = _runtime(request).models
    Job = models.Job
    query = Job.select()
    _status(request)
    for name in ("status", "type", "parent_id", "definition_id"):
        value = request.query_params.get(name)
        if value:
            query = query.where(getattr(Job, name) == value)
    limit, offset = _page(request)
    total = query.count()
    items = [job_dict(job) for job in query.order_by(Job.id.desc()).limit(limit).offset(offset)]
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


async def job(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    job_id = request.path_params["id"]
    if request.method == "DELETE":
        removed = await asyncio.to_thread(runtime.services.jobs.delete, job_id)
        return JSONResponse({"deleted": job_id, "jobs_removed": removed})
    found = runtime.services.jobs.get(job_id)
    data = job_dict(found)
    if found.type == "step":
        action = runtime.registry.actions.get(found.data.get("action", ""))
        if action is not None:
            data["stats"] = await asyncio.to_thread(action.manager.stats, runtime.services, found)
    return JSONResponse(data)


async def job_logs(request: Request) -> JSONResponse:
    services = _runtime(request).services
    job_id = request.path_params["id"]
    services.jobs.get(job_id)
    ids = [job_id]
    if request.query_params.get("include_children") in ("1", "true", "yes"):
        Job = services.models.Job
        ids += [row.id for row in Job.select(Job.id).where(Job.root_id == job_id, Job.id != job_id)]
    lines = await asyncio.to_thread(services.logs.read, ids, after_id=_int(request, "after_id", 0, high=2**62),
                                    level=request.query_params.get("level"),
                                    limit=_int(request, "limit", 500, low=1, high=5000))
    return JSONResponse({"items": lines})


async def job_children(request: Request) -> JSONResponse:
    jobs = _runtime(request).services.jobs
    job_id = request.path_params["id"]
    parent = jobs.get(job_id)
    limit, offset = _page(request)
    items = jobs.children(job_id, status=_status(request), limit=limit, offset=offset)
    return JSONResponse({"items": [job_dict(j) for j in items], "total": jobs.counts(parent.id).total,
                         "limit": limit, "offset": offset})


async def cancel_job(request: Request) -> JSONResponse:
    orchestrator = _runtime(request).orchestrator
    running = await asyncio.to_thread(orchestrator.cancel, request.path_params["id"])
    return JSONResponse({"job_id": request.path_params["id"], "status": "cancelled", "signalled": len(running)})


async def rerun_job(request: Request) -> JSONResponse:
    orchestrator = _runtime(request).orchestrator
    job_id = await asyncio.to_thread(orchestrator.rerun, request.path_params["id"])
    return JSONResponse({"job_id": job_id}, status_code=202)


QUICK_CRAWL_KEYS = {"url", "max_depth", "max_pages", "include_patterns", "exclude_patterns", "auth_id"}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await _body(request) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuaeroError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise QuaeroError("the body must be a JSON object")
    return data


async def quick_crawl(request: Request) -> JSONResponse:
    """Crawl one site now: ``{"url", "max_depth", "max_pages", "include_patterns", "exclude_patterns", "auth_id"}``."""
    runtime = _runtime(request)
    data = await _json_object(request)
    unknown = sorted(set(data) - QUICK_CRAWL_KEYS)
    if unknown:
        raise DefinitionError(f"unknown keys {unknown}; accepted: {sorted(QUICK_CRAWL_KEYS)}",
                              detail=[{"path": key, "message": "unknown key"} for key in unknown])
    if not isinstance(data.get("url"), str):
        raise DefinitionError("'url' (the page to start from) is required",
                              detail=[{"path": "url", "message": "required"}])
    config = {"start_urls": [data["url"]], **{k: v for k, v in data.items() if k not in ("url", "auth_id")}}
    if data.get("auth_id"):
        config["auth_id"] = data["auth_id"]
    definition = validate_definition(
        {"id": "quick-crawl", "name": f"Quick crawl of {data['url']}"[:200],
         "steps": [{"name": "crawl", "action": "crawl", "config": config}]},
        runtime.registry, origin="quick crawl")
    job_id = await asyncio.to_thread(runtime.orchestrator.execute, definition, trigger="quick crawl")
    return JSONResponse({"job_id": job_id}, status_code=202)


async def auth_list(request: Request) -> JSONResponse:
    return JSONResponse({"items": _runtime(request).services.credentials.listing()})


async def auth_create(request: Request) -> JSONResponse:
    data = await _json_object(request)
    unknown = sorted(set(data) - {"id", "base_url", "cookies", "headers"})
    if unknown or not isinstance(data.get("id"), str):
        raise QuaeroError("give {\"id\", \"base_url\", \"cookies\": {...}, \"headers\": {...}}"
                          + (f"; unknown keys {unknown}" if unknown else ""))
    cookies, headers = data.get("cookies") or {}, data.get("headers") or {}
    if not isinstance(cookies, dict) or not isinstance(headers, dict):
        raise QuaeroError("cookies and headers are JSON objects of names to values")
    _runtime(request).services.credentials.save(data["id"], base_url=str(data.get("base_url") or ""),
                                                cookies=cookies, headers=headers)
    return JSONResponse({"id": data["id"]}, status_code=201)


async def auth_delete(request: Request) -> JSONResponse:
    _runtime(request).services.credentials.delete(request.path_params["id"])
    return JSONResponse({"deleted": request.path_params["id"]})


async def queue_stats(request: Request) -> JSONResponse:
    broker = _runtime(request).broker
    stats = broker.queue_stats() if hasattr(broker, "queue_stats") else {}
    return JSONResponse({"queues": stats})


async def events_ws(websocket: WebSocket) -> None:
    """Stream events as JSON; ``?types=a,b`` and ``?job_id=`` narrow what a client gets."""
    runtime = _runtime(websocket)
    types = [t for t in websocket.query_params.get("types", "").split(",") if t]
    unknown = set(types) - set(EVENT_TYPES)
    await websocket.accept()
    if unknown:
        await websocket.send_json({"type": "error", "payload": {"error": f"unknown event types: {sorted(unknown)}",
                                                                 "known": list(EVENT_TYPES)}})
        await websocket.close(code=1008)
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue(WS_QUEUE_LIMIT)
    dropped = 0

    def put(event: Event) -> None:
        nonlocal dropped
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            dropped += 1  # a slow client never slows the workers: it is told what it missed

    unsubscribe = runtime.bus.subscribe(lambda e: loop.call_soon_threadsafe(put, e), types or None)
    try:
        while True:
            event = await queue.get()
            if dropped:
                missed, dropped = dropped, 0
                await websocket.send_text(json.dumps({"type": "events_dropped", "payload": {"count": missed}}))
            await websocket.send_text(json.dumps(event.as_message()))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        unsubscribe()


async def _quaero_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuaeroError)
    status = exc.status_code if exc.status_code != 500 or type(exc) is not QuaeroError else 400
    return JSONResponse({"error": exc.message, "detail": exc.detail}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail, "detail": None}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error", "detail": str(exc)}, status_code=500)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Starlette:
    """The web application; it starts and stops its runtime with its lifespan unless one is given."""
    owned = runtime is None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.runtime = runtime or Runtime(settings, role="server")
        if owned:
            await asyncio.to_thread(app.state.runtime.start)
        try:
            yield
        finally:
            if owned:
                await asyncio.to_thread(app.state.runtime.stop)

    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/plugins", plugins),
        Route("/api/jobs/definitions", list_definitions, methods=["GET"]),
        Route("/api/jobs/definitions", create_definition, methods=["POST"]),
        Route("/api/jobs/definitions/validate", check_definition, methods=["POST"]),
        Route("/api/jobs/definitions/{id}", definition, methods=["GET", "PUT", "DELETE"]),
        Route("/api/jobs/definitions/{id}/execute", execute_definition, methods=["POST"]),
        Route("/api/jobs/quick-crawl", quick_crawl, methods=["POST"]),
        Route("/api/auth", auth_list, methods=["GET"]),
        Route("/api/auth", auth_create, methods=["POST"]),
        Route("/api/auth/{id}", auth_delete, methods=["DELETE"]),
        Route("/api/jobs", list_jobs),
        Route("/api/jobs/{id}", job, methods=["GET", "DELETE"]),
        Route("/api/jobs/{id}/logs", job_logs),
        Route("/api/jobs/{id}/children", job_children),
        Route("/api/jobs/{id}/cancel", cancel_job, methods=["POST"]),
        Route("/api/jobs/{id}/rerun", rerun_job, methods=["POST"]),
        Route("/api/queue/stats", queue_stats),
        WebSocketRoute("/ws", events_ws),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={QuaeroError: _quaero_error, HTTPException: _http_error,
                                        Exception: _unexpected})
    if runtime is not None:
        app.state.runtime = runtime
    return app
