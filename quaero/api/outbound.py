"""Calling other services: the core's HTTP client, shared rate limits, and reading how long to wait.

Every context has ``ctx.http``, the process's outbound :class:`httpx.Client`: pooled, redirects not
followed, no proxy or netrc taken from the environment, no cookie kept between requests. A plugin makes
every request through it, so the core's outbound policy applies to all of them: a host name is resolved,
and a connection goes only to an address the policy allows, the very address that was checked. Private,
loopback, link-local, multicast, unspecified and reserved addresses (IPv4 and IPv6, IPv4-mapped IPv6
included) are refused unless a network of the setting ``allow_private_networks`` contains them; a
refused connection raises :class:`OutboundRefused`, an :class:`httpx.ConnectError`, so code that handles
``httpx.HTTPError`` handles it too (do not retry it: it will be refused again). A caller that follows
redirects makes each hop a new request through ``ctx.http``, so every hop is checked.
``ctx.outbound_refusal(url)`` tells, without a request, whether a URL's host is an address (or
``localhost``) the policy refuses, for :meth:`~quaero.api.StepManager.readiness`.

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
import ipaddress
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import httpx

#: The window rate limits count over, in seconds.
RATE_WINDOW = 60.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


#: The setting, and its environment variable, that lets outbound requests reach private networks.
ALLOW_SETTING = "allow_private_networks"
ALLOW_ENVIRONMENT = "QUAERO_ALLOW_PRIVATE_NETWORKS"


class OutboundRefused(httpx.ConnectError):
    """The outbound policy refused to connect: every address of the host is private, loopback, link-local,
    multicast, unspecified or reserved, and outside the networks of ``allow_private_networks``.

    The message names the host, the address, why it is refused and the setting that would allow it.
    ``host`` is the name asked for; ``addresses`` the refused addresses it resolved to, with ``reasons``
    (one each: ``"loopback"``, ``"private"``, ...).
    """

    def __init__(self, host: str, addresses: Sequence[str], reasons: Sequence[str], *,
                 request: httpx.Request | None = None) -> None:
        self.host = host
        self.addresses = tuple(addresses)
        self.reasons = tuple(reasons)
        super().__init__(refusal_message(host, self.addresses, self.reasons), request=request)

    def __reduce__(self) -> tuple[type[OutboundRefused], tuple[str, tuple[str, ...], tuple[str, ...]]]:
        # Pickled (to another process, say) with what it was made from, not with its message.
        return type(self), (self.host, self.addresses, self.reasons)


def refusal_message(host: str, addresses: Sequence[str], reasons: Sequence[str]) -> str:
    """Why a connection to ``host`` is refused, and what to change: the text of :class:`OutboundRefused`."""
    named = ", ".join(f"{address} ({reason})" for address, reason in zip(addresses, reasons))
    where = named if [host] == list(addresses) else f"{host}, which resolves to {named}"
    try:
        first = ipaddress.ip_address(addresses[0].split("%", 1)[0])
        mapped = first.ipv4_mapped if isinstance(first, ipaddress.IPv6Address) else None
        example = str(ipaddress.ip_network(mapped or first))
    except (ValueError, IndexError):
        example = "127.0.0.0/8,::1/128"
    return (f"outbound request refused: {where}: outbound requests may not reach private, loopback, "
            f"link-local or reserved addresses unless the setting {ALLOW_SETTING} (environment "
            f"{ALLOW_ENVIRONMENT}, e.g. {ALLOW_ENVIRONMENT}={example}) lists a network that contains it")


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
