"""Request helpers shared by the API and the pages: the runtime, checked query parameters, bounded bodies.

A bad parameter is a 400 whose ``detail`` names it: ``[{"path": "limit", "in": "query", "message": ...}]``,
the shape a bad field of a job definition has, so a client shows every error the same way.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.websockets import WebSocket

from quaero.errors import NotFound, QuaeroError
from quaero.stores.models import JOB_STATUSES
from quaero.runtime import Runtime

MAX_BODY = 1_000_000
MAX_TEXT_PARAM = 200  # the longest id a job, definition or queue has
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


def runtime_of(request: Request | WebSocket) -> Runtime:
    """The runtime the app serves."""
    return request.app.state.runtime


def bad_input(message: str, path: str, where: str = "query") -> QuaeroError:
    """A 400 error naming the parameter or body field at fault."""
    return QuaeroError(message, detail=[{"path": path, "in": where, "message": message}])


def int_param(request: Request, name: str, default: int, *, low: int = 0, high: int = 10_000) -> int:
    """A whole-number query parameter within ``low``..``high``; ``default`` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_input(f"query parameter {name!r} must be a whole number, got {raw[:50]!r}", name) from None
    if not low <= value <= high:
        raise bad_input(f"query parameter {name!r} must be between {low} and {high}, got {raw[:50]}", name)
    return value


def text_param(request: Request, name: str) -> str | None:
    """An id-like query parameter: ``None`` when absent or empty."""
    value = request.query_params.get(name) or None
    if value is not None and len(value) > MAX_TEXT_PARAM:
        raise bad_input(f"query parameter {name!r} is longer than {MAX_TEXT_PARAM} characters", name)
    return value


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of ``choices`` (any case); ``None`` when absent or empty."""
    value = (request.query_params.get(name) or "").lower() or None
    if value is not None and value not in choices:
        raise bad_input(f"{name} {value[:50]!r} is not one of {', '.join(choices)}", name)
    return value


def bool_param(request: Request, name: str) -> bool:
    """A yes/no query parameter (1/0, true/false, yes/no); absent or empty is no."""
    value = (request.query_params.get(name) or "").lower()
    if value and value not in TRUE + FALSE:
        raise bad_input(f"query parameter {name!r} is true or false (1/0, yes/no), got {value[:50]!r}", name)
    return value in TRUE


def status_param(request: Request) -> str | None:
    """The ``status`` query parameter, checked."""
    return choice_param(request, "status", JOB_STATUSES)


def page_params(request: Request) -> tuple[int, int]:
    """The ``limit`` and ``offset`` query parameters, checked."""
    return int_param(request, "limit", 50, low=1, high=1000), int_param(request, "offset", 0, high=10_000_000)


async def read_body(request: Request) -> bytes:
    """The body, refused with a 413 as soon as it is known to be too large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    return body


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``)."""
    try:
        data = json.loads(await read_body(request) or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_input(f"the body is not valid JSON: {exc}", "", "body") from None
    except RecursionError:
        raise bad_input("the body is nested too deeply", "", "body") from None
    except ValueError:  # a number of more than 4300 digits, which Python refuses to read
        raise bad_input("the body holds a number too long to read", "", "body") from None
    if not isinstance(data, dict):
        raise bad_input("the body must be a JSON object", "", "body")
    return data


def int_path(request: Request, name: str, what: str) -> int:
    """A whole-number path parameter; anything else names nothing that exists (404)."""
    raw = request.path_params[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"{what} {raw[:50]!r} not found")
    return int(raw)
