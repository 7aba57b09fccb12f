"""Request helpers shared by the API and the pages: the runtime, checked query parameters, bounded bodies."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.websockets import WebSocket

from quaero.errors import QuaeroError
from quaero.models import JOB_STATUSES
from quaero.runtime import Runtime

MAX_BODY = 1_000_000


def runtime_of(request: Request | WebSocket) -> Runtime:
    return request.app.state.runtime


def int_param(request: Request, name: str, default: int, *, low: int = 0, high: int = 10_000) -> int:
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


def status_param(request: Request) -> str | None:
    """The ``status`` query parameter, checked."""
    status = request.query_params.get("status") or None
    if status is not None and status not in JOB_STATUSES:
        raise QuaeroError(f"status {status!r} is not one of {', '.join(JOB_STATUSES)}")
    return status


def page_params(request: Request) -> tuple[int, int]:
    """The ``limit`` and ``offset`` query parameters, checked."""
    return int_param(request, "limit", 50, low=1, high=1000), int_param(request, "offset", 0, high=10_000_000)


async def read_body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    return body


async def json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await read_body(request) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuaeroError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise QuaeroError("the body must be a JSON object")
    return data
