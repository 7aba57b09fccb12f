"""The JSON request bodies of the API, as typed models.

A model both checks a body and describes it: a view reads its body with ``web.http.read_model`` (an
unknown key, a wrong type or a value out of bounds is a 400 naming the field), and ``web.schemas`` turns
:data:`BODIES` into the OpenAPI document's ``components/schemas``, which the views' YAML refers to by
``$ref``. The models are strict: in JSON a number is not text and ``1`` is not ``true``, so what the
document calls invalid is refused rather than coerced.

A job definition sent as JSON is not read here: it goes through the definitions module like YAML does,
for errors with line and column and for each step's plugin options; its model describes it all the same.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quaero.stores.definitions import JobDefinition

MAX_ID = 200  # the longest auth id the credential store keeps
MAX_URL = 2000


class CredentialsInput(BaseModel):
    """The cookies and headers a crawl sends for an auth id; they replace what the id held."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=MAX_ID, description="the auth id definitions refer to as `auth_id`")
    base_url: str | None = Field(None, max_length=MAX_URL, description="the site they are for; null for none")
    cookies: dict[str, str] | None = Field(None, description="cookie names to values; null for none")
    headers: dict[str, str] | None = Field(None, description="request header names to values; null for none")


# The quick crawl belongs to the crawler plugin and will move there: this model depends on nothing else in
# this module. Its bounds repeat the crawl options' (plugins/crawler/options.py), which the core may not
# import, so that a bad value is named as the body's field; the crawl's options check the step again.
_HTTP_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/\s]+"  # no inline (?i): JSON Schema patterns are ECMA-262


class QuickCrawlInput(BaseModel):
    """One site to crawl now, without a stored definition; what is left out takes the crawl's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(max_length=MAX_URL, json_schema_extra={"pattern": _HTTP_URL},
                     description="the page to start from: an http:// or https:// URL")
    max_depth: int | None = Field(None, ge=0, le=100, description="links are followed from pages at depth < max_depth")
    max_pages: int | None = Field(None, ge=1, le=10_000_000, description="pages saved in the whole crawl")
    include_patterns: list[str] | None = Field(None, description="regular expressions; a URL must match one")
    exclude_patterns: list[str] | None = Field(None, description="regular expressions; a matching URL is skipped")
    auth_id: str | None = Field(None, max_length=MAX_ID, description="stored credentials (cookies, headers) to send")

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


#: Every body's model by its name under ``components/schemas``.
BODIES: dict[str, type[BaseModel]] = {
    "CredentialsInput": CredentialsInput,
    "QuickCrawlInput": QuickCrawlInput,
    "DefinitionInput": JobDefinition,
}
