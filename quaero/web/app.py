"""The Starlette application: the REST API, the pages and the event stream over one Runtime.

Errors from the ``QuaeroError`` tree become ``{"error", "detail"}`` with their status code; nothing a
client sends produces a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from quaero.errors import QuaeroError
from quaero.runtime import Runtime
from quaero.settings import Settings
from quaero.web import api, api_documents

log = logging.getLogger(__name__)


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

    routes = [Route("/", api.index), *api.routes, *api_documents.routes]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={QuaeroError: _quaero_error, HTTPException: _http_error,
                                        Exception: _unexpected})
    if runtime is not None:
        app.state.runtime = runtime
    return app
