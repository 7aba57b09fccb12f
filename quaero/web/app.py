"""The Starlette application: the REST API, the pages, the event stream and MCP over one Runtime.

Errors from the ``QuaeroError`` tree become ``{"error", "detail"}`` with their status code; nothing a
client sends produces a 500. A 500 (a bug) answers with an error id only; its traceback is logged under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from quaero.errors import QuaeroError
from quaero.runtime import Runtime
from quaero.runtime.supervisor import WorkerSupervisor
from quaero.settings import GUIDE_PATH, Settings
from quaero.web import (
    api,
    api_bulk,
    api_documents,
    api_settings,
    api_users,
    api_webhooks,
    guide,
    live,
    metrics,
    openapi,
    pages,
    pages_accounts,
    pages_bulk,
    pages_documents,
    stream,
)
from quaero.web.mcp import McpEndpoint
from quaero.web.plugins import plugin_web
from quaero.web.render import STATIC, layout, make_templates, templates_of
from quaero.web.security import SecurityMiddleware, is_page

log = logging.getLogger(__name__)


HEADINGS = {400: "That did not work", 401: "Sign in first", 403: "Not allowed", 404: "Not found",
            405: "Not allowed here", 409: "Not now", 413: "Too large", 429: "Wait a moment",
            500: "Something went wrong"}


def _error(request: HTTPConnection, status: int, message: str, detail: object = None,
           headers: Mapping[str, str] | None = None) -> Response:
    """JSON ``{"error", "detail"}`` for the API; an HTML page in the layout for the pages."""
    if is_page(request.url.path):
        html = templates_of(request).get_template("error.html").render(layout(
            request, "", title=HEADINGS.get(status, "Error"), heading=HEADINGS.get(status, "Error"),
            message=message, detail=detail if isinstance(detail, list) else None))
        return HTMLResponse(html, status_code=status, headers=headers)
    return JSONResponse({"error": message, "detail": detail}, status_code=status, headers=headers)


async def _quaero_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, QuaeroError)
    status = exc.status_code if exc.status_code != 500 or type(exc) is not QuaeroError else 400
    return _error(request, status, exc.message, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail, headers=exc.headers)  # e.g. a 405's Allow


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug's answer says only that it happened and under which id; the detail goes to the log."""
    error_id = secrets.token_hex(6)
    log.error("unhandled error %s on %s %s", error_id, request.method, request.url.path,
              exc_info=(type(exc), exc, exc.__traceback__))
    return _error(request, 500, f"internal error {error_id}: the server's log has the details under this id",
                  {"error_id": error_id})


async def _sample_queue(runtime: Runtime) -> None:
    """Sample the queue depth for the dashboard's chart while the app runs."""
    history = pages.runtime_history(runtime)
    while True:
        await asyncio.sleep(history.interval)
        try:
            await asyncio.to_thread(history.sample, runtime)
        except Exception:  # a broker hiccup must not end the sampling
            log.warning("queue depth sample failed", exc_info=True)


def create_app(settings: Settings, *, runtime: Runtime | None = None,
               supervisor: WorkerSupervisor | None = None) -> Starlette:
    """The web application; it starts and stops its runtime with its lifespan unless one is given.

    ``supervisor``: worker processes started already, which the runtime it makes takes over.
    """
    owned = runtime is None
    served = runtime or Runtime(settings, role="server", supervisor=supervisor)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owned:
            await asyncio.to_thread(served.start)
            url = settings.server_url or f"http://{settings.host}:{settings.port}"
            log.info("Quaero is ready: open %s/ in a browser (first steps: %s%sfirst-steps); data in %s", url, url,
                     GUIDE_PATH, settings.data_dir.resolve())
        sampler = asyncio.create_task(_sample_queue(served))
        try:
            async with mcp.run():  # the MCP sessions' task group
                yield
        finally:
            sampler.cancel()
            if owned:
                await asyncio.to_thread(served.stop)

    mcp = McpEndpoint(served)
    extra = plugin_web(served, taken=openapi.component_names())
    # The core's routes first: a plugin adds pages and endpoints, it cannot shadow the core's.
    routes = [*stream.routes, *api.routes, *api_users.routes, *metrics.routes, *openapi.routes,
              *api_documents.routes, *api_settings.routes,
              *api_bulk.routes,
              *api_webhooks.routes,  # before the pages: /jobs/{id}/webhooks is not a job action
              *pages_bulk.routes,  # before pages.routes, whose /jobs/{id}/{action} would take its paths
              *pages.routes, *pages_documents.routes, *pages_accounts.routes, *live.routes,
              *guide.routes,
              Route("/mcp", mcp),  # MCP over Streamable HTTP (every method: quaero/web/mcp.py)
              *extra.routes,
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(SecurityMiddleware, settings=settings, runtime=served, refuse=_error)],
                    exception_handlers={QuaeroError: _quaero_error, HTTPException: _http_error,
                                        Exception: _unexpected})
    app.state.runtime = served
    app.state.templates = make_templates(settings, extra.template_dirs)
    app.state.plugin_bodies = extra.bodies
    return app
