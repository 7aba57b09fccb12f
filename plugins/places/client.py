"""Requests to the Places API (New), on the core's client, within the key's rate and Google's patience.

Each request waits its turn in the key's shared rate limit (``ctx.rate_limit``), carries the key and the
field mask as headers, and on a transient answer (``RESOURCE_EXHAUSTED``, ``UNAVAILABLE``, a dropped
connection) is sent again, unchanged, after the pause Google's ``RetryInfo`` asks for (else
``Retry-After``, else a doubling backoff). Any other answer fails the job at once with Google's message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from quaero.api import JobContext, JobError, OutboundRefused
from quaero.api.outbound import retry_after

from .google import DETAILS_PATH, NEARBY_SEARCH_PATH, TEXT_SEARCH_PATH, GoogleError, details_mask, error_of, search_mask
from .keys import HEADER, PlacesSettings, bucket, find_key
from .options import PlacesOptions

#: Tries of one request (the first and its repeats) before a transient failure fails the job.
MAX_ATTEMPTS = 5
#: The longest pause a job takes before asking again; a longer ``retryDelay`` (a quota per day) fails it.
MAX_WAIT = 90.0
FIRST_BACKOFF = 1.0


class PlacesFailure(JobError):
    """A request that failed for good: the job fails with this message, which never holds the key."""


class PlacesClient:
    """The requests one job makes, with its step's options and key."""

    def __init__(self, ctx: JobContext, options: PlacesOptions, key: str, requests_per_minute: int) -> None:
        self.ctx = ctx
        self.options = options
        self._key = key
        self.requests_per_minute = requests_per_minute
        self.requests = 0

    @classmethod
    def for_job(cls, ctx: JobContext) -> PlacesClient:
        """A client for the job ``ctx`` runs, with the key found as :mod:`.keys` describes."""
        settings: PlacesSettings = ctx.settings or PlacesSettings()
        return cls(ctx, ctx.options, find_key(ctx, ctx.options), settings.requests_per_minute)

    def __repr__(self) -> str:  # never the key
        return f"PlacesClient({self.options.api_base_url!r}, requests={self.requests})"

    # ------------------------------------------------------------------ the three calls
    def search_text(self, body: dict[str, Any]) -> dict[str, Any]:
        """One page of a Text Search."""
        return self._call("searchText", "POST", TEXT_SEARCH_PATH, search_mask(self.options), json=body)

    def search_nearby(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Nearby Search."""
        return self._call("searchNearby", "POST", NEARBY_SEARCH_PATH, search_mask(self.options), json=body)

    def details(self, place_id: str, fields: list[str]) -> dict[str, Any]:
        """Place Details of one place, only ``fields``."""
        params = {name: value for name, value in (("languageCode", self.options.language),
                                                  ("regionCode", self.options.region)) if value}
        path = DETAILS_PATH.format(place_id=quote(place_id, safe=""))
        return self._call("getPlace", "GET", path, details_mask(fields), params=params)

    # ------------------------------------------------------------------ one request, asked again when worth it
    def _call(self, method: str, verb: str, path: str, mask: str, *, json: dict[str, Any] | None = None,
              params: dict[str, str] | None = None) -> dict[str, Any]:
        url = self.options.api_base_url + path
        headers = {HEADER: self._key, "X-Goog-FieldMask": mask}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.ctx.check_cancelled()
            self.ctx.rate_limit(bucket(self._key, method), requests_per_minute=self.requests_per_minute)
            self.requests += 1
            try:
                response = self.ctx.http.request(verb, url, json=json, params=params, headers=headers,
                                                 timeout=self.options.timeout)
            except OutboundRefused as exc:  # refused again on every try: said at once
                raise PlacesFailure(f"{method}: {exc}", retryable=False) from None
            except httpx.TransportError as exc:
                problem, wait = f"no answer from {self.options.api_base_url} ({type(exc).__name__})", None
            else:
                if response.status_code == 200:
                    return self._body(response, method)
                if 300 <= response.status_code < 400:
                    raise PlacesFailure(f"{method}: the Places API answered with a redirect (HTTP "
                                        f"{response.status_code}), which is not followed: check api_base_url",
                                        retryable=False)
                error = error_of(response)
                if not error.transient:
                    raise PlacesFailure(self._scrub(str(error)), retryable=False)
                problem, wait = str(error), self._wait_for(error, response)
                if error.daily_quota:
                    raise PlacesFailure(self._scrub(f"{error}; a quota per day is spent: run again after it "
                                                    f"resets"), retryable=False)
            delay = wait if wait is not None else FIRST_BACKOFF * 2 ** (attempt - 1)
            if attempt == MAX_ATTEMPTS:
                raise PlacesFailure(self._scrub(f"{problem}; gave up after {MAX_ATTEMPTS} tries"), retryable=False)
            if delay > MAX_WAIT:
                raise PlacesFailure(self._scrub(f"{problem}; Google asks to wait {delay:g} s, longer than the "
                                                f"{MAX_WAIT:g} s a job waits: run again later"), retryable=False)
            self.ctx.log("warn", self._scrub(f"{method}: {problem}; asking again in {delay:g} s "
                                             f"(try {attempt + 1} of {MAX_ATTEMPTS})"))
            self.ctx.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _wait_for(error: GoogleError, response: httpx.Response) -> float | None:
        delay = error.retry_delay
        return delay if delay is not None else retry_after(response.headers)

    def _body(self, response: httpx.Response, method: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PlacesFailure(f"{method}: the Places API answered 200 with something other than a JSON object",
                                retryable=False)
        return data

    def _scrub(self, text: str) -> str:
        # Google's messages do not quote the key, but a proxy's might: a message is shown and stored.
        return text.replace(self._key, "[the API key]") if self._key else text
