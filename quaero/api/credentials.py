"""Stored credentials as a worker applies them (``ctx.credentials_for(url)``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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
        """Whether a request to ``url`` may carry these credentials: same host as ``base_url`` (any host
        when ``base_url`` is empty)."""
        if not self.base_url:
            return True
        return (urlsplit(url).hostname or "").lower() == (urlsplit(self.base_url).hostname or "").lower()

    def request_headers(self) -> dict[str, str]:
        """The headers to add to a request: the stored ones and a ``Cookie`` header for the cookies."""
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return headers

    def __repr__(self) -> str:
        return (f"Credentials(id={self.id!r}, base_url={self.base_url!r}, cookies={sorted(self.cookies)}, "
                f"headers={sorted(self.headers)})")
