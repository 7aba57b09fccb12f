"""The OpenAPI 3.0 document of the API, generated from the views' docstrings.

An endpoint's docstring is a one-line summary, ``---``, then its OpenAPI operation object in YAML
(parameters, requestBody, responses): Starlette's ``SchemaGenerator`` convention. The schemas that
operations share (Job, JobLog, Definition, Error, the pages of every list, the events) are written once
below and referenced as ``#/components/...``; those of the request bodies are generated from their typed
models (``web/bodies.py``, through ``web/schemas.py``), so the YAML names a body by ``$ref`` and never
repeats its shape. A view without the YAML part is left out of the document, which the tests catch.
OpenAPI 3.0 has no WebSockets: ``/ws`` and its messages are described under ``x-websocket``.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.schemas import BaseSchemaGenerator, EndpointInfo

from quaero import __version__
from quaero.stores.events import EVENT_TYPES
from quaero.web.auth import ADMIN_PATHS, OPEN_PATHS, SAFE_METHODS, under
from quaero.web.bodies import BODIES
from quaero.web.schemas import component_schemas

OPENAPI_VERSION = "3.0.3"
_PATH_PARAM = re.compile(r"{(\w+)}")

DESCRIPTION = """\
The JSON API of Quaero. Every list answers `{"items", "total", "limit", "offset", "next"}`; every error
answers `{"error", "detail"}` with its status code, where `detail` lists the bad fields as
`{"path", "message"}`.

Authentication: once the server has accounts or an access token, send `Authorization: Bearer <token>`
(an API token from `quaero users token` or `POST /api/users/{name}/tokens`, or the `access_token`
setting); a browser signed in at `/login` sends its session cookie. Without a credential every operation
but `/api/health` answers 401. A `viewer` reads everything and changes nothing: its writes answer 403, as
does all of `/api/users` (admins only).

Live events: a WebSocket at `/ws` (see `x-websocket`) sends each event as JSON `{"type", "payload"}`;
`?types=job_progress,job_log` keeps only those types and `?job_id=` only the events of one job and its
descendants. A client too slow for the stream is sent `{"type": "events_dropped", "payload": {"count"}}`.
"""

COMPONENTS = """
parameters:
  source:
    {name: source, in: query, description: "source type (repeat for any of several)", schema: {type: string}}
  tag:
    {name: tag, in: query, description: "tag (repeat: documents carrying all of them)", schema: {type: string}}
  after:
    {name: after, in: query, description: "updated on or after (YYYY-MM-DD or ISO 8601, UTC)", schema: {type: string}}
  before:
    {name: before, in: query, description: "updated before (YYYY-MM-DD or ISO 8601, UTC)", schema: {type: string}}
  job_id:
    {name: job_id, in: query, description: "saved by this job", schema: {type: string}}
  limit:
    name: limit
    in: query
    description: items per page
    schema: {type: integer, minimum: 1, maximum: 1000, default: 50}
  offset:
    name: offset
    in: query
    description: items to skip
    schema: {type: integer, minimum: 0, maximum: 10000000, default: 0}
  status:
    name: status
    in: query
    description: "only jobs in this status (empty: any)"
    schema: {type: string, enum: ['', pending, running, completed, failed, cancelled]}
responses:
  BadRequest:
    description: a parameter or body field is invalid; `detail` names it
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
  NotFound:
    description: no such object
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
  Conflict:
    description: the request clashes with the object's current state
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
  TooLarge:
    description: the body is larger than 1,000,000 bytes
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
  NotImplemented:
    description: the configured queue backend cannot list its dead letters (only the embedded SQLite one can)
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
  Unauthorized:
    description: "no valid credential: send 'Authorization: Bearer <token>', or sign in at /login"
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
  Forbidden:
    description: "the credential's role does not allow it (a viewer writing, or a viewer reading /api/users)"
    content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
schemas:
  Error:
    type: object
    required: [error, detail]
    properties:
      error: {type: string, description: "what went wrong, for a person to act on"}
      detail:
        description: >-
          null, a text, or a list of `{"path", "message"}` naming each bad field (with `in`: query, path or
          body, or with `line` and `column` in a job definition); for a 500, `{"error_id"}`: the id its
          traceback is logged under
        nullable: true
  JobStatus:
    type: string
    enum: [pending, running, completed, failed, cancelled]
  JobCounts:
    type: object
    description: a parent's direct children by status
    properties:
      total: {type: integer}
      pending: {type: integer}
      running: {type: integer, description: running and working (those that wait are counted in waiting)}
      waiting: {type: integer, description: "running, but waiting (for a per-host politeness slot, say)"}
      completed: {type: integer}
      failed: {type: integer}
      cancelled: {type: integer}
  Job:
    type: object
    required: [id, type, name, status, created_at]
    properties:
      id: {type: string}
      parent_id: {type: string, nullable: true}
      root_id: {type: string, nullable: true, description: the execution (root job) this job belongs to}
      definition_id: {type: string, nullable: true}
      type: {type: string, description: "parent (an execution), step, or a child's worker type such as crawler_url"}
      name: {type: string}
      phase: {type: string, description: orchestration (executions and steps) or execution (child jobs)}
      status: {$ref: '#/components/schemas/JobStatus'}
      error_message: {type: string, nullable: true}
      progress_current: {type: integer}
      progress_total: {type: integer}
      depth: {type: integer}
      attempts: {type: integer}
      discovered_by: {type: string, nullable: true, description: the job whose work found this one}
      result_count: {type: integer, description: "documents the job (and the jobs below it) saved"}
      outcome:
        type: string
        nullable: true
        description: >-
          what a finished job came to: saved, unchanged, skipped:<reason> (robots, noindex, duplicate,
          not_html, http_404, blocked_address, redirect_loop, ...) or failed[:<reason>]; saved and unchanged
          may carry a reason too (saved:rendered: a page rendered in a browser); null for a job that
          reported none (a plain completed one) and for one not finished
      waiting:
        type: string
        nullable: true
        description: "why a running job waits instead of working (e.g. a per-host slot for example.com); null otherwise"
      outcomes:
        type: object
        additionalProperties: {type: integer}
        description: >-
          only on one step or execution: its children (an execution: every job below its steps) counted by
          outcome, e.g. {"saved": 3, "skipped:robots": 1, "skipped:http_404": 1, "failed": 1}
      counts: {$ref: '#/components/schemas/JobCounts'}
      progress_text: {type: string, description: "the seed's text, e.g. '3 pending, 1 running, 6 completed, 0 failed'"}
      progress: {$ref: '#/components/schemas/JobProgress'}
      payload: {type: object, description: "the job's configuration and, for an execution, its definition and state"}
      created_at: {type: string, format: date-time}
      updated_at: {type: string, format: date-time}
      started_at: {type: string, format: date-time, nullable: true}
      finished_at: {type: string, format: date-time, nullable: true}
      stats:
        type: object
        description: "only on one step job: its action's figures (a crawl's pages saved, skipped, ...)"
  JobProgress:
    type: object
    description: "the job's work: an execution's is its steps' children done of children known, and its step"
    required: [done, total, percent, text, eta_s]
    properties:
      done: {type: integer, description: "children finished (completed, failed or cancelled) across the steps"}
      total: {type: integer, description: children known so far across the steps (a crawl finds more as it goes)}
      percent: {type: integer, minimum: 0, maximum: 100, description: "done of total; 100 only once finished"}
      completed: {type: integer}
      failed: {type: integer}
      cancelled: {type: integer}
      step: {type: string, nullable: true, description: "an execution's current (or last) step's name"}
      step_index: {type: integer, nullable: true, description: "which step of the definition it is on, from 1"}
      steps: {type: integer, nullable: true, description: "how many steps the definition has"}
      text: {type: string, description: "e.g. 'step 2/3 crawl: 140/400'; empty while nothing is known"}
      rate_per_s:
        type: number
        nullable: true
        description: "the current step's children finished per second of its run time"
      eta_s:
        type: number
        nullable: true
        description: "seconds until the current step's known children are done at that rate; null when unknown"
  JobLog:
    type: object
    required: [id, job_id, level, message, timestamp]
    properties:
      id: {type: integer, description: increasing; the cursor for tailing}
      job_id: {type: string}
      level: {type: string, enum: [debug, info, warn, error]}
      message: {type: string}
      timestamp: {type: string, format: date-time}
  Definition:
    type: object
    required: [id, name, enabled, source]
    properties:
      id: {type: string}
      name: {type: string}
      description: {type: string}
      enabled: {type: boolean}
      schedule: {type: string, nullable: true, description: a cron expression}
      origin: {type: string, description: "api, or file:<path> for a definition loaded from job-definitions/"}
      source: {type: string, description: the definition as YAML}
      created_at: {type: string, format: date-time}
      updated_at: {type: string, format: date-time}
      definition: {type: object, description: "the validated definition (on one definition, not in lists)"}
      runnable: {type: boolean, description: "whether it can run now (false: executing it is refused, 409)"}
      not_runnable: {type: array, items: {type: string}, description: "why not, one reason per step"}
  Plugin:
    type: object
    properties:
      name: {type: string}
      version: {type: string, nullable: true}
      source: {type: string}
      actions: {type: array, items: {$ref: '#/components/schemas/Action'}}
      error: {type: string, nullable: true, description: why the plugin was skipped}
      settings_schema: {type: object, nullable: true, description: "the JSON schema of its settings ([plugins.NAME])"}
      settings:
        type: object
        nullable: true
        description: its settings in effect; secrets appear as their ${VAR} reference or masked
  Action:
    type: object
    properties:
      name: {type: string}
      plugin: {type: string}
      description: {type: string}
      workers: {type: array, items: {type: string}, description: the job types its workers execute}
      options: {type: object, description: "the JSON schema of a step's config (unknown keys are rejected)"}
  Credential:
    type: object
    description: the names of what an auth id holds; values never leave the server
    properties:
      id: {type: string}
      base_url: {type: string}
      cookies: {type: array, items: {type: string}}
      headers: {type: array, items: {type: string}}
      created_at: {type: string, format: date-time}
  DeadLetter:
    type: object
    description: the message of a job that failed after its last retry
    properties:
      id: {type: integer}
      queue: {type: string}
      actor_name: {type: string, nullable: true}
      args: {type: array, nullable: true, items: {}}
      received: {type: integer, description: "deliveries of this message (a retry is sent as a new message)"}
      attempts: {type: integer, description: "how often the job ran, retries included (its log tells each)"}
      enqueued_at: {type: string, format: date-time}
      dead_at: {type: string, format: date-time}
      job_id: {type: string}
      job_status:
        allOf: [{$ref: '#/components/schemas/JobStatus'}]
        nullable: true
        description: null when the job was deleted
      job_error: {type: string, nullable: true}
  QueueCounts:
    type: object
    properties:
      ready: {type: integer}
      delayed: {type: integer}
      in_flight: {type: integer, nullable: true, description: null where the backend cannot count it}
      dead: {type: integer}
  DocumentSummary:
    type: object
    properties:
      id: {type: integer}
      source_type: {type: string}
      source_ref: {type: string, description: "the URL, or another reference unique within the source type"}
      title: {type: string}
      tags: {type: array, items: {type: string}}
      keywords: {type: array, items: {type: string}}
      summary: {type: string}
      metadata: {type: object}
      content_hash: {type: string}
      job_id: {type: string, nullable: true, description: the job that saved it}
      created_at: {type: string, format: date-time}
      updated_at: {type: string, format: date-time}
  Document:
    allOf:
      - {$ref: '#/components/schemas/DocumentSummary'}
      - type: object
        properties:
          markdown: {type: string}
          html: {type: string, nullable: true, description: kept only when the crawl was asked to}
  TagCount:
    type: object
    properties: {tag: {type: string}, count: {type: integer}}
  SearchHit:
    type: object
    properties:
      id: {type: integer}
      title: {type: string}
      source_type: {type: string}
      source_ref: {type: string}
      tags: {type: array, items: {type: string}}
      updated_at: {type: string, format: date-time}
      snippet: {type: string, description: "HTML-escaped text, matches in <mark>"}
      snippet_text: {type: string}
      score: {type: number, nullable: true, description: "higher is better; null without words"}
  Principal:
    type: object
    required: [kind, role, name]
    properties:
      kind:
        type: string
        enum: [session, token, access_token, open]
        description: "how the request proved who sent it (open: the server has no accounts and no token)"
      role: {type: string, enum: [admin, viewer]}
      name: {type: string, nullable: true, description: the user; null for the access token and an open server}
  User:
    type: object
    required: [name, role]
    properties:
      name: {type: string}
      role: {type: string, enum: [admin, viewer]}
      tokens: {type: integer, description: API tokens the user holds}
      created_at: {type: string, format: date-time}
      updated_at: {type: string, format: date-time}
  Token:
    type: object
    description: an API token's description; the token itself is shown only when it is made
    required: [id, name, user]
    properties:
      id: {type: integer}
      name: {type: string}
      user: {type: string}
      created_at: {type: string, format: date-time}
      last_used_at: {type: string, format: date-time, nullable: true, description: "to the minute"}
  TokenCreated:
    allOf:
      - {$ref: '#/components/schemas/Token'}
      - type: object
        required: [token]
        properties:
          token: {type: string, description: "the token: shown this once, kept only as a hash"}
  JobAccepted:
    type: object
    required: [job_id]
    properties:
      job_id: {type: string, description: the root job of the new execution}
  RecoveryOutcome:
    type: object
    description: "what a re-run of failed children or a bulk action did"
    required: [done, skipped, skipped_total, errors]
    properties:
      done: {type: integer, description: jobs acted on}
      skipped:
        type: object
        additionalProperties: {type: integer}
        description: "jobs left as they were, by reason: finished, running, gone, execution_running, completed,
          same_definition, cannot_run, no_worker, nothing_failed"
      skipped_total: {type: integer}
      errors: {type: array, items: {type: string}, description: "the first messages of what could not be done"}
  BulkResult:
    type: object
    required: [action, filter, matched, by_status, dry_run]
    properties:
      action: {type: string, enum: [cancel, delete, rerun]}
      filter: {type: object, additionalProperties: {type: string}, description: the filter's keys that are set}
      matched: {type: integer, description: how many jobs the filter matches now}
      by_status: {type: object, additionalProperties: {type: integer}}
      dry_run: {type: boolean}
      ids: {type: array, items: {type: string}, description: "dry run: the first 100 matching ids, newest first"}
      confirm_required: {type: boolean, description: "dry run: acting needs confirm_count (more than 10,000)"}
      too_many: {type: boolean, description: "dry run: more than 100,000 match, more than one action may take"}
      done: {type: integer}
      skipped: {type: object, additionalProperties: {type: integer}}
      skipped_total: {type: integer}
      errors: {type: array, items: {type: string}}
      jobs_removed: {type: integer, description: "delete: jobs removed, descendants included"}
      started: {type: array, items: {type: string}, description: "rerun: the new executions (the first 100)"}
      requeued: {type: integer, description: "rerun: child jobs put back on the queue"}
  Event:
    type: object
    description: one message of the `/ws` stream
    required: [type, payload]
    properties:
      type:
        type: string
        enum: [job_progress, task_progress, job_log, job_status_change, result_saved, job_spawn, events_dropped, error]
      payload: {type: object}
  JobProgressEvent:
    type: object
    properties:
      job_id: {type: string}
      status: {$ref: '#/components/schemas/JobStatus'}
      total_subtasks: {type: integer}
      pending_subtasks: {type: integer}
      running_subtasks: {type: integer}
      completed_subtasks: {type: integer}
      failed_subtasks: {type: integer}
      cancelled_subtasks: {type: integer}
      progress_text: {type: string}
      result_count: {type: integer}
      timestamp: {type: string, format: date-time}
  TaskProgressEvent:
    type: object
    properties:
      job_id: {type: string}
      parent_id: {type: string}
      status: {$ref: '#/components/schemas/JobStatus'}
      job_type: {type: string}
      current_item: {type: string}
      current_activity: {type: string}
      depth: {type: integer}
      timestamp: {type: string, format: date-time}
  JobLogEvent:
    type: object
    properties:
      job_id: {type: string}
      level: {type: string}
      message: {type: string}
      timestamp: {type: string, format: date-time}
      metadata: {type: object}
  JobStatusChangeEvent:
    type: object
    properties:
      job_id: {type: string}
      parent_id: {type: string, nullable: true}
      status: {$ref: '#/components/schemas/JobStatus'}
      previous_status: {type: string}
      job_type: {type: string}
      timestamp: {type: string, format: date-time}
  ResultSavedEvent:
    type: object
    properties:
      result_id: {type: string}
      job_id: {type: string}
      parent_job_id: {type: string}
      title: {type: string}
      item_reference: {type: string}
      timestamp: {type: string, format: date-time}
  JobSpawnEvent:
    type: object
    properties:
      parent_job_id: {type: string}
      discovered_by: {type: string}
      child_job_id: {type: string}
      job_type: {type: string}
      item_reference: {type: string}
      depth: {type: integer}
      timestamp: {type: string, format: date-time}
  WebhookDelivery:
    type: object
    description: "one event of an execution sent to one webhook; its URL and secret themselves are never shown"
    properties:
      id: {type: string, description: "sent as X-Quaero-Delivery, the same on every attempt"}
      job_id: {type: string}
      event: {type: string, enum: [started, completed, failed, cancelled]}
      url: {type: string, description: "scheme, host, port and path: no user info, no query string"}
      status: {type: string, enum: [pending, delivered, failed]}
      attempts: {type: integer, minimum: 0}
      last_status_code: {type: integer, nullable: true, description: "the last attempt's HTTP status"}
      last_error: {type: string, nullable: true}
      next_attempt_at: {type: string, format: date-time, nullable: true, description: "while pending"}
      created_at: {type: string, format: date-time}
      last_attempt_at: {type: string, format: date-time, nullable: true}
      delivered_at: {type: string, format: date-time, nullable: true}
"""

# Each list's page: the item schema and what its ``next`` cursor is.
PAGES = {
    "JobPage": ("Job", {"type": "string", "nullable": True,
                        "description": "pass as `before` for the following page; null on the last one"}),
    "JobLogPage": ("JobLog", {"type": "integer", "nullable": True,
                              "description": "pass as `after_id` for the following lines (always set: tail with it)"}),
    "DefinitionPage": ("Definition", None),
    "PluginPage": ("Plugin", None),
    "CredentialPage": ("Credential", None),
    "UserPage": ("User", None),
    "TokenPage": ("Token", None),
    "DeadLetterPage": ("DeadLetter", None),
    "WebhookDeliveryPage": ("WebhookDelivery", None),
    "DocumentPage": ("DocumentSummary", None),
    "TagPage": ("TagCount", None),
    "SearchPage": ("SearchHit", None),
}
EVENT_SCHEMAS = {"job_progress": "JobProgressEvent", "task_progress": "TaskProgressEvent", "job_log": "JobLogEvent",
                 "job_status_change": "JobStatusChangeEvent", "result_saved": "ResultSavedEvent",
                 "job_spawn": "JobSpawnEvent"}


def page_schema(item: str, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """The page of a list: ``{"items", "total", "limit", "offset", "next"}``."""
    return {
        "type": "object", "required": ["items", "total", "limit", "offset", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "total": {"type": "integer", "minimum": 0, "description": "how many match in all"},
            "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "next": cursor or {"type": "string", "nullable": True, "description": "always null: pages by offset"},
        },
    }


@functools.cache
def components(plugin_bodies: tuple[tuple[str, type[BaseModel]], ...] = ()) -> dict[str, Any]:
    """The shared parameters, responses and schemas: written here, or generated from the bodies' models
    (the core's, and those plugins' routes declared)."""
    parsed = yaml.safe_load(COMPONENTS)
    parsed["schemas"].update({name: page_schema(item, cursor) for name, (item, cursor) in PAGES.items()})
    generated = component_schemas({**BODIES, **dict(plugin_bodies)})
    clashes = sorted(set(generated) & set(parsed["schemas"]))
    if clashes:
        raise ValueError(f"schemas both written here and generated from a model: {', '.join(clashes)}")
    parsed["schemas"].update(generated)
    return parsed


def websocket_description() -> dict[str, Any]:
    """``/ws`` as an ``x-websocket`` extension: its query parameters and the payload of each event type."""
    return {"/ws": {
        "summary": "Live events as JSON {\"type\", \"payload\"}",
        "parameters": [
            {"name": "types", "in": "query", "schema": {"type": "string"},
             "description": f"comma-separated event types to keep, of: {', '.join(EVENT_TYPES)}"},
            {"name": "job_id", "in": "query", "schema": {"type": "string"},
             "description": "only the events of this job and its descendants"},
            {"name": "batch", "in": "query", "schema": {"type": "boolean"},
             "description": "1: each frame is a JSON array of the events waiting, for thousands a second"},
        ],
        "message": {"$ref": "#/components/schemas/Event"},
        "payloads": {name: {"$ref": f"#/components/schemas/{schema}"} for name, schema in EVENT_SCHEMAS.items()},
    }}


def is_documented(path: str) -> bool:
    """Whether a path belongs in the document: the JSON API and the metrics, not the HTML pages."""
    return path.startswith("/api/") or path == "/metrics"


@functools.cache
def docstring_operation(func: Callable[..., Any]) -> tuple[str, dict[str, Any] | None]:
    """A view's summary line and the YAML after its ``---`` (parsed once per view; never mutated)."""
    summary, marker, spec = (inspect.getdoc(func) or "").partition("---")
    parsed = yaml.safe_load(spec) if marker else None
    first_line = summary.strip().splitlines()[0] if summary.strip() else func.__name__
    return first_line, parsed if isinstance(parsed, dict) else None


def operation(endpoint: EndpointInfo) -> dict[str, Any] | None:
    """The operation an endpoint's docstring describes, or ``None`` when it has no YAML part.

    Adds what the path already says: the summary, an operationId, and the path parameters not declared.
    """
    summary, parsed = docstring_operation(endpoint.func)
    if parsed is None:
        return None
    declared = {p.get("name") for p in parsed.get("parameters", []) if p.get("in") == "path"}
    path_params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                   for name in _PATH_PARAM.findall(endpoint.path) if name not in declared]
    responses = {str(code): response for code, response in parsed.get("responses", {}).items()}
    return {"summary": summary, "operationId": endpoint.func.__name__, **parsed,
            "parameters": [*path_params, *parsed.get("parameters", [])],
            "responses": {**responses, **_access_responses(endpoint, responses)}}


def _access_responses(endpoint: EndpointInfo, declared: dict[str, Any]) -> dict[str, Any]:
    """The answers the security middleware may give before the view runs: 401 anywhere but the open paths,
    403 to a viewer's writes and to a viewer anywhere under /api/users."""
    if under(endpoint.path, OPEN_PATHS):
        return {}
    added = {"401": {"$ref": "#/components/responses/Unauthorized"}}
    if endpoint.http_method.upper() not in SAFE_METHODS or under(endpoint.path, ADMIN_PATHS):
        added["403"] = {"$ref": "#/components/responses/Forbidden"}
    return {code: response for code, response in added.items() if code not in declared}


class DocstringSchemas(BaseSchemaGenerator):
    """Builds the document from the routes' docstrings."""

    def get_schema(self, routes: list[BaseRoute],
                   plugin_bodies: dict[str, type[BaseModel]] | None = None) -> dict[str, Any]:
        """The whole document for ``routes``: the API's paths, the shared components, the WebSocket."""
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.get_endpoints(routes):
            described = operation(endpoint) if is_documented(endpoint.path) else None
            if described is not None:
                paths.setdefault(endpoint.path, {})[endpoint.http_method] = described
        return {
            "openapi": OPENAPI_VERSION,
            "info": {"title": "Quaero", "version": __version__, "description": DESCRIPTION},
            "paths": paths,
            "components": components(tuple(sorted((plugin_bodies or {}).items()))),
            "x-websocket": websocket_description(),
        }


async def openapi_document(request: Request) -> JSONResponse:
    """This document: every endpoint of the API with its parameters, bodies and responses.
    ---
    responses:
      200:
        description: an OpenAPI 3.0 document
        content: {application/json: {schema: {type: object}}}
    """
    bodies = request.app.state.plugin_bodies
    return JSONResponse(DocstringSchemas().get_schema(request.app.routes, bodies))


def component_names() -> set[str]:
    """The names of the core's component schemas (a plugin's body model may not take one)."""
    return set(components()["schemas"])


routes = [Route("/api/openapi.json", openapi_document, methods=["GET"])]
