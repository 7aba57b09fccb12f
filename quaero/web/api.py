"""The REST API (JSON): thin views that parse the request, call a service and return JSON.

Each view's docstring is a summary line, ``---``, then its OpenAPI operation in YAML: the OpenAPI document
(``quaero/web/openapi.py``) is generated from them, with the schemas they share written there. The
definitions and the queue have modules of their own; :data:`routes` gathers them, definitions before
``/api/jobs/{id}`` so that the path is not taken for a job id. The event stream (``/ws``, ``/api/events``)
is ``quaero/web/stream.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero import __version__
from quaero.runtime import Runtime
from quaero.stores.jobs import Counts, JobFilter
from quaero.stores.logs import LEVELS, last_id
from quaero.stores.views import job_dicts, job_page, page
from quaero.web import api_definitions, api_queue
from quaero.web.api_queue import dead_letter_delete, dead_letter_requeue
from quaero.web.bodies import CredentialsInput
from quaero.web.http import (
    bool_param,
    choice_param,
    int_param,
    orchestrator_of,
    outcome_param,
    page_params,
    read_model,
    runtime_of,
    status_param,
    text_param,
)

__all__ = ["routes", "dead_letter_delete", "dead_letter_requeue"]  # the last two: for the queue page


# ---------------------------------------------------------------------------------------------- service
async def health(request: Request) -> JSONResponse:
    """Whether the server answers, its version and role.
    ---
    responses:
      200:
        description: the server is up
        content:
          application/json:
            schema:
              type: object
              properties:
                status: {type: string, enum: [ok]}
                version: {type: string}
                role: {type: string}
                worker_processes: {type: integer}
    """
    runtime = runtime_of(request)
    return JSONResponse({"status": "ok", "version": __version__, "role": runtime.role,
                         "worker_processes": runtime.worker_processes})


async def plugins(request: Request) -> JSONResponse:
    """Installed plugins, their versions and actions, and why any was skipped.
    ---
    parameters: [{$ref: '#/components/parameters/limit'}, {$ref: '#/components/parameters/offset'}]
    responses:
      200:
        description: one page of plugins
        content: {application/json: {schema: {$ref: '#/components/schemas/PluginPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    limit, offset = page_params(request)
    listing = runtime_of(request).registry.listing()
    return JSONResponse(page(listing[offset:offset + limit], len(listing), limit, offset))


# ---------------------------------------------------------------------------------------------- credentials
async def auth_list(request: Request) -> JSONResponse:
    """Stored credentials: each auth id with the names (never the values) of its cookies and headers.
    ---
    parameters: [{$ref: '#/components/parameters/limit'}, {$ref: '#/components/parameters/offset'}]
    responses:
      200:
        description: one page of credentials
        content: {application/json: {schema: {$ref: '#/components/schemas/CredentialPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    limit, offset = page_params(request)
    listing = await asyncio.to_thread(runtime_of(request).credentials.listing)
    return JSONResponse(page(listing[offset:offset + limit], len(listing), limit, offset))


async def auth_create(request: Request) -> JSONResponse:
    """Store (or replace) the cookies and headers a crawl sends for an auth id.
    ---
    requestBody:
      required: true
      content: {application/json: {schema: {$ref: '#/components/schemas/CredentialsInput'}}}
    responses:
      201:
        description: stored
        content: {application/json: {schema: {type: object, properties: {id: {type: string}}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    body = await read_model(request, CredentialsInput)
    credentials = runtime_of(request).credentials
    await asyncio.to_thread(credentials.save, body.id, base_url=body.base_url or "", cookies=body.cookies or {},
                            headers=body.headers or {})
    return JSONResponse({"id": body.id}, status_code=201)


async def auth_delete(request: Request) -> JSONResponse:
    """Forget the credentials of an auth id.
    ---
    responses:
      200:
        description: deleted
        content: {application/json: {schema: {type: object, properties: {deleted: {type: string}}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    await asyncio.to_thread(runtime_of(request).credentials.delete, request.path_params["id"])
    return JSONResponse({"deleted": request.path_params["id"]})


# ---------------------------------------------------------------------------------------------- jobs
async def list_jobs(request: Request) -> JSONResponse:
    """List jobs, newest first, narrowed by any of status, type, parent and definition.
    ---
    parameters:
      - {$ref: '#/components/parameters/status'}
      - name: type
        in: query
        description: "parent for executions, step, or a worker type"
        schema: {type: string, maxLength: 200}
      - {name: parent_id, in: query, description: the children of this job, schema: {type: string, maxLength: 200}}
      - name: definition_id
        in: query
        description: the jobs of this definition's executions
        schema: {type: string, maxLength: 200}
      - name: before
        in: query
        description: the `next` of the previous page; pages by key, as fast on the last page as on the first
        schema: {type: string, maxLength: 200}
      - {$ref: '#/components/parameters/limit'}
      - {$ref: '#/components/parameters/offset'}
    responses:
      200:
        description: one page of jobs
        content: {application/json: {schema: {$ref: '#/components/schemas/JobPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    where = JobFilter(status=status_param(request), type=text_param(request, "type"),
                      parent_id=text_param(request, "parent_id"), definition_id=text_param(request, "definition_id"))
    limit, offset = page_params(request)
    listing = await asyncio.to_thread(job_page, runtime_of(request).jobs, where, limit=limit, offset=offset,
                                      before=text_param(request, "before"))
    return JSONResponse(listing)


async def get_job(request: Request) -> JSONResponse:
    """One job with its children's counts; a step or execution also with its children's outcomes counted
    (an execution: every job below its steps), a step also with its action's figures.
    ---
    responses:
      200: {description: the job, content: {application/json: {schema: {$ref: '#/components/schemas/Job'}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return JSONResponse(await asyncio.to_thread(job_detail, runtime_of(request), request.path_params["id"]))


def job_detail(runtime: Runtime, job_id: str) -> dict[str, Any]:
    """One job as ``GET /api/jobs/{id}`` gives it (the MCP tool ``job_status`` too); :class:`NotFound` if none."""
    found = runtime.jobs.get(job_id)
    [data] = job_dicts(runtime.jobs, [found])
    if found.type in ("step", "parent"):
        data["outcomes"] = runtime.jobs.outcome_counts(found.id, descendants=found.type == "parent")
    if found.type == "step":
        data["stats"] = runtime.step_stats(found)
    return data


async def delete_job(request: Request) -> JSONResponse:
    """Delete a finished job with its descendants and their logs.
    ---
    responses:
      200:
        description: deleted
        content:
          application/json:
            schema: {type: object, properties: {deleted: {type: string}, jobs_removed: {type: integer}}}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: the job is still pending or running (cancel it first)
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    job_id = request.path_params["id"]
    removed = await asyncio.to_thread(runtime_of(request).jobs.delete, job_id)
    return JSONResponse({"deleted": job_id, "jobs_removed": removed})


async def job_logs(request: Request) -> JSONResponse:
    """A job's log lines in time order (timestamp, then id); tail it by passing `next` back as `after_id`.
    ---
    parameters:
      - name: after_id
        in: query
        description: only lines after this one
        schema: {type: integer, minimum: 0, maximum: 4611686018427387904, default: 0}
      - name: level
        in: query
        description: "this level and the more severe ones (empty: all)"
        schema: {type: string, enum: ['', debug, info, warn, warning, error]}
      - name: include_children
        in: query
        description: "also the lines of the jobs below it"
        schema: {type: string, enum: ['', '0', '1', 'false', 'true', 'no', 'yes'], default: '0'}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 5000, default: 500}}
    responses:
      200:
        description: "lines and how many match in all (offset is always 0)"
        content: {application/json: {schema: {$ref: '#/components/schemas/JobLogPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    runtime = runtime_of(request)
    job_id = request.path_params["id"]
    descendants = bool_param(request, "include_children")
    level = choice_param(request, "level", (*LEVELS, "warning"))
    after_id = int_param(request, "after_id", 0, high=2**62)
    limit = int_param(request, "limit", 500, low=1, high=5000)
    await asyncio.to_thread(runtime.jobs.get, job_id)
    lines = await asyncio.to_thread(runtime.logs.read, [job_id], after_id=after_id, level=level, limit=limit,
                                    descendants=descendants)
    total = await asyncio.to_thread(runtime.jobs.count_logs, job_id, descendants=descendants, level=level)
    return JSONResponse(page(lines, total, limit, 0, last_id(lines, after_id)))


async def job_children(request: Request) -> JSONResponse:
    """A job's direct children, oldest first, narrowed by status and by outcome.
    ---
    parameters:
      - {$ref: '#/components/parameters/status'}
      - name: outcome
        in: query
        description: >-
          what the child came to: saved, unchanged, skipped or failed (any reason), or one reason of them,
          like skipped:robots or skipped:http_404; any other value is a 400 that lists what is allowed
        schema:
          type: string
          maxLength: 68
          pattern: '^(saved|unchanged|skipped|failed|(skipped|failed):[a-z0-9][a-z0-9_.-]{0,59})$'
      - {$ref: '#/components/parameters/limit'}
      - {$ref: '#/components/parameters/offset'}
    responses:
      200:
        description: one page of children
        content: {application/json: {schema: {$ref: '#/components/schemas/JobPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    jobs = runtime_of(request).jobs
    status = status_param(request)
    limit, offset = page_params(request)
    parent = await asyncio.to_thread(jobs.get, request.path_params["id"])
    if request.query_params.get("outcome"):
        present = await asyncio.to_thread(jobs.outcome_counts, parent.id)
        outcome = outcome_param(request, present)
        total = await asyncio.to_thread(jobs.count_children, parent.id, status=status, outcome=outcome)
    else:
        outcome, total = None, Counts.of(parent).as_dict()[status or "total"]
    items = await asyncio.to_thread(jobs.children, parent.id, status=status, limit=limit, offset=offset,
                                    outcome=outcome)
    return JSONResponse(page(await asyncio.to_thread(job_dicts, jobs, items), total, limit, offset))


async def cancel_job(request: Request) -> JSONResponse:
    """Cancel a job and its unfinished descendants; running ones stop within 2 s.
    ---
    responses:
      200:
        description: cancelled
        content:
          application/json:
            schema:
              type: object
              properties:
                job_id: {type: string}
                status: {type: string, enum: [cancelled]}
                signalled: {type: integer, description: running jobs told to stop}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: the job is already finished
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    orchestrator = orchestrator_of(request)
    running = await asyncio.to_thread(orchestrator.cancel, request.path_params["id"])
    return JSONResponse({"job_id": request.path_params["id"], "status": "cancelled", "signalled": len(running)})


async def rerun_job(request: Request) -> JSONResponse:
    """Start a fresh execution of the definition that produced a job.
    ---
    responses:
      202: {description: started, content: {application/json: {schema: {$ref: '#/components/schemas/JobAccepted'}}}}
      400:
        description: the definition no longer validates
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: the definition is disabled
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    orchestrator = orchestrator_of(request)
    job_id = await asyncio.to_thread(orchestrator.rerun, request.path_params["id"])
    return JSONResponse({"job_id": job_id}, status_code=202)


routes = [
    Route("/api/health", health, methods=["GET"]),
    Route("/api/plugins", plugins, methods=["GET"]),
    *api_definitions.routes,
    Route("/api/auth", auth_list, methods=["GET"]),
    Route("/api/auth", auth_create, methods=["POST"]),
    Route("/api/auth/{id}", auth_delete, methods=["DELETE"]),
    Route("/api/jobs", list_jobs, methods=["GET"]),
    Route("/api/jobs/{id}", get_job, methods=["GET"]),
    Route("/api/jobs/{id}", delete_job, methods=["DELETE"]),
    Route("/api/jobs/{id}/logs", job_logs, methods=["GET"]),
    Route("/api/jobs/{id}/children", job_children, methods=["GET"]),
    Route("/api/jobs/{id}/cancel", cancel_job, methods=["POST"]),
    Route("/api/jobs/{id}/rerun", rerun_job, methods=["POST"]),
    *api_queue.routes,
]
