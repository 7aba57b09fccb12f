"""The job definitions API (JSON): list, store, check, replace, delete, enable, execute; the quick crawl.

Docstrings follow the convention of ``quaero/web/api.py``: a summary line, ``---``, the OpenAPI operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero.errors import DefinitionError
from quaero.runtime import Runtime
from quaero.stores.definition_store import definition_source
from quaero.stores.views import page
from quaero.web.http import (
    FORM_TYPES,
    bad_input,
    media_type,
    orchestrator_of,
    page_params,
    read_body,
    runtime_of,
    unsupported,
)

T = TypeVar("T")


async def with_body(request: Request, work: Callable[..., T], *args: Any) -> T:
    """Run a store call on the body's definition text (JSON becomes YAML) in a thread.

    A body nested deeper than any definition is (``[[[[...``) exhausts the parsers' recursion: a 400.
    """
    media = media_type(request)
    if media in FORM_TYPES:  # YAML or JSON, never what a cross-site form can send
        raise unsupported(media, "YAML (Content-Type: application/yaml) or JSON (application/json)")
    try:
        source = definition_source(await read_body(request), request.headers.get("content-type"))
        return await asyncio.to_thread(work, *args, source)
    except RecursionError:
        raise bad_input("the definition is nested too deeply", "", "body") from None


async def list_definitions(request: Request) -> JSONResponse:
    """List job definitions by id.
    ---
    parameters: [{$ref: '#/components/parameters/limit'}, {$ref: '#/components/parameters/offset'}]
    responses:
      200:
        description: one page of definitions
        content: {application/json: {schema: {$ref: '#/components/schemas/DefinitionPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    limit, offset = page_params(request)
    runtime = runtime_of(request)

    def listing() -> dict[str, Any]:
        records = runtime.definitions.list()
        return page([runtime.definition_dict(r) for r in records[offset:offset + limit]], len(records), limit, offset)

    return JSONResponse(await asyncio.to_thread(listing))


async def create_definition(request: Request) -> JSONResponse:
    """Store a new job definition (YAML, or JSON with its content type).
    ---
    requestBody:
      required: true
      content:
        application/yaml: {schema: {type: string, description: a job definition in YAML}}
        application/json: {schema: {$ref: '#/components/schemas/DefinitionInput'}}
    responses:
      201: {description: stored, content: {application/json: {schema: {$ref: '#/components/schemas/Definition'}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      409:
        description: a definition with this id exists (replace it with PUT)
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    runtime = runtime_of(request)
    record, definition = await with_body(request, runtime.definitions.create)
    return JSONResponse(await asyncio.to_thread(runtime.definition_dict, record, definition, full=True),
                        status_code=201)


async def check_definition(request: Request) -> JSONResponse:
    """Check a job definition without storing it: every error with its step, key, line and column.
    ---
    requestBody:
      required: true
      content:
        application/yaml: {schema: {type: string}}
        application/json: {schema: {$ref: '#/components/schemas/DefinitionInput'}}
    responses:
      200:
        description: whether it is valid; the errors or the definition as it would run
        content:
          application/json:
            schema:
              type: object
              required: [valid]
              properties:
                valid: {type: boolean}
                error: {type: string}
                detail: {nullable: true}
                definition: {type: object}
                runnable: {type: boolean, description: whether it could run now}
                not_runnable: {type: array, items: {type: string}, description: "why not, one reason per step"}
      400: {$ref: '#/components/responses/BadRequest'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    runtime = runtime_of(request)
    try:
        definition = await with_body(request, runtime.definitions.parse)
    except DefinitionError as exc:
        return JSONResponse({"valid": False, "error": exc.message, "detail": exc.detail})
    reasons = await asyncio.to_thread(runtime.not_runnable, definition)
    return JSONResponse({"valid": True, "definition": definition.to_dict(), "runnable": not reasons,
                         "not_runnable": reasons})


async def get_definition(request: Request) -> JSONResponse:
    """One job definition, with its source and its validated form.
    ---
    responses:
      200:
        description: the definition
        content: {application/json: {schema: {$ref: '#/components/schemas/Definition'}}}
      400:
        description: the stored definition no longer validates (e.g. its plugin is gone)
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    runtime = runtime_of(request)
    record, parsed = await asyncio.to_thread(runtime.definitions.get, request.path_params["id"])
    return JSONResponse(await asyncio.to_thread(runtime.definition_dict, record, parsed, full=True))


async def replace_definition(request: Request) -> JSONResponse:
    """Replace a job definition; an id in the body must match the path.
    ---
    requestBody:
      required: true
      content:
        application/yaml: {schema: {type: string}}
        application/json: {schema: {$ref: '#/components/schemas/DefinitionInput'}}
    responses:
      200: {description: replaced, content: {application/json: {schema: {$ref: '#/components/schemas/Definition'}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    runtime = runtime_of(request)
    record, parsed = await with_body(request, runtime.definitions.update, request.path_params["id"])
    return JSONResponse(await asyncio.to_thread(runtime.definition_dict, record, parsed, full=True))


async def delete_definition(request: Request) -> JSONResponse:
    """Delete a job definition; the jobs it produced stay.
    ---
    responses:
      200:
        description: deleted
        content: {application/json: {schema: {type: object, properties: {deleted: {type: string}}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    await asyncio.to_thread(runtime_of(request).definitions.delete, request.path_params["id"])
    return JSONResponse({"deleted": request.path_params["id"]})


def _enable(runtime: Runtime, definition_id: str, enabled: bool) -> dict[str, Any]:
    return runtime.definition_dict(runtime.definitions.set_enabled(definition_id, enabled))


async def enable_definition(request: Request) -> JSONResponse:
    """Enable a job definition: it may be executed and its schedule runs.
    ---
    responses:
      200: {description: enabled, content: {application/json: {schema: {$ref: '#/components/schemas/Definition'}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return JSONResponse(await asyncio.to_thread(_enable, runtime_of(request), request.path_params["id"], True))


async def disable_definition(request: Request) -> JSONResponse:
    """Disable a job definition: executing it is refused (409) and its schedule stops.
    ---
    responses:
      200: {description: disabled, content: {application/json: {schema: {$ref: '#/components/schemas/Definition'}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return JSONResponse(await asyncio.to_thread(_enable, runtime_of(request), request.path_params["id"], False))


async def execute_definition(request: Request) -> JSONResponse:
    """Start an execution of a job definition; its steps run in the background.
    ---
    responses:
      202: {description: started, content: {application/json: {schema: {$ref: '#/components/schemas/JobAccepted'}}}}
      400:
        description: the stored definition no longer validates
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: the definition is disabled, or cannot run now (the reasons in the message and detail)
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    orchestrator = orchestrator_of(request)
    job_id = await asyncio.to_thread(orchestrator.execute, request.path_params["id"])
    return JSONResponse({"job_id": job_id}, status_code=202)


routes = [
    Route("/api/jobs/definitions", list_definitions, methods=["GET"]),
    Route("/api/jobs/definitions", create_definition, methods=["POST"]),
    Route("/api/jobs/definitions/validate", check_definition, methods=["POST"]),
    Route("/api/jobs/definitions/{id}", get_definition, methods=["GET"]),
    Route("/api/jobs/definitions/{id}", replace_definition, methods=["PUT"]),
    Route("/api/jobs/definitions/{id}", delete_definition, methods=["DELETE"]),
    Route("/api/jobs/definitions/{id}/execute", execute_definition, methods=["POST"]),
    Route("/api/jobs/definitions/{id}/enable", enable_definition, methods=["POST"]),
    Route("/api/jobs/definitions/{id}/disable", disable_definition, methods=["POST"]),
]
