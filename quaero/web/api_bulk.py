"""The recovery API (JSON): re-run a step's or execution's failed children; cancel, delete or re-run every
job a filter matches. Both call :class:`quaero.engine.recovery.JobRecovery`, as the pages and the CLI do.

Docstrings follow the convention of ``quaero/web/api.py``: a summary line, ``---``, the OpenAPI operation.
Like every write, both are an admin's: a viewer's request is refused (403) before it reaches them.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero.stores.jobs import JobFilter
from quaero.web.bodies import BulkInput, RerunFailedInput
from quaero.web.http import read_model, runtime_of


async def rerun_failed(request: Request) -> JSONResponse:
    """Run a step's or an execution's failed children again (and its cancelled ones when asked).
    ---
    description: >
      Each failed child goes back to pending as new (attempts, error and results cleared) and is queued; its
      step and execution go back to running and end again once the children are done. Documents saved before
      stay. Only a finished execution's children can be re-run (409 while it runs).
    requestBody:
      required: false
      content: {application/json: {schema: {$ref: '#/components/schemas/RerunFailedInput'}}}
    responses:
      200:
        description: "queued again (requeued: 0 when nothing had failed)"
        content:
          application/json:
            schema:
              allOf:
                - {$ref: '#/components/schemas/RecoveryOutcome'}
                - type: object
                  properties:
                    job_id: {type: string}
                    requeued: {type: integer, description: child jobs put back on the queue}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: the job is not a step or an execution, or its execution is still running
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    body = await read_model(request, RerunFailedInput)
    recovery = runtime_of(request).recovery
    outcome = await asyncio.to_thread(recovery.rerun_failed, request.path_params["id"],
                                      include_cancelled=body.include_cancelled)
    return JSONResponse(outcome)


async def bulk_jobs(request: Request) -> JSONResponse:
    """Cancel, delete or re-run every job a filter matches; with dry_run, only count them.
    ---
    description: >
      The filter takes the keys of `GET /api/jobs` (status, type, parent_id, definition_id). Send a dry run
      first: it answers how many match, by status, and the first 100 ids. Acting on more than 10,000 jobs needs
      `confirm_count` (the dry run's count); a `confirm_count` that the filter no longer matches is refused
      (409) and nothing is done. At most 100,000 jobs per action. Jobs the action does not apply to (a running
      job to delete, a finished one to cancel) are skipped and counted by reason.
    requestBody:
      required: true
      content: {application/json: {schema: {$ref: '#/components/schemas/BulkInput'}}}
    responses:
      200:
        description: the count (dry run), or what was done
        content: {application/json: {schema: {$ref: '#/components/schemas/BulkResult'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      409:
        description: the filter now matches another count than confirm_count
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    body = await read_model(request, BulkInput)
    where = JobFilter(**body.filter.model_dump())
    recovery = runtime_of(request).recovery
    result = await asyncio.to_thread(recovery.bulk, body.action, where, dry_run=body.dry_run,
                                     confirm_count=body.confirm_count)
    return JSONResponse(result)


routes = [
    Route("/api/jobs/bulk", bulk_jobs, methods=["POST"]),
    Route("/api/jobs/{id}/rerun-failed", rerun_failed, methods=["POST"]),
]
