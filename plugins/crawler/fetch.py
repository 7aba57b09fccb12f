"""HTTP for the crawler, on the core's client (``ctx.http``): redirects followed by hand, bodies capped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .urls import normalize_url

REDIRECTS = {301, 302, 303, 307, 308}
HTML_TYPES = ("text/html", "application/xhtml+xml")


class RedirectError(Exception):
    """A redirect loop, or more redirects than allowed."""


@dataclass
class Fetched:
    """A final response: where it ended, its status, headers and (for HTML) body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes = b""
    truncated: bool = False
    is_html: bool = False
    redirects: list[str] = field(default_factory=list)
    skipped: str | None = None  # a reason when a redirect led somewhere the crawl must not go


def fetch(
    client: httpx.Client,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    max_redirects: int,
    check_hop: Callable[[str], str | None],
    any_content: bool = False,
) -> Fetched:
    """GET ``url``, following redirects while ``check_hop(next_url)`` allows them (it returns a reason to stop).

    Only HTML bodies are read, unless ``any_content`` (sitemaps are XML or gzip).
    """
    seen = {url}
    redirects: list[str] = []
    current = url
    while True:
        with client.stream("GET", current, headers=headers, timeout=timeout) as response:
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                target = normalize_url(location, current)
                if target is None:
                    return Fetched(current, response.status_code, response.headers, redirects=redirects,
                                   skipped="bad_redirect")
                if target in seen:
                    raise RedirectError(f"redirect loop: {' -> '.join([*redirects, current, target])}")
                if len(redirects) >= max_redirects:
                    raise RedirectError(f"more than {max_redirects} redirects from {url}")
                reason = check_hop(target)
                if reason is not None:
                    return Fetched(target, response.status_code, response.headers, redirects=[*redirects, current],
                                   skipped=reason)
                redirects.append(current)
                seen.add(target)
                current = target
                continue
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            is_html = content_type in HTML_TYPES or (not content_type and response.status_code == 200)
            if (not is_html and not any_content) or response.status_code >= 300:
                return Fetched(current, response.status_code, response.headers, is_html=is_html,
                               redirects=redirects)
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= max_bytes:
                    truncated = True
                    break
            body = b"".join(chunks)[:max_bytes]
            return Fetched(current, response.status_code, response.headers, body, truncated, True, redirects)
