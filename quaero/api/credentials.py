"""Stored credentials as a worker applies them (``ctx.credentials_for(url)``).

Credentials belong to their ``base_url``: they apply to a URL with the same scheme, host and port (so https
credentials never go over plain http) whose path is under the base URL's path, segment by segment
(``https://h/wiki`` covers ``/wiki`` and ``/wiki/x``, not ``/wikipedia``). Credentials without a base URL
apply nowhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

#: Headers that carry credentials on any site, and the shape of the names of the others (``X-Api-Key``,
#: ``X-Auth-Token``, ``Private-Token``): their values are refused in definitions and masked in every log.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
CREDENTIAL_HEADER_NAME = r"(?:authorization|proxy-authorization|cookie|set-cookie|" \
                         r"[a-z0-9-]*(?:api-?key|token|secret|password|passwd|auth))"
_CREDENTIAL_HEADER = re.compile(CREDENTIAL_HEADER_NAME, re.IGNORECASE)


def is_credential_header(name: str) -> bool:
    """Whether a header of this name carries a credential (its value is a secret)."""
    return _CREDENTIAL_HEADER.fullmatch(name.strip().replace("_", "-")) is not None


_DEFAULT_PORTS = {"http": 80, "https": 443}


class Scope(NamedTuple):
    """Where credentials may be sent: an origin (scheme, host, port) and a path prefix."""

    scheme: str
    host: str
    port: int
    path: str

    def covers(self, url: str) -> bool:
        """Whether ``url`` is of this origin and under this path."""
        other = scope_of(url)
        if other is None or other[:3] != self[:3]:
            return False
        prefix = self.path
        return other.path == prefix or other.path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def scope_of(url: str) -> Scope | None:
    """The :class:`Scope` of an absolute http(s) URL (host lower-case, default port filled in); ``None``
    for anything else."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number or out of range
        return None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return None
    return Scope(scheme, host, port, parts.path or "/")


@dataclass(frozen=True)
class Credentials:
    """Cookies and headers stored for an ``auth_id``, to send with requests to its site.

    Their values are never returned by the API or shown on a page; ``repr`` names only the keys, so a
    credential that reaches a log line or a traceback does not carry them.
    """

    id: str
    base_url: str = ""
    cookies: dict[str, str] = field(default_factory=dict, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    def applies_to(self, url: str) -> bool:
        """Whether a request to ``url`` may carry these credentials: same scheme, host and port as
        ``base_url``, and a path under its path. Never when ``base_url`` is empty."""
        scope = scope_of(self.base_url) if self.base_url else None
        return scope is not None and scope.covers(url)

    def request_headers(self) -> dict[str, str]:
        """The headers to add to a request: the stored ones and a ``Cookie`` header for the cookies."""
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return headers

    def __repr__(self) -> str:
        return (f"Credentials(id={self.id!r}, base_url={self.base_url!r}, cookies={sorted(self.cookies)}, "
                f"headers={sorted(self.headers)})")
