"""Request helpers shared by the API and the pages: the runtime, checked query parameters, bounded bodies.

A bad parameter or body field is a 400 whose ``detail`` names it:
``[{"path": "limit", "in": "query", "message": ...}]``, the shape a bad field of a job definition has, so a
client shows every error the same way. A JSON body is read into its typed model (``web/bodies.py``) by
:func:`read_model`, and only from a request that says it is JSON (``application/json`` or ``+json``): an
HTML form on another site can send ``text/plain`` anywhere, so a JSON body sent that way is a 415.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from quaero.api.outcomes import outcome_filter
from quaero.engine.orchestrator import JobDefinitionOrchestrator
from quaero.errors import NotFound, QuaeroError
from quaero.runtime import Runtime
from quaero.stores.models import JOB_STATUSES

M = TypeVar("M", bound=BaseModel)
MAX_BODY = 1_000_000
MAX_TEXT_PARAM = 200  # the longest id a job, definition or queue has
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


def runtime_of(request: HTTPConnection) -> Runtime:
    """The runtime the app serves."""
    return request.app.state.runtime


def orchestrator_of(request: HTTPConnection) -> JobDefinitionOrchestrator:
    """The runtime's orchestrator, which every runtime that serves the app has (only a worker's has none)."""
    orchestrator = runtime_of(request).orchestrator
    assert orchestrator is not None
    return orchestrator


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


def outcome_param(request: Request, present: Iterable[str] = ()) -> str | None:
    """The ``outcome`` query parameter (``skipped`` or ``skipped:robots``), checked; the 400 lists what is
    allowed, with the ``present`` outcomes (those the children have)."""
    value = request.query_params.get("outcome") or None
    if value is None:
        return None
    try:
        return outcome_filter(value)
    except ValueError as exc:
        found = ", ".join(present)
        raise bad_input(f"{exc}" + (f"; this job's children have: {found}" if found else ""), "outcome") from None


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


def media_type(request: Request) -> str:
    """The body's media type, lower case, without its parameters (``""`` when none is given)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    """``application/json`` or a ``+json`` type (``application/merge-patch+json``)."""
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


#: What an HTML form can send without the page's own script: a cross-site page can make a browser send
#: these anywhere, so no API body is read from them.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def unsupported(media: str, wanted: str) -> HTTPException:
    """A 415 that says what to send instead."""
    given = f"Content-Type {media!r}" if media else "no Content-Type"
    return HTTPException(415, f"send the body as {wanted} (the request has {given})")


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``); a body not sent as JSON is a 415."""
    body = await read_body(request)
    if body.strip() and not is_json(media_type(request)):
        raise unsupported(media_type(request), "JSON with Content-Type: application/json")
    try:
        data = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_input(f"the body is not valid JSON: {exc}", "", "body") from None
    except RecursionError:
        raise bad_input("the body is nested too deeply", "", "body") from None
    except ValueError:  # a number of more than 4300 digits, which Python refuses to read
        raise bad_input("the body holds a number too long to read", "", "body") from None
    if not isinstance(data, dict):
        raise bad_input("the body must be a JSON object", "", "body")
    return data


async def read_model(request: Request, model: type[M]) -> M:
    """The JSON body checked against ``model``; a 400 naming each bad field and what it must be."""
    data = await json_object(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = body_problems(exc, model)
        raise QuaeroError("; ".join(problem["message"] for problem in problems), detail=problems) from None


# What a strict model's type errors expect, in the words of JSON rather than of Python.
_EXPECTED = {"string_type": "text", "int_type": "a whole number", "float_type": "a number",
             "bool_type": "true or false", "dict_type": "a JSON object", "list_type": "a JSON array"}
_SUBJECT = re.compile(r"^(Input|String|List|Dictionary|Value) should")


def body_problems(exc: ValidationError, model: type[BaseModel]) -> list[dict[str, Any]]:
    """Each error of ``exc`` as ``{"path", "in": "body", "message"}``: the field, what is wrong, what it got.

    A top-level field's description ends the message, so that it says what the field is for.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        path = _dotted(loc)
        name = repr(path) if path else "the body"
        field = model.model_fields.get(loc[0]) if len(loc) == 1 and isinstance(loc[0], str) else None
        about = f" ({field.description})" if field is not None and field.description else ""
        if error["type"] == "extra_forbidden":
            accepted = f"; accepted: {', '.join(model.model_fields)}" if len(loc) == 1 else ""
            message = f"unknown key {loc[-1]!r}{accepted}"
        elif error["type"] == "missing":
            message = f"{name} is required{about}"
        elif error["type"] in _EXPECTED:
            message = f"{name} must be {_EXPECTED[error['type']]}, got {_described(error['input'])}{about}"
        else:  # a bound, a length, an enum, or a validator's own words
            text = _SUBJECT.sub("should", error["msg"].removeprefix("Value error, "))
            message = f"{name} {text}, got {_described(error['input'])}"
        problems.append({"path": path, "in": "body", "message": message})
    return problems


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``("cookies", "sid")`` as ``cookies.sid``, ``("include_patterns", 0)`` as ``include_patterns[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _described(value: Any) -> str:
    """A value as a person reading the error would call it, cut short."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        text = str(value)
        return f"{text[:20]}..." if len(text) > 20 else text
    if isinstance(value, str):
        return f"{len(value)} characters of text" if len(value) > 50 else repr(value)
    return "a JSON object" if isinstance(value, dict) else "a JSON array" if isinstance(value, list) else "a value"


def int_path(request: Request, name: str, what: str) -> int:
    """A whole-number path parameter; anything else names nothing that exists (404)."""
    raw = request.path_params[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"{what} {raw[:50]!r} not found")
    return int(raw)
