"""The htmx pages: dashboard, definitions, jobs, job detail, queue, plugins and settings.

Each page has a *context* function (request parameters in, plain data out) that both the full page and
the live stream (:mod:`quaero.web.live`) render from. Views stay thin: they call the same services as
the API and the CLI. Every form posts to a page route that redirects back (POST/redirect/GET), so the
pages work without JavaScript; htmx only makes them live.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from quaero.api.outcomes import OUTCOMES, outcome_filter
from quaero.errors import DefinitionError, NotFound, QuaeroError
from quaero.runtime import Runtime
from quaero.stores.jobs import JobFilter
from quaero.stores.logs import LEVELS, first_id, last_id
from quaero.stores.models import JOB_STATUSES
from quaero.stores.views import job_dict, job_dicts
from quaero.web.charts import time_chart
from quaero.web.definition_help import definition_help
from quaero.web.http import int_path, orchestrator_of, read_body, runtime_of
from quaero.web.plugin_listing import plugins_context
from quaero.web.render import Page, fragment, layout, page, templates_of, url_maker
from quaero.web.settings_view import settings_in_effect, value_text
from quaero.web.timeline import job_timeline

PAGE_SIZE = 50
LOG_LINES = 300
FLASH = {
    "cancelled": "The job was cancelled.", "deleted": "The job was deleted.", "rerun": "A new execution started.",
    "saved": "The definition was saved.", "enabled": "The definition is enabled.",
    "disabled": "The definition is disabled.", "definition-deleted": "The definition was deleted.",
    "credentials-saved": "The credentials were saved.", "credentials-deleted": "The credentials were deleted.",
    "requeued": "The message was put back on its queue.", "document-deleted": "The document was deleted.",
    "dead-deleted": "The dead letter was deleted.",
    "rerun-failed": "The failed children were queued to run again.",
}


# ---------------------------------------------------------------------------------------------- helpers
def _param(params: Mapping[str, str], name: str, allowed: tuple[str, ...] | None = None) -> str:
    value = (params.get(name) or "").strip()
    return value if allowed is None or value in allowed else ""


def _known(action: str, known: Mapping[str, Any] | tuple[str, ...]) -> str:
    """The action from the URL, or :class:`NotFound` (so a mistyped URL is a 404 page)."""
    if action not in known:
        raise NotFound(f"there is no {action!r} action here")
    return action


def _offset(params: Mapping[str, str]) -> int:
    raw = params.get("offset", "0")
    return int(raw) if raw.isdigit() and len(raw) < 10 else 0


def _flash(request: Request) -> str | None:
    return FLASH.get(request.query_params.get("done", ""))


def _see(url: str, done: str | None = None) -> RedirectResponse:
    """Redirect after a form post (303, so the browser follows with GET)."""
    if done:
        url += ("&" if "?" in url else "?") + f"done={done}"
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """The posted form as a dict (bounded by the API's body limit)."""
    body = (await read_body(request)).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


# ---------------------------------------------------------------------------------------------- dashboard
#: The shipped example the dashboard offers before anything has run (job-definitions/crawl-quaero-guide.yaml).
FIRST_CRAWL = "crawl-quaero-guide"


def dashboard_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    """Running executions, recent failures, and the last hour's throughput and queue depth."""
    activity = runtime.activity
    now = time.time()
    throughput = activity.throughput(minutes=60, now=now)
    start = now - 3600
    history = runtime_history(runtime)
    executions = activity.executions_by_status()
    return {
        "running": job_dicts(runtime.jobs, activity.running_executions(limit=20)),
        "failures": job_dicts(runtime.jobs, activity.recent_failures(limit=10)),
        "executions": executions,
        # Nothing has run yet: the dashboard points at the first crawl, which needs no internet.
        "first_crawl": FIRST_CRAWL if not any(executions.values()) and runtime.definitions.exists(FIRST_CRAWL)
        else None,
        "throughput": throughput.as_dict(),
        "throughput_chart": time_chart(
            [(start + minute * 60, count) for minute, count in enumerate(throughput.values)],
            label="jobs finished per minute over the last hour", unit="jobs/min", kind="bars", now=now,
            empty="No job finished in the last hour."),
        "queue_depth": history.points(),
        "queue_chart": time_chart(history.samples, label="messages in the queue over the last hour", unit="messages",
                                  kind="line", now=now, empty="No samples yet."),
    }


class QueueHistory:
    """Queue depth sampled every ``interval`` seconds, for the dashboard's last-hour chart."""

    def __init__(self, interval: float = 30.0, keep: int = 120) -> None:
        self.interval = interval
        self.keep = keep
        self.samples: list[tuple[float, int]] = []

    def sample(self, runtime: Runtime) -> None:
        stats = runtime.queue.stats()
        depth = sum(q["ready"] + q["delayed"] + (q["in_flight"] or 0) for q in stats.values())
        self.samples = [*self.samples[-(self.keep - 1):], (time.time(), depth)]

    def points(self) -> dict[str, Any]:
        cutoff = time.time() - 3600
        values = [depth for stamp, depth in self.samples if stamp >= cutoff]
        return {"values": values, "peak": max(values, default=0), "current": values[-1] if values else 0}


def runtime_history(runtime: Runtime) -> QueueHistory:
    """The runtime's queue-depth history (made on first use)."""
    history = getattr(runtime, "_queue_history", None)
    if history is None:
        history = runtime._queue_history = QueueHistory()  # type: ignore[attr-defined]
        history.sample(runtime)
    return history


async def dashboard(request: Request) -> Response:
    runtime = runtime_of(request)
    context = await asyncio.to_thread(dashboard_context, runtime, request.query_params)
    return page("dashboard.html", layout(request, "/", title="Dashboard", live_url="/live/dashboard", **context))


# ---------------------------------------------------------------------------------------------- jobs
def jobs_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of jobs with the filters applied (executions only unless a type or parent is chosen),
    through the same listing as ``GET /api/jobs``."""
    filters = {
        "status": _param(params, "status", JOB_STATUSES), "type": _param(params, "type"),
        "definition_id": _param(params, "definition_id"), "parent_id": _param(params, "parent_id"),
    }
    where = JobFilter(status=filters["status"] or None,
                      type=filters["type"] or (None if filters["parent_id"] else "parent"),
                      parent_id=filters["parent_id"] or None, definition_id=filters["definition_id"] or None)
    offset = _offset(params)
    jobs, total = runtime.jobs.listing(where, limit=PAGE_SIZE, offset=offset)
    return {"jobs": job_dicts(runtime.jobs, jobs), "filters": filters, "statuses": JOB_STATUSES,
            "types": runtime.jobs.types(limit=50), "pagination": Page(total, PAGE_SIZE, offset),
            "url": url_maker("/jobs", {**filters, "offset": offset})}


async def jobs(request: Request) -> Response:
    runtime = runtime_of(request)
    context = await asyncio.to_thread(jobs_context, runtime, request.query_params)
    live = "/live/jobs?" + str(request.query_params) if request.query_params else "/live/jobs"
    return page("jobs.html", layout(request, "/jobs", title="Jobs", live_url=live, flash=_flash(request), **context))


def job_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    """A job with its steps and one page of its children: what the job page and its live blocks show."""
    jobs = runtime.jobs
    job = jobs.get(params["id"])
    [data] = job_dicts(jobs, [job])
    status_filter = _param(params, "child_status", JOB_STATUSES)
    outcome_filter, outcome_error = _outcome_param(params)
    offset = _offset(params)
    children = jobs.children(job.id, status=status_filter or None, outcome=outcome_filter or None, limit=PAGE_SIZE,
                             offset=offset)
    counts = data["counts"]
    if outcome_filter:
        child_total = jobs.count_children(job.id, status=status_filter or None, outcome=outcome_filter)
    else:
        child_total = counts[status_filter] + (counts["waiting"] if status_filter == "running" else 0) \
            if status_filter else counts["total"]
    outcomes = jobs.outcome_counts(job.id) if counts["total"] else {}
    level = _param(params, "level", LEVELS)
    root_id = job.root_id if job.root_id != job.id else None
    root = job_dicts(jobs, [jobs.get(root_id)])[0] if root_id else None
    # A child's breadcrumb names its step (its parent below the root).
    parent = jobs.find(job.parent_id) if job.parent_id and job.parent_id != job.root_id else None
    stats = runtime.step_stats(job)
    params_kept = {"child_status": status_filter, "child_outcome": outcome_filter, "level": level, "offset": offset}
    stored = job.definition_id is not None and runtime.definitions.exists(job.definition_id)
    return {
        "job": data, "root": root, "parent": {"id": parent.id, "name": parent.name} if parent else None,
        "children": job_dicts(jobs, children), "child_status": status_filter,
        "child_outcome": outcome_filter, "outcome_error": outcome_error, "outcomes": outcomes,
        "outcome_kinds": _outcome_kinds(outcomes),
        "statuses": JOB_STATUSES, "levels": LEVELS, "level": level, "stats": stats,
        "duration": _duration(job), "definition_stored": stored,
        "pagination": Page(child_total, PAGE_SIZE, offset), "url": url_maker(f"/jobs/{job.id}", params_kept),
    }


def _outcome_param(params: Mapping[str, str]) -> tuple[str, str | None]:
    """The children's outcome filter, and the message for a bad one (shown beside the filter)."""
    value = _param(params, "child_outcome")
    if not value:
        return "", None
    try:
        return outcome_filter(value), None
    except ValueError as exc:
        return "", str(exc)


def _outcome_kinds(outcomes: Mapping[str, int]) -> dict[str, int]:
    """Outcome counts by kind (``skipped`` for every ``skipped:<reason>``), the kinds in their order."""
    kinds = dict.fromkeys(OUTCOMES, 0)
    for outcome, count in outcomes.items():
        kind = outcome.partition(":")[0]
        kinds[kind] = kinds.get(kind, 0) + count
    return {kind: count for kind, count in kinds.items() if count}


def _duration(job: Any) -> float | None:
    if job.started_at is None:
        return None
    return (job.finished_at or time.time()) - job.started_at


def job_page_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    """:func:`job_context` and the tail of the job's (and its descendants') log, for the whole page; the live
    stream appends the lines that come after it."""
    context = job_context(runtime, params)
    lines = runtime.logs.read([params["id"]], before_id=0, level=context["level"] or None,
                                       limit=LOG_LINES, descendants=True)
    timeline = job_timeline(runtime.jobs, runtime.jobs.get(params["id"]))
    return {**context, "lines": lines, "last_log_id": last_id(lines), "first_log_id": first_id(lines),
            "timeline": timeline}


async def job(request: Request) -> Response:
    runtime = runtime_of(request)
    params = {**request.query_params, "id": request.path_params["id"]}
    context = await asyncio.to_thread(job_page_context, runtime, params)
    live_params = {**request.query_params, "after_id": context["last_log_id"]}
    live = f"/live/job/{quote(request.path_params['id'])}?{urlencode(live_params)}"
    return page("job.html", layout(request, "/jobs", title=f"Job {context['job']['name']}", live_url=live,
                                   flash=_flash(request), **context))


async def job_timeline_fragment(request: Request) -> Response:
    """The job page's timeline alone: what the page reloads every few seconds while the job runs."""
    runtime = runtime_of(request)

    def context() -> dict[str, Any]:
        found = runtime.jobs.get(request.path_params["id"])
        return {"job": job_dicts(runtime.jobs, [found])[0], "timeline": job_timeline(runtime.jobs, found)}

    html = templates_of(request).get_template("_job_timeline.html").render(await asyncio.to_thread(context))
    return HTMLResponse(html)


async def job_logs(request: Request) -> Response:
    """Older log lines (the 'earlier lines' link): a fragment for htmx, the whole page otherwise."""
    runtime = runtime_of(request)
    job_id = request.path_params["id"]
    before = request.query_params.get("before_id", "0")
    level = _param(request.query_params, "level", LEVELS)
    await asyncio.to_thread(runtime.jobs.get, job_id)
    lines = await asyncio.to_thread(runtime.logs.read, [job_id], level=level or None, limit=LOG_LINES,
                                    before_id=int(before) if before.isdigit() and len(before) < 19 else 0,
                                    descendants=True)
    return fragment("job.html", ["older_lines"], {"request": request, "job": {"id": job_id}, "older": lines,
                                                  "older_first_id": first_id(lines), "level": level})


CONFIRM = {
    "cancel": ("Cancel this job?", "Its unfinished children are cancelled too; running ones stop at their next check.",
               "Cancel job"),
    "delete": ("Delete this job?", "The job, all its descendants and their logs are removed. Documents stay.",
               "Delete job"),
    "rerun": ("Run this definition again?", "A new execution starts from the same definition.", "Run again"),
}


async def job_confirm(request: Request) -> Response:
    """The confirmation page for cancel, rerun and delete (works without JavaScript)."""
    runtime = runtime_of(request)
    action = _known(request.path_params["action"], CONFIRM)
    job = job_dict(await asyncio.to_thread(runtime.jobs.get, request.path_params["id"]))
    question, consequence, button = CONFIRM[action]
    return page("confirm.html", layout(request, "/jobs", title=question, question=question, consequence=consequence,
                                       button=button, action_url=f"/jobs/{job['id']}/{action}",
                                       back_url=f"/jobs/{job['id']}", subject=job["name"],
                                       danger=action != "rerun"))


async def job_action(request: Request) -> Response:
    runtime = runtime_of(request)
    action, job_id = _known(request.path_params["action"], CONFIRM), request.path_params["id"]
    if action == "cancel":
        await asyncio.to_thread(orchestrator_of(request).cancel, job_id)
        return _see(f"/jobs/{job_id}", "cancelled")
    if action == "rerun":
        new_id = await asyncio.to_thread(orchestrator_of(request).rerun, job_id)
        return _see(f"/jobs/{new_id}", "rerun")
    await asyncio.to_thread(runtime.jobs.delete, job_id)
    return _see("/jobs", "deleted")


# ---------------------------------------------------------------------------------------------- definitions
def definitions_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    """Every definition with its latest execution."""
    items = []
    for record in runtime.definitions.list():
        last = runtime.jobs.executions(definition_id=record.id, limit=1)
        items.append({**runtime.definition_dict(record), "last": job_dicts(runtime.jobs, last)[0] if last else None})
    return {"definitions": items}


async def definitions(request: Request) -> Response:
    context = await asyncio.to_thread(definitions_context, runtime_of(request), request.query_params)
    return page("definitions.html", layout(request, "/definitions", title="Job definitions",
                                           live_url="/live/definitions", flash=_flash(request), **context))


NEW_DEFINITION = """id: my-crawl
name: My crawl
description: Crawl a site and index its pages
steps:
  - name: crawl
    action: crawl
    config:
      start_urls: ["https://example.org/"]
      max_depth: 2
      max_pages: 100
"""


def problems_context(errors: list[dict[str, Any]] | None, error: str | None) -> dict[str, Any]:
    """What the editor's problems block shows: each problem once (the list, or the one message when the
    error has no list), and the lines to mark in the editor."""
    errors = [e for e in errors or [] if isinstance(e, dict)]
    lines = sorted({e["line"] for e in errors if isinstance(e.get("line"), int)})
    return {"errors": errors, "error": None if errors else error, "error_lines": lines}


def _editor(request: Request, *, definition_id: str | None, source: str, errors: list[dict[str, Any]] | None = None,
            error: str | None = None, status_code: int = 200) -> HTMLResponse:
    title = f"Edit {definition_id}" if definition_id else "New job definition"
    return page("definition_edit.html", layout(
        request, "/definitions", title=title, definition_id=definition_id, source=source,
        line_count=source.count("\n") + 1, help=definition_help(runtime_of(request).registry),
        **problems_context(errors, error)), status_code=status_code)


async def definition_new(request: Request) -> Response:
    return _editor(request, definition_id=None, source=NEW_DEFINITION)


async def definition_create(request: Request) -> Response:
    form = await _form(request)
    source = form.get("source", "")
    try:
        record, _ = await asyncio.to_thread(runtime_of(request).definitions.create, source)
    except QuaeroError as exc:
        return _editor(request, definition_id=None, source=source, error=exc.message,
                       errors=exc.detail if isinstance(exc.detail, list) else [], status_code=exc.status_code)
    return _see(f"/definitions/{record.id}", "saved")


def definition_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    """A stored definition, its source and its latest executions."""
    record = runtime.definitions.record(params["id"])
    runs = runtime.jobs.executions(definition_id=record.id, limit=20)
    return {"definition": runtime.definition_dict(record), "source": record.source,
            "runs": job_dicts(runtime.jobs, runs)}


async def definition_view(request: Request) -> Response:
    runtime = runtime_of(request)
    params = {"id": request.path_params["id"]}
    context = await asyncio.to_thread(definition_context, runtime, params)
    return page("definition.html", layout(request, "/definitions", title=context["definition"]["name"],
                                          live_url=f"/live/definition/{quote(params['id'])}",
                                          flash=_flash(request), **context))


async def definition_edit(request: Request) -> Response:
    record = await asyncio.to_thread(runtime_of(request).definitions.record, request.path_params["id"])
    return _editor(request, definition_id=record.id, source=record.source)


async def definition_save(request: Request) -> Response:
    definition_id = request.path_params["id"]
    form = await _form(request)
    source = form.get("source", "")
    try:
        await asyncio.to_thread(runtime_of(request).definitions.update, definition_id, source)
    except NotFound:
        raise
    except QuaeroError as exc:
        return _editor(request, definition_id=definition_id, source=source, error=exc.message,
                       errors=exc.detail if isinstance(exc.detail, list) else [], status_code=exc.status_code)
    return _see(f"/definitions/{definition_id}", "saved")


async def definition_check(request: Request) -> Response:
    """Validate the editor's text as the user types (htmx): the errors block, or a short 'valid' note."""
    form = await _form(request)
    store = runtime_of(request).definitions
    context: dict[str, Any]
    try:
        definition = await asyncio.to_thread(store.parse, form.get("source", ""),
                                             default_id=form.get("definition_id") or None)
        context = {**problems_context(None, None), "valid": definition.name}
    except DefinitionError as exc:
        context = {**problems_context(exc.detail if isinstance(exc.detail, list) else None, exc.message),
                   "valid": None}
    return fragment("definition_edit.html", ["problems"], {"request": request, **context})


async def definition_action(request: Request) -> Response:
    runtime = runtime_of(request)
    action = _known(request.path_params["action"], ("execute", "enable", "disable", "delete"))
    definition_id = request.path_params["id"]
    if action == "execute":
        job_id = await asyncio.to_thread(orchestrator_of(request).execute, definition_id, trigger="dashboard")
        return _see(f"/jobs/{job_id}")
    if action in ("enable", "disable"):
        await asyncio.to_thread(runtime.definitions.set_enabled, definition_id, action == "enable")
        return _see(f"/definitions/{definition_id}", f"{action}d")
    await asyncio.to_thread(runtime.definitions.delete, definition_id)
    return _see("/definitions", "definition-deleted")


async def definition_confirm_delete(request: Request) -> Response:
    record = await asyncio.to_thread(runtime_of(request).definitions.record, request.path_params["id"])
    return page("confirm.html", layout(
        request, "/definitions", title="Delete definition?", question="Delete this job definition?",
        consequence="The jobs it produced and their documents stay.", button="Delete definition",
        action_url=f"/definitions/{record.id}/delete", back_url=f"/definitions/{record.id}", subject=record.name,
        danger=True))


# ---------------------------------------------------------------------------------------------- queue
def queue_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    stats = runtime.queue.stats()
    offset = _offset(params)
    letters = runtime.dead_letters
    dead, dead_total = letters.page(limit=PAGE_SIZE, offset=offset) if letters.supported else (None, 0)
    return {"queues": stats, "dead": dead, "pagination": Page(dead_total, PAGE_SIZE, offset),
            "url": url_maker("/queue", {"offset": offset}), "broker": type(runtime.broker).__name__}


async def queue(request: Request) -> Response:
    context = await asyncio.to_thread(queue_context, runtime_of(request), request.query_params)
    return page("queue.html", layout(request, "/queue", title="Queue", live_url="/live/queue",
                                     flash=_flash(request), **context))


async def dead_letter_action(request: Request) -> Response:
    letters = runtime_of(request).dead_letters
    letter_id = int_path(request, "id", "dead letter")
    if _known(request.path_params["action"], ("requeue", "delete")) == "requeue":
        await asyncio.to_thread(letters.requeue, letter_id)
        return _see("/queue", "requeued")
    await asyncio.to_thread(letters.delete, letter_id)
    return _see("/queue", "dead-deleted")


# ---------------------------------------------------------------------------------------------- plugins, settings
async def plugins(request: Request) -> Response:
    context = plugins_context(runtime_of(request))
    return page("plugins.html", layout(request, "/plugins", title="Plugins", **context))


def shown_settings(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Every setting in effect with where it came from, as the settings page shows it: no secret, no password
    in a URL (of the key that seals the credentials, only its public id)."""
    return {name: {**row, "text": value_text(row["value"])} for name, row in settings_in_effect(runtime).items()}


async def _settings(request: Request, *, error: str | None = None, form: dict[str, str] | None = None,
                    status_code: int = 200) -> Response:
    """The settings page: the stored credentials (names only) and the configuration in effect."""
    runtime = runtime_of(request)
    credentials = await asyncio.to_thread(runtime.credentials.listing)
    return page("settings.html", layout(request, "/settings", title="Settings", credentials=credentials,
                                        settings=shown_settings(runtime), flash=_flash(request), error=error,
                                        form=form or {}),
                status_code=status_code)


async def settings_page(request: Request) -> Response:
    return await _settings(request)


def _pairs(text: str, what: str) -> dict[str, str]:
    """``name=value`` (or ``Name: value`` for headers) lines into a dict."""
    pairs = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=" if what == "cookies" else ":")
        if not sep or not name.strip():
            separator = "name=value" if what == "cookies" else "Name: value"
            raise QuaeroError(f"{what}, line {number}: write one {separator} per line")
        pairs[name.strip()] = value.strip()
    return pairs


async def credentials_create(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await _form(request)
    try:
        auth_id = form.get("id", "").strip()
        if not auth_id:
            raise QuaeroError("give the credentials an id (the auth_id definitions refer to)")
        cookies, headers = _pairs(form.get("cookies", ""), "cookies"), _pairs(form.get("headers", ""), "headers")
        await asyncio.to_thread(runtime.credentials.save, auth_id, base_url=form.get("base_url", "").strip(),
                                cookies=cookies, headers=headers)
    except QuaeroError as exc:
        return await _settings(request, error=exc.message, status_code=400,
                               form={"id": form.get("id", ""), "base_url": form.get("base_url", "")})
    return _see("/settings", "credentials-saved")


async def credentials_delete(request: Request) -> Response:
    await asyncio.to_thread(runtime_of(request).credentials.delete, request.path_params["id"])
    return _see("/settings", "credentials-deleted")


routes = [
    Route("/", dashboard),
    Route("/jobs", jobs),
    Route("/jobs/{id}", job),
    Route("/jobs/{id}/logs", job_logs),
    Route("/jobs/{id}/timeline", job_timeline_fragment),
    Route("/jobs/{id}/{action:str}", job_confirm, methods=["GET"]),
    Route("/jobs/{id}/{action:str}", job_action, methods=["POST"]),
    Route("/definitions", definitions),
    Route("/definitions", definition_create, methods=["POST"]),
    Route("/definitions/new", definition_new),
    Route("/definitions/check", definition_check, methods=["POST"]),
    Route("/definitions/{id}", definition_view),
    Route("/definitions/{id}", definition_save, methods=["POST"]),
    Route("/definitions/{id}/edit", definition_edit),
    Route("/definitions/{id}/delete", definition_confirm_delete, methods=["GET"]),
    Route("/definitions/{id}/{action:str}", definition_action, methods=["POST"]),
    Route("/queue", queue),
    Route("/queue/dead/{id}/{action:str}", dead_letter_action, methods=["POST"]),
    Route("/plugins", plugins),
    Route("/settings", settings_page),
    Route("/settings/credentials", credentials_create, methods=["POST"]),
    Route("/settings/credentials/{id}/delete", credentials_delete, methods=["POST"]),
]
