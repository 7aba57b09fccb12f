"""How long to wait before asking again: what the server asked for, else exponential backoff with jitter.

Servers say it in several ways, read in this order: ``retry-after-ms`` (OpenAI), ``Retry-After`` in
seconds or as an HTTP date, and on a 429 without either, OpenAI's ``x-ratelimit-reset-*`` of the limit
whose ``x-ratelimit-remaining-*`` is 0. Gemini puts ``google.rpc.RetryInfo`` in the error body (read by
:mod:`.gemini` with :func:`parse_duration`).
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from collections.abc import Callable, Mapping

# Go-style durations (OpenAI's "1s", "6m0s", "20ms") and protobuf's JSON Duration (Gemini's "58s", "1.5s").
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float | None:
    """Seconds in ``"58s"``, ``"1.5s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m"``; ``None`` if it is none of those."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text):
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def server_delay(headers: Mapping[str, str], *, status: int,
                 now: Callable[[], float] = time.time) -> float | None:
    """The seconds the answer's headers ask to wait, or ``None`` when they do not say (names lower-case)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    after = headers.get("retry-after")
    if after:
        try:
            value = float(after)
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(after).timestamp() - now())
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    if status == 429:
        resets = [parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
                  for kind in ("requests", "tokens") if headers.get(f"x-ratelimit-remaining-{kind}") == "0"]
        known = [reset for reset in resets if reset is not None]
        if known:
            return max(known)
    return None


def backoff(attempt: int, low: float, high: float, *, rand: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt number ``attempt`` (1 for the first): a random value between ``low``
    and ``low * 2**attempt`` capped at ``high``, so that many workers do not all come back at once."""
    ceiling = min(high, low * 2 ** min(attempt, 30))
    return low + (ceiling - low) * rand()
