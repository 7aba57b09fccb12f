"""The recovery pages: re-run a job's failed children, and bulk actions over the /jobs filter.

Each action has a confirmation page (GET, which changes nothing: for a bulk action it is the dry run, with
the count and a sample) and a form that posts to the same path (CSRF-checked by the security middleware,
an admin's only), then redirects (POST/redirect/GET). They call :class:`quaero.engine.recovery.JobRecovery`,
as the API and the CLI do. Registered before ``pages.routes``, whose ``/jobs/{id}/{action}`` would take them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from urllib.parse import parse_qs, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from quaero.engine.recovery import ACTIONS, FILTER_KEYS, SKIP_REASONS, check_filter, filter_dict
from quaero.errors import QuaeroError
from quaero.stores.views import job_dict
from quaero.web.auth import principal_of
from quaero.web.http import read_body, runtime_of
from quaero.web.render import layout, page

SHOWN = 20  # sample jobs a bulk confirmation lists
ACTION_WORDS = {
    "cancel": ("Cancel", "Unfinished jobs are cancelled with their unfinished descendants; finished ones are skipped."),
    "delete": ("Delete", "Finished jobs are removed with their descendants and logs (documents stay); jobs still "
                         "running, or inside a running execution, are skipped."),
    "rerun": ("Re-run", "Executions run afresh (once per definition); steps run their failed and cancelled children "
                        "again; failed or cancelled jobs run again. Running and completed jobs are skipped."),
}


def _admin_only(request: Request) -> None:
    """A viewer may not even see what an action would do: these pages are an admin's (403 otherwise)."""
    principal = principal_of(request)
    if principal is None or not principal.is_admin:
        raise HTTPException(403, "only an admin may re-run or act on jobs in bulk")


async def _form(request: Request) -> dict[str, str]:
    body = (await read_body(request)).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------------------------------- failed children
async def rerun_failed_confirm(request: Request) -> Response:
    """How many failed (and cancelled) children a re-run would put back, and the button that does it."""
    _admin_only(request)
    runtime = runtime_of(request)
    job = await asyncio.to_thread(runtime.jobs.get, request.path_params["id"])
    root = await asyncio.to_thread(runtime.jobs.get, job.root_id or job.id)
    failed = await asyncio.to_thread(runtime.recovery.failed_children, job)
    both = await asyncio.to_thread(runtime.recovery.failed_children, job, include_cancelled=True)
    problem = None
    if job.type not in ("step", "parent"):
        problem = f"This is a {job.type} job: failed children are re-run from its step or its execution."
    elif not root.is_terminal:
        problem = f"Its execution is still {root.status}: re-run failed children once it has finished."
    elif not both:
        problem = "None of its children failed or was cancelled: there is nothing to run again."
    return page("bulk_confirm.html", layout(
        request, "/jobs", title="Re-run failed children?", mode="rerun_failed", job=job_dict(job), failed=failed,
        cancelled=both - failed, problem=problem, back_url=f"/jobs/{job.id}"))


async def rerun_failed_do(request: Request) -> Response:
    form = await _form(request)
    job_id = request.path_params["id"]
    recovery = runtime_of(request).recovery
    await asyncio.to_thread(recovery.rerun_failed, job_id, include_cancelled=form.get("include_cancelled") == "1")
    return _see(f"/jobs/{job_id}?done=rerun-failed")


# ---------------------------------------------------------------------------------------------- bulk actions
def _bulk_request(params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The action and the filter from a query string or a form; a 400 page naming what is allowed."""
    action = (params.get("action") or "").strip()
    if action not in ACTIONS:
        raise QuaeroError(f"choose an action: one of {', '.join(ACTIONS)} (got {action[:50]!r})")
    values = {key: params[key].strip() for key in FILTER_KEYS if (params.get(key) or "").strip()}
    return action, filter_dict(check_filter(values))


async def bulk_confirm(request: Request) -> Response:
    """The dry run: how many jobs the filter matches, by status, a sample of them, and the button."""
    _admin_only(request)
    runtime = runtime_of(request)
    action, filters = _bulk_request(request.query_params)
    where = check_filter(filters)
    result = await asyncio.to_thread(runtime.recovery.bulk, action, where, dry_run=True)
    found = await asyncio.to_thread(runtime.recovery.resets.find_many, result["ids"][:SHOWN])
    sample = [job_dict(found[job_id]) for job_id in result["ids"][:SHOWN] if job_id in found]
    verb, consequence = ACTION_WORDS[action]
    back = "/jobs?" + urlencode(filters)
    return page("bulk_confirm.html", layout(
        request, "/jobs", title=f"{verb} {result['matched']} jobs?", mode="bulk", action=action, verb=verb,
        consequence=consequence, filters=filters, result=result, sample=sample, back_url=back))


async def bulk_do(request: Request) -> Response:
    form = await _form(request)
    action, filters = _bulk_request(form)
    raw = form.get("confirm_count", "")
    confirm = int(raw) if raw.isdigit() and len(raw) < 10 else None
    if confirm is None:
        raise QuaeroError("the confirmation lost its count: open the bulk action again from the jobs page")
    recovery = runtime_of(request).recovery
    result = await asyncio.to_thread(recovery.bulk, action, check_filter(filters), dry_run=False,
                                     confirm_count=confirm)
    report = {"action": action, "done": result["done"], **filters,
              **{f"skipped_{reason}": count for reason, count in result["skipped"].items()}}
    return _see("/jobs/bulk/done?" + urlencode(report))


async def bulk_done(request: Request) -> Response:
    """What a bulk action did (its figures come in the URL it redirected to: numbers only)."""
    params = request.query_params
    action = params.get("action", "")
    if action not in ACTIONS:
        raise QuaeroError(f"no bulk action {action[:50]!r}: one of {', '.join(ACTIONS)}")
    skipped = {reason: int(value) for reason in SKIP_REASONS
               if (value := params.get(f"skipped_{reason}", "")).isdigit() and len(value) < 10}
    done = params.get("done", "0")
    filters = {key: params[key] for key in FILTER_KEYS if params.get(key)}
    return page("bulk_confirm.html", layout(
        request, "/jobs", title="Bulk action done", mode="done", action=action, verb=ACTION_WORDS[action][0],
        done=int(done) if done.isdigit() and len(done) < 10 else 0, skipped=skipped, reasons=SKIP_REASONS,
        filters=filters, back_url="/jobs?" + urlencode(filters)))


routes = [
    Route("/jobs/bulk", bulk_confirm, methods=["GET"]),
    Route("/jobs/bulk", bulk_do, methods=["POST"]),
    Route("/jobs/bulk/done", bulk_done, methods=["GET"]),
    Route("/jobs/{id}/rerun-failed", rerun_failed_confirm, methods=["GET"]),
    Route("/jobs/{id}/rerun-failed", rerun_failed_do, methods=["POST"]),
]
