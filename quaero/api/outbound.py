"""Calling other services: the core's HTTP client, shared rate limits, and reading how long to wait.

Every context has ``ctx.http``, the process's outbound :class:`httpx.Client`: pooled, redirects not
followed, no proxy or netrc taken from the environment, no cookie kept between requests. A plugin makes
every request through it, so the core's outbound policy applies to all of them.

``ctx.rate_limit(bucket, requests_per_minute=..., tokens_per_minute=..., tokens=...)`` waits until one more
request fits the limits of ``bucket`` over the last 60 seconds, counted in the database, so the limit
holds across the threads and processes of every worker (and machines sharing a PostgreSQL database). It
returns a :class:`RateReservation`: settle it with the real token count once the answer says it. Name a
bucket after what the provider limits (``"openai:" + key fingerprint``); the core stores only a hash of the
name, so a key in it never reaches the database.

:func:`retry_after` and :func:`parse_duration` read how long a service asks a client to wait.
"""

from __future__ import annotations

import email.utils
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping

#: The window rate limits count over, in seconds.
RATE_WINDOW = 60.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class RateReservation(ABC):
    """One request admitted by ``ctx.rate_limit``; it counts in its bucket for :data:`RATE_WINDOW` seconds."""

    @property
    @abstractmethod
    def tokens(self) -> int:
        """The tokens the request counts for now (the estimate until :meth:`settle`)."""

    @abstractmethod
    def settle(self, tokens: int) -> None:
        """Replace the estimate with the tokens the request really used (0 for one that failed unsent)."""


def parse_duration(text: str) -> float | None:
    """Seconds in a duration as services write them: ``"58s"``, ``"1.5s"``, ``"6m0s"``, ``"200ms"``,
    ``"1h2m3s"`` (Google's ``retryDelay``, OpenAI's ``x-ratelimit-reset-*``); ``None`` when unreadable."""
    text = (text or "").strip().lower()
    if not text:
        return None
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        value, unit = float(match.group(1)), match.group(2)
        total += value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        position = match.end()
    return total if position == len(text) else None


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds a response asks to wait before the next request, or ``None`` when it does not say.

    Reads ``retry-after-ms`` (milliseconds, as OpenAI sends it), then ``Retry-After`` as seconds or as an
    HTTP date. Header names are matched without regard to case.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    milliseconds = lower.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = (lower.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))
