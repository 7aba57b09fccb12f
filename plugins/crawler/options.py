"""The crawl step's options: typed, with defaults; an unknown key is an error naming it."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from quaero.api import StepOptions
from quaero.api.credentials import is_credential_header
from quaero.api.markdown import parse_html
from quaero.api.settings import references

from .patterns import compile_pattern

DEFAULT_USER_AGENT = "QuaeroBot/0.1 (+https://github.com/quaero; self-hosted knowledge base)"


class CrawlOptions(StepOptions):
    """Options of the ``crawl`` action."""

    start_urls: list[str] = Field(min_length=1, description="Where the crawl starts (depth 0).")
    include_patterns: list[str] = Field(default_factory=list,
                                        description="Regexes (RE2 syntax: no backreferences or lookaround); a URL "
                                                    "must match one.")
    exclude_patterns: list[str] = Field(default_factory=list,
                                        description="Regexes (RE2 syntax: no backreferences or lookaround); a "
                                                    "matching URL is skipped.")
    allowed_domains: list[str] | None = Field(None, description="Default: the start URLs' hosts.")
    max_depth: int = Field(2, ge=0, le=100, description="Links are followed from pages at depth < max_depth.")
    max_pages: int = Field(100, ge=1, le=10_000_000, description="Pages saved in the whole crawl, exactly.")
    concurrency: int | None = Field(None, ge=1, le=1000, description="Fetches in flight for the whole crawl.")
    per_host_delay_ms: int = Field(250, ge=0, le=600_000, description="Pause between requests to one host.")
    per_host_concurrency: int = Field(4, ge=1, le=1000, description="Requests in flight to one host.")
    respect_robots_txt: bool = Field(True, description="Skip the pages a site's robots.txt disallows.")
    use_sitemap: bool = Field(False, description="Also seed from sitemap.xml and robots.txt sitemaps.")
    follow_links: bool = Field(True, description="Queue the links found on each page (false: the start URLs only).")
    user_agent: str = Field(DEFAULT_USER_AGENT, description="The User-Agent header sent, and matched in robots.txt.")
    timeout: float = Field(30.0, gt=0, le=600, description="Seconds for one request.")
    max_body_bytes: int = Field(5_000_000, ge=1024, le=500_000_000, description="Longer bodies are cut off.")
    headers: dict[str, str] = Field(default_factory=dict, description=(
        "Extra request headers; a credential header (Authorization, Cookie, X-Api-Key...) only as a ${ENV_VAR} "
        "reference, read by the worker (or use auth_id)."))
    auth_id: str | None = Field(None, description="Stored credentials (cookies, headers) to send.")
    refresh: bool = Field(False, description="Re-crawl with conditional requests; unchanged pages stay as they are.")
    max_redirects: int = Field(10, ge=0, le=50, description="Redirects followed for one request.")
    keep_html: bool = Field(False, description="Store the fetched HTML beside the markdown.")
    converter: Literal["html-to-markdown", "html2text"] = Field(
        "html-to-markdown", description="HTML to markdown converter (html-to-markdown is about 10x faster).")
    render: Literal["never", "auto", "always"] = Field("never", description=(
        "Run pages' scripts in headless Chromium before converting them: auto renders only script shells "
        "(little text, a mount point such as #root); always renders every HTML page. Needs quaero[browser]."))
    wait_for: str | None = Field(None, min_length=1, max_length=1000, description=(
        "A CSS selector: a rendered page is done once it is in the DOM (default: once the network and the DOM "
        "are quiet for render_quiet_ms)."))
    render_timeout: float = Field(20.0, gt=0, le=600, description=(
        "Seconds a page may take to render; past them its job fails, saying why."))
    render_quiet_ms: int = Field(200, ge=50, le=10_000, description=(
        "Network and DOM quiet this long and a rendered page is done (unless wait_for is set)."))
    render_resources: list[Literal["image", "media", "font"]] = Field(default_factory=list, description=(
        "Resource types a rendered page may load (all others are blocked: images, media and fonts by default)."))

    @field_validator("include_patterns", "exclude_patterns")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            compile_pattern(pattern)  # RE2: a pattern it cannot run in linear time is refused here
        return patterns

    @field_validator("headers")
    @classmethod
    def _no_literal_secrets(cls, headers: dict[str, str]) -> dict[str, str]:
        # The definition and its jobs' payloads are stored and shown: a secret in them would be too.
        for name, value in headers.items():
            if is_credential_header(name) and not references(value):
                raise ValueError(
                    f"header {name!r} carries a credential, which a definition must not hold in clear: store it "
                    f"with POST /api/auth (or on the settings page) and name it with auth_id, or write a "
                    f"reference such as {name}: \"${{MY_SECRET}}\" and export MY_SECRET for the workers")
        return headers

    @field_validator("start_urls")
    @classmethod
    def _http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return urls

    @field_validator("wait_for")
    @classmethod
    def _selector(cls, selector: str | None) -> str | None:
        if selector is not None:
            try:
                parse_html("<p></p>").css_first(selector)
            except Exception:
                raise ValueError(f"{selector!r} is not a CSS selector") from None
        return selector

    @model_validator(mode="after")
    def _sane(self) -> CrawlOptions:
        if self.allowed_domains == []:
            raise ValueError("allowed_domains is empty: leave it out to allow the start URLs' hosts")
        if self.render == "never" and (self.wait_for or self.render_resources):
            raise ValueError("wait_for and render_resources apply to rendered pages: set render to auto or always")
        return self
