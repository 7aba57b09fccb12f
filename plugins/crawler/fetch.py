"""HTTP for the crawler, on the core's client (``ctx.http``): redirects followed by hand, bodies capped.

Each redirect hop is a new request through the core's client, so the outbound policy checks the address
of every hop, and its headers are made for that hop: the stored credentials are asked for again
(``credentials(hop_url)``, which gives nothing for another site), and the step's own ``Authorization``,
``Cookie`` and ``Proxy-Authorization`` headers are dropped once a hop leaves the first URL's origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from quaero.api import OutboundRefused

from .urls import normalize_url

REDIRECTS = {301, 302, 303, 307, 308}
HTML_TYPES = ("text/html", "application/xhtml+xml")
#: Headers that carry a user's identity: never sent to an origin the request did not start at.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: Why a redirect was not followed when the hop's address was refused by the outbound policy.
BLOCKED = "blocked_address"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a normalised URL."""
    return "/".join(url.split("/", 3)[:3])


def hop_headers(headers: dict[str, str], first: str, hop: str,
                credentials: Callable[[str], dict[str, str]] | None) -> dict[str, str]:
    """The headers of the request to ``hop`` in a chain of redirects that started at ``first``."""
    if origin_of(hop) != origin_of(first):
        headers = {name: value for name, value in headers.items() if name.lower() not in CREDENTIAL_HEADERS}
    return {**headers, **(credentials(hop) if credentials is not None else {})}


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
    detail: str | None = None  # what the outbound policy said, when a hop's address was refused


def fetch(
    client: httpx.Client,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
    max_redirects: int,
    check_hop: Callable[[str], str | None],
    credentials: Callable[[str], dict[str, str]] | None = None,
    any_content: bool = False,
    any_status: bool = False,
    method: str = "GET",
    content: bytes | None = None,
) -> Fetched:
    """GET ``url``, following redirects while ``check_hop(next_url)`` allows them (it returns a reason to stop).

    ``headers`` go with every request (less the credential headers once the origin changes),
    ``credentials(hop_url)`` adds the stored ones that apply to each. Only HTML bodies are read, unless
    ``any_content`` (sitemaps are XML or gzip), and only those of 2xx answers, unless ``any_status`` (a
    rendered page's requests: its scripts read the body of a 404 too). A ``method`` other than GET sends
    ``content``; a 301, 302 or 303 turns it into a GET, as browsers do. The first request's
    :class:`OutboundRefused` is raised; a hop refused by the outbound policy ends the chain with
    ``skipped="blocked_address"``.
    """
    seen = {url}
    redirects: list[str] = []
    current = url
    while True:
        request = client.build_request(method, current, headers=hop_headers(headers, url, current, credentials),
                                       content=content, timeout=timeout)
        try:
            response = client.send(request, stream=True)
        except OutboundRefused as exc:
            if current == url:
                raise
            return Fetched(current, 0, httpx.Headers(), redirects=redirects, skipped=BLOCKED, detail=str(exc))
        try:
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
                if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                    method, content = "GET", None
                continue
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            is_html = content_type in HTML_TYPES or (not content_type and response.status_code == 200)
            if not any_status and ((not is_html and not any_content) or response.status_code >= 300):
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
            return Fetched(current, response.status_code, response.headers, body, truncated, is_html, redirects)
        finally:
            response.close()
