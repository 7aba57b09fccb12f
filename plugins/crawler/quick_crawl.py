"""``POST /api/jobs/quick-crawl``: crawl one site now, without a stored definition."""

from __future__ import annotations

import asyncio
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from quaero.api import WebContext

_HTTP_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/\s]+"  # no inline (?i): JSON Schema patterns are ECMA-262


class QuickCrawlInput(BaseModel):
    """One site to crawl now, without a stored definition; what is left out takes the crawl's defaults."""

    # Strict: in JSON a number is not text and 1 is not true. The bounds are the crawl options' own, so that
    # a bad value is named as the body's field; the crawl step checks its options again.
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(max_length=2000, json_schema_extra={"pattern": _HTTP_URL},
                     description="the page to start from: an http:// or https:// URL")
    max_depth: int | None = Field(None, ge=0, le=100, description="links are followed from pages at depth < max_depth")
    max_pages: int | None = Field(None, ge=1, le=10_000_000, description="pages saved in the whole crawl")
    include_patterns: list[str] | None = Field(None, description="regular expressions; a URL must match one")
    exclude_patterns: list[str] | None = Field(None, description="regular expressions; a matching URL is skipped")
    auth_id: str | None = Field(None, max_length=200, description="stored credentials (cookies, headers) to send")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        # The pattern is in the document; this says it in words when it does not match.
        if not re.match(_HTTP_URL, url):
            raise ValueError("must be an http:// or https:// URL")
        return url

    def crawl_config(self) -> dict[str, object]:
        """The crawl step's config: the URL as its one start URL, and only the options that were given."""
        given = self.model_dump(exclude_none=True, exclude={"url"})
        if not given.get("auth_id"):
            given.pop("auth_id", None)  # an empty auth id, as a form sends it, means none
        return {"start_urls": [self.url], **given}


async def quick_crawl(request: Request, ctx: WebContext) -> JSONResponse:
    """Crawl one site now, without a stored definition.
    ---
    requestBody:
      required: true
      content: {application/json: {schema: {$ref: '#/components/schemas/QuickCrawlInput'}}}
    responses:
      202: {description: started, content: {application/json: {schema: {$ref: '#/components/schemas/JobAccepted'}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    body = await ctx.read_json(request, QuickCrawlInput)
    definition = {"id": "quick-crawl", "name": f"Quick crawl of {body.url}"[:200],
                  "steps": [{"name": "crawl", "action": "crawl", "config": body.crawl_config()}]}
    job_id = await asyncio.to_thread(ctx.execute, definition, trigger="quick crawl")
    return JSONResponse({"job_id": job_id}, status_code=202)
