"""The REST API (JSON): thin views that parse the request, call a service and return JSON."""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from quaero import __version__
from quaero.definition_store import definition_source, record_dict
from quaero.definitions import validate_definition
from quaero.errors import DefinitionError, QuaeroError
from quaero.events import EVENT_TYPES, Event
from quaero.views import job_dict
from quaero.web.http import int_param, json_object, page_params, read_body, runtime_of, status_param

log = logging.getLogger(__name__)
WS_QUEUE_LIMIT = 1000


INDEX = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Quaero</title></head>
<body><h1>Quaero {version}</h1><p>The dashboard pages are not built yet. The API:</p><ul>
<li><a href="/api/health">/api/health</a></li><li><a href="/api/plugins">/api/plugins</a></li>
<li><a href="/api/jobs/definitions">/api/jobs/definitions</a></li><li><a href="/api/jobs">/api/jobs</a></li>
<li><a href="/api/queue/stats">/api/queue/stats</a></li><li>WebSocket events: <code>/ws</code></li></ul></body></html>"""


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(INDEX.format(version=__version__))


async def health(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    return JSONResponse({"status": "ok", "version": __version__, "role": runtime.role,
                         "worker_processes": runtime.worker_processes})


async def plugins(request: Request) -> JSONResponse:
    return JSONResponse({"items": runtime_of(request).registry.listing()})


async def list_definitions(request: Request) -> JSONResponse:
    records = runtime_of(request).services.definitions.list()
    return JSONResponse({"items": [record_dict(r) for r in records], "total": len(records)})


async def create_definition(request: Request) -> JSONResponse:
    store = runtime_of(request).services.definitions
    source = definition_source(await read_body(request), request.headers.get("content-type"))
    record, definition = await asyncio.to_thread(store.create, source)
    return JSONResponse(record_dict(record, definition), status_code=201)


async def check_definition(request: Request) -> JSONResponse:
    store = runtime_of(request).services.definitions
    source = definition_source(await read_body(request), request.headers.get("content-type"))
    try:
        definition = store.parse(source)
    except DefinitionError as exc:
        return JSONResponse({"valid": False, "error": exc.message, "detail": exc.detail})
    return JSONResponse({"valid": True, "definition": definition.to_dict()})


async def definition(request: Request) -> JSONResponse:
    store = runtime_of(request).services.definitions
    definition_id = request.path_params["id"]
    if request.method == "GET":
        record, parsed = store.get(definition_id)
        return JSONResponse(record_dict(record, parsed))
    if request.method == "PUT":
        source = definition_source(await read_body(request), request.headers.get("content-type"))
        record, parsed = await asyncio.to_thread(store.update, definition_id, source)
        return JSONResponse(record_dict(record, parsed))
    await asyncio.to_thread(store.delete, definition_id)
    return JSONResponse({"deleted": definition_id})


async def execute_definition(request: Request) -> JSONResponse:
    orchestrator = runtime_of(request).orchestrator
    job_id = await asyncio.to_thread(orchestrator.execute, request.path_params["id"])
    return JSONResponse({"job_id": job_id}, status_code=202)


async def list_jobs(request: Request) -> JSONResponse:
    models = runtime_of(request).models
    Job = models.Job
    query = Job.select()
    status_param(request)
    for name in ("status", "type", "parent_id", "definition_id"):
        value = request.query_params.get(name)
        if value:
            query = query.where(getattr(Job, name) == value)
    limit, offset = page_params(request)
    total = query.count()
    items = [job_dict(job) for job in query.order_by(Job.id.desc()).limit(limit).offset(offset)]
    return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})


async def job(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
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
    services = runtime_of(request).services
    job_id = request.path_params["id"]
    services.jobs.get(job_id)
    ids = [job_id]
    if request.query_params.get("include_children") in ("1", "true", "yes"):
        Job = services.models.Job
        ids += [row.id for row in Job.select(Job.id).where(Job.root_id == job_id, Job.id != job_id)]
    lines = await asyncio.to_thread(services.logs.read, ids, after_id=int_param(request, "after_id", 0, high=2**62),
                                    level=request.query_params.get("level"),
                                    limit=int_param(request, "limit", 500, low=1, high=5000))
    return JSONResponse({"items": lines})


async def job_children(request: Request) -> JSONResponse:
    jobs = runtime_of(request).services.jobs
    job_id = request.path_params["id"]
    parent = jobs.get(job_id)
    limit, offset = page_params(request)
    items = jobs.children(job_id, status=status_param(request), limit=limit, offset=offset)
    return JSONResponse({"items": [job_dict(j) for j in items], "total": jobs.counts(parent.id).total,
                         "limit": limit, "offset": offset})


async def cancel_job(request: Request) -> JSONResponse:
    orchestrator = runtime_of(request).orchestrator
    running = await asyncio.to_thread(orchestrator.cancel, request.path_params["id"])
    return JSONResponse({"job_id": request.path_params["id"], "status": "cancelled", "signalled": len(running)})


async def rerun_job(request: Request) -> JSONResponse:
    orchestrator = runtime_of(request).orchestrator
    job_id = await asyncio.to_thread(orchestrator.rerun, request.path_params["id"])
    return JSONResponse({"job_id": job_id}, status_code=202)


QUICK_CRAWL_KEYS = {"url", "max_depth", "max_pages", "include_patterns", "exclude_patterns", "auth_id"}


async def quick_crawl(request: Request) -> JSONResponse:
    """Crawl one site now: ``{"url", "max_depth", "max_pages", "include_patterns", "exclude_patterns", "auth_id"}``."""
    runtime = runtime_of(request)
    data = await json_object(request)
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
    return JSONResponse({"items": runtime_of(request).services.credentials.listing()})


async def auth_create(request: Request) -> JSONResponse:
    data = await json_object(request)
    unknown = sorted(set(data) - {"id", "base_url", "cookies", "headers"})
    if unknown or not isinstance(data.get("id"), str):
        raise QuaeroError("give {\"id\", \"base_url\", \"cookies\": {...}, \"headers\": {...}}"
                          + (f"; unknown keys {unknown}" if unknown else ""))
    cookies, headers = data.get("cookies") or {}, data.get("headers") or {}
    if not isinstance(cookies, dict) or not isinstance(headers, dict):
        raise QuaeroError("cookies and headers are JSON objects of names to values")
    runtime_of(request).services.credentials.save(data["id"], base_url=str(data.get("base_url") or ""),
                                                cookies=cookies, headers=headers)
    return JSONResponse({"id": data["id"]}, status_code=201)


async def auth_delete(request: Request) -> JSONResponse:
    runtime_of(request).services.credentials.delete(request.path_params["id"])
    return JSONResponse({"deleted": request.path_params["id"]})


async def queue_stats(request: Request) -> JSONResponse:
    broker = runtime_of(request).broker
    stats = broker.queue_stats() if hasattr(broker, "queue_stats") else {}
    return JSONResponse({"queues": stats})


async def events_ws(websocket: WebSocket) -> None:
    """Stream events as JSON; ``?types=a,b`` and ``?job_id=`` narrow what a client gets."""
    runtime = runtime_of(websocket)
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


routes = [
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
