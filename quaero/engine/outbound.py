"""The core's side of outbound calls: one HTTP client per process, and the shared rate limits.

Every plugin's requests go through :attr:`Outbound.client` (``ctx.http``), so the policy for what may be
reached lives in one place: the client's connection pool connects through
:class:`~quaero.engine.addresses.GuardedBackend`, which checks every address after DNS resolution.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from quaero.api.outbound import RateReservation
from quaero.engine.addresses import AddressPolicy, GuardedBackend, Resolver
from quaero.stores.rate_limits import RateLimits

#: Connections the process's client keeps open at most, and idle ones it keeps for reuse.
MAX_CONNECTIONS = 200
MAX_KEEPALIVE = 50
#: The longest single wait between admission tries (another process may free a slot sooner).
MAX_TRY_WAIT = 5.0


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, whose connection pool connects through a :class:`GuardedBackend`."""

    def __init__(self, policy: AddressPolicy, *, limits: httpx.Limits, resolver: Resolver = socket.getaddrinfo) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx 0.28 takes no network backend (encode/httpx#3749 would add one): the pool it made is
        # replaced by the same pool built with the guarded backend (tests/engine/test_outbound.py checks it).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver=resolver))


class PolicyTransport(httpx.BaseTransport):
    """The guarded transport, and for what the policy :meth:`~AddressPolicy.reads` (the server's own user
    guide), a second one whose pool may connect to those addresses only: a connection it opens is never
    used for any other request."""

    def __init__(self, policy: AddressPolicy, *, limits: httpx.Limits, resolver: Resolver = socket.getaddrinfo) -> None:
        self.policy = policy
        self.guarded = GuardedTransport(policy, limits=limits, resolver=resolver)
        self.reader = (GuardedTransport(AddressPolicy(policy.readable_networks()), limits=limits, resolver=resolver)
                       if policy.readable else None)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.reader is not None and self.policy.reads(request.method, str(request.url)):
            return self.reader.handle_request(request)
        return self.guarded.handle_request(request)

    def close(self) -> None:
        self.guarded.close()
        if self.reader is not None:
            self.reader.close()


def make_client(policy: AddressPolicy | None = None) -> httpx.Client:
    """A pooled HTTP client for one process, behind ``policy`` (default: no private network allowed).

    Redirects are not followed (a caller that follows them makes each hop a new request, checked like the
    first), ``trust_env`` is off (no proxy or netrc from the environment), and no Set-Cookie is kept: one
    site's or service's cookies must not reach another request.
    """
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
    return httpx.Client(follow_redirects=False, cookies=no_cookies, trust_env=False,
                        transport=PolicyTransport(policy or AddressPolicy(), limits=limits))


class Unlimited(RateReservation):
    """The reservation of a request that no limit counts (nothing is written)."""

    def __init__(self, tokens: int) -> None:
        self._tokens = tokens

    @property
    def tokens(self) -> int:
        return self._tokens

    def settle(self, tokens: int) -> None:
        self._tokens = max(0, int(tokens))


class Outbound:
    """The process's HTTP client (made when first asked for), its address policy and its rate limits."""

    def __init__(self, limits: RateLimits, policy: AddressPolicy | None = None) -> None:
        self.limits = limits
        self.policy = policy or AddressPolicy()
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(self.policy)
                client = self._client
        return client

    def admit(self, bucket: str, *, requests_per_minute: int | None, tokens_per_minute: int | None,
              tokens: int, wait: Callable[[float], None]) -> RateReservation:
        """Wait (with ``wait``) until a request fits ``bucket``'s limits; returns its reservation."""
        for limit in (requests_per_minute, tokens_per_minute):
            if limit is not None and limit < 1:
                raise ValueError(f"a rate limit must be at least 1 per minute, not {limit}")
        tokens = max(0, int(tokens))
        if requests_per_minute is None and tokens_per_minute is None:
            return Unlimited(tokens)
        while True:
            admission = self.limits.try_admit(bucket, requests_per_minute=requests_per_minute,
                                              tokens_per_minute=tokens_per_minute, tokens=tokens)
            if admission.event_id is not None:
                return self.limits.reservation(admission.event_id, tokens)
            # A hair past the moment the oldest request leaves the window.
            wait(min(admission.wait + 0.001, MAX_TRY_WAIT))

    def close(self) -> None:
        """Close the client (the process is stopping)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
