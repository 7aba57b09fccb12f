"""Webhook deliveries of an execution: the API (JSON) and the job page's "Notifications" section.

``GET /api/jobs/{id}/webhooks`` lists them, ``POST /api/jobs/{id}/webhooks/{delivery_id}/redeliver`` sends a
failed one again (an admin's call, like every write). ``/jobs/{id}/webhooks`` is the section of the job page
(``templates/_job_webhooks.html``): htmx loads it into the page and refreshes it while something is pending;
without JavaScript the page links to it. Docstrings follow the convention of ``quaero/web/api.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from quaero.runtime import Runtime
from quaero.stores.views import job_dict, page
from quaero.web.http import page_params, runtime_of
from quaero.web.render import layout
from quaero.web.render import page as render_page

#: Deliveries the job page lists at most (the API pages through all of them).
PAGE_DELIVERIES = 100


def redeliver(runtime: Runtime, job_id: str, delivery_id: str) -> dict[str, Any]:
    """Send a failed delivery again, now (the API's call, shared with the page)."""
    delivery = runtime.webhooks.redeliver(job_id, delivery_id)
    if runtime.webhook_sender is not None:
        runtime.webhook_sender.wake()
    return delivery


async def list_deliveries(request: Request) -> Response:
    """A job's webhook deliveries, oldest first: event, URL (no user info or query), status and attempts.
    ---
    parameters:
      - {$ref: '#/components/parameters/limit'}
      - {$ref: '#/components/parameters/offset'}
    responses:
      200:
        description: one page of the job's deliveries (an execution has them; its steps and children none)
        content: {application/json: {schema: {$ref: '#/components/schemas/WebhookDeliveryPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    limit, offset = page_params(request)
    items, total = await asyncio.to_thread(runtime_of(request).webhooks.for_job, request.path_params["id"],
                                           limit=limit, offset=offset)
    return JSONResponse(page(items, total, limit, offset))


async def redeliver_delivery(request: Request) -> Response:
    """Send a failed webhook delivery again, with a fresh set of attempts.
    ---
    parameters: [{name: delivery_id, in: path, required: true, schema: {type: string, maxLength: 40}}]
    responses:
      202:
        description: "pending again: the sender tries it at once"
        content: {application/json: {schema: {$ref: '#/components/schemas/WebhookDelivery'}}}
      404: {$ref: '#/components/responses/NotFound'}
      409:
        description: the delivery is pending or was delivered
        content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    """
    delivery = await asyncio.to_thread(redeliver, runtime_of(request), request.path_params["id"],
                                       request.path_params["delivery_id"])
    return JSONResponse(delivery, status_code=202)


# ---------------------------------------------------------------------------------------------- the page's part
def deliveries_context(runtime: Runtime, job_id: str) -> dict[str, Any]:
    """What ``_job_webhooks.html`` shows: the job and its deliveries, and whether to look again soon."""
    job = runtime.jobs.get(job_id)
    items, total = runtime.webhooks.for_job(job_id, limit=PAGE_DELIVERIES)
    waiting = not job.is_terminal or any(item["status"] == "pending" for item in items)
    configured = bool(runtime.settings.webhooks or (job.data.get("definition") or {}).get("webhooks"))
    return {"job": job_dict(job), "webhook_deliveries": items, "webhook_total": total,
            "webhook_refresh": waiting and (configured or bool(items)), "webhooks_configured": configured}


async def deliveries_section(request: Request) -> Response:
    """The "Notifications" section alone for htmx; with its job's name around it otherwise."""
    context = await asyncio.to_thread(deliveries_context, runtime_of(request), request.path_params["id"])
    template = "_job_webhooks.html" if request.headers.get("hx-request") else "job_webhooks.html"
    return render_page(template, layout(request, "/jobs", title=f"Notifications of {context['job']['name']}",
                                        **context))


async def redeliver_form(request: Request) -> Response:
    job_id = request.path_params["id"]
    await asyncio.to_thread(redeliver, runtime_of(request), job_id, request.path_params["delivery_id"])
    return RedirectResponse(f"/jobs/{job_id}#job-webhooks", status_code=303)


routes = [
    Route("/api/jobs/{id}/webhooks", list_deliveries, methods=["GET"]),
    Route("/api/jobs/{id}/webhooks/{delivery_id}/redeliver", redeliver_delivery, methods=["POST"]),
    # Before the pages' /jobs/{id}/{action}, which would take "webhooks" for an action it does not know.
    Route("/jobs/{id}/webhooks", deliveries_section, methods=["GET"]),
    Route("/jobs/{id}/webhooks/{delivery_id}/redeliver", redeliver_form, methods=["POST"]),
]
