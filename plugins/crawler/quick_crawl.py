"""``POST /api/jobs/quick-crawl``: crawl one site now, without a stored definition."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from quaero.api import WebContext


class QuickCrawl(BaseModel):
    """The request body: where to start, and the few options a quick crawl takes."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000, description="the page to start from")
    max_depth: int | None = Field(None, ge=0, le=100)
    max_pages: int | None = Field(None, ge=1, le=10_000_000)
    include_patterns: list[str] | None = None
    exclude_patterns: list[str] | None = None
    auth_id: str | None = Field(None, max_length=200)


async def quick_crawl(request: Request, ctx: WebContext) -> JSONResponse:
    """Crawl one site now, without a stored definition.
    ---
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [url]
            additionalProperties: false
            properties:
              url: {type: string, minLength: 1, maxLength: 2000, description: the page to start from}
              max_depth: {type: integer, minimum: 0, maximum: 100, nullable: true}
              max_pages: {type: integer, minimum: 1, maximum: 10000000, nullable: true}
              include_patterns: {type: array, items: {type: string}, nullable: true}
              exclude_patterns: {type: array, items: {type: string}, nullable: true}
              auth_id: {type: string, maxLength: 200, nullable: true}
    responses:
      202: {description: started, content: {application/json: {schema: {$ref: '#/components/schemas/JobAccepted'}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    body = await ctx.read_json(request, QuickCrawl)
    config = {"start_urls": [body.url], **body.model_dump(exclude={"url"}, exclude_none=True)}
    definition = {"id": "quick-crawl", "name": f"Quick crawl of {body.url}"[:200],
                  "steps": [{"name": "crawl", "action": "crawl", "config": config}]}
    job_id = await asyncio.to_thread(ctx.execute, definition, trigger="quick crawl")
    return JSONResponse({"job_id": job_id}, status_code=202)
