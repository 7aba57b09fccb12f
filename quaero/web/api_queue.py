"""The queue API (JSON): its figures, and its dead letters listed, run again or thrown away.

Docstrings follow the convention of ``quaero/web/api.py``: a summary line, ``---``, the OpenAPI operation.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero.engine.deadletters import DeadLetters
from quaero.runtime import Runtime
from quaero.stores.views import page
from quaero.web.http import int_path, page_params, runtime_of, text_param


async def queue_stats(request: Request) -> JSONResponse:
    """Messages per queue (ready, delayed, in flight, dead) and the seed's pending and processing totals.
    ---
    responses:
      200:
        description: the queue's figures (in flight is null for a backend that cannot count it)
        content:
          application/json:
            schema:
              type: object
              properties:
                queues: {type: object, additionalProperties: {$ref: '#/components/schemas/QueueCounts'}}
                pending: {type: integer, description: "messages waiting, ready or delayed"}
                processing: {type: integer, nullable: true, description: messages a worker holds}
                dead: {type: integer}
    """
    queue = runtime_of(request).queue
    stats = await asyncio.to_thread(queue.stats)
    counts = stats.values()
    processing = sum(q["in_flight"] or 0 for q in counts) if queue.counts_in_flight else None
    return JSONResponse({"queues": stats, "pending": sum(q["ready"] + q["delayed"] for q in counts),
                         "processing": processing, "dead": sum(q["dead"] for q in counts)})


def dead_letter_requeue(runtime: Runtime, letter_id: int) -> dict[str, Any]:
    """Run a dead letter's job again (the API's call, shared with the queue page)."""
    return runtime.dead_letters.requeue(letter_id)


def dead_letter_delete(runtime: Runtime, letter_id: int) -> None:
    """Throw a dead letter away (the API's call, shared with the queue page)."""
    runtime.dead_letters.delete(letter_id)


def dead_letters_of(request: Request) -> DeadLetters:
    """The dead letters service, or a 501 for a queue backend that cannot list them."""
    letters = runtime_of(request).dead_letters
    if not letters.supported:
        raise HTTPException(
            501, "this queue backend cannot list its dead letters; the embedded SQLite one and Redis can"
        )
    return letters


async def list_dead_letters(request: Request) -> JSONResponse:
    """Dead letters, newest first: messages of jobs that failed after their last retry.
    ---
    parameters:
      - {name: queue, in: query, description: only this queue's, schema: {type: string, maxLength: 200}}
      - {$ref: '#/components/parameters/limit'}
      - {$ref: '#/components/parameters/offset'}
    responses:
      200:
        description: one page of dead letters
        content: {application/json: {schema: {$ref: '#/components/schemas/DeadLetterPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      501: {$ref: '#/components/responses/NotImplemented'}
    """
    letters = dead_letters_of(request)
    limit, offset = page_params(request)
    items, total = await asyncio.to_thread(letters.page, queue=text_param(request, "queue"), limit=limit,
                                           offset=offset)
    return JSONResponse(page(items, total, limit, offset))


async def requeue_dead_letter(request: Request) -> JSONResponse:
    """Run a dead letter's job again: the job goes back to pending and its message back on the queue.
    ---
    parameters: [{name: id, in: path, required: true, schema: {type: integer, minimum: 0}}]
    responses:
      200:
        description: requeued
        content:
          application/json:
            schema:
              type: object
              properties:
                id: {type: integer}
                job_id: {type: string}
                status: {$ref: '#/components/schemas/JobStatus'}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: "its job was deleted, is running or completed"
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
      501: {$ref: '#/components/responses/NotImplemented'}
    """
    dead_letters_of(request)
    letter_id = int_path(request, "id", "dead letter")
    return JSONResponse(await asyncio.to_thread(dead_letter_requeue, runtime_of(request), letter_id))


async def delete_dead_letter(request: Request) -> JSONResponse:
    """Throw a dead letter away; its job stays as it is.
    ---
    parameters: [{name: id, in: path, required: true, schema: {type: integer, minimum: 0}}]
    responses:
      200:
        description: deleted
        content: {application/json: {schema: {type: object, properties: {deleted: {type: integer}}}}}
      404: {$ref: '#/components/responses/NotFound'}
      501: {$ref: '#/components/responses/NotImplemented'}
    """
    dead_letters_of(request)
    letter_id = int_path(request, "id", "dead letter")
    await asyncio.to_thread(dead_letter_delete, runtime_of(request), letter_id)
    return JSONResponse({"deleted": letter_id})


async def requeue_all_dead_letters(request: Request) -> JSONResponse:
    """Run again the jobs of every dead letter (of one queue) whose job can run again.
    ---
    parameters: [{name: queue, in: query, description: only this queue's, schema: {type: string, maxLength: 200}}]
    responses:
      200:
        description: how many were requeued, and how many stayed (their job was deleted, is running or completed)
        content:
          application/json:
            schema: {type: object, properties: {requeued: {type: integer}, skipped: {type: integer}}}
      400: {$ref: '#/components/responses/BadRequest'}
      501: {$ref: '#/components/responses/NotImplemented'}
    """
    letters = dead_letters_of(request)
    return JSONResponse(await asyncio.to_thread(letters.requeue_all, queue=text_param(request, "queue")))


async def delete_all_dead_letters(request: Request) -> JSONResponse:
    """Throw every dead letter (of one queue) away.
    ---
    parameters: [{name: queue, in: query, description: only this queue's, schema: {type: string, maxLength: 200}}]
    responses:
      200:
        description: how many were deleted
        content: {application/json: {schema: {type: object, properties: {deleted: {type: integer}}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      501: {$ref: '#/components/responses/NotImplemented'}
    """
    letters = dead_letters_of(request)
    deleted = await asyncio.to_thread(letters.delete_all, queue=text_param(request, "queue"))
    return JSONResponse({"deleted": deleted})


routes = [
    Route("/api/queue/stats", queue_stats, methods=["GET"]),
    Route("/api/queue/dead", list_dead_letters, methods=["GET"]),
    Route("/api/queue/dead", delete_all_dead_letters, methods=["DELETE"]),
    Route("/api/queue/dead/requeue", requeue_all_dead_letters, methods=["POST"]),
    Route("/api/queue/dead/{id}", delete_dead_letter, methods=["DELETE"]),
    Route("/api/queue/dead/{id}/requeue", requeue_dead_letter, methods=["POST"]),
]
