"""The Places API (New) wire format: request bodies, field masks, and Google's error answers.

Nothing here sends a request (see :mod:`.client`): these functions only say what a request holds and
what an answer means, so they read like the API's reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from quaero.api.outbound import parse_duration

from .options import PAGE_SIZE, PlacesOptions

TEXT_SEARCH_PATH = "/v1/places:searchText"
NEARBY_SEARCH_PATH = "/v1/places:searchNearby"
DETAILS_PATH = "/v1/places/{place_id}"

PRICE_LEVELS = {"inexpensive": "PRICE_LEVEL_INEXPENSIVE", "moderate": "PRICE_LEVEL_MODERATE",
                "expensive": "PRICE_LEVEL_EXPENSIVE", "very_expensive": "PRICE_LEVEL_VERY_EXPENSIVE"}
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
#: Statuses worth asking again after a pause; every other one fails the job at once with Google's text.
TRANSIENT = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})


def search_mask(options: PlacesOptions) -> str:
    """The ``X-Goog-FieldMask`` of a search: each field under ``places.``, and the next page's token for a
    text search (Google returns it only when the mask asks for it)."""
    names = [f"places.{name}" for name in options.fields]
    if options.search_type == "text_search":
        names.append("nextPageToken")
    return ",".join(names)


def details_mask(fields: list[str]) -> str:
    """The ``X-Goog-FieldMask`` of Place Details: bare field names."""
    return ",".join(fields)


def _common(options: PlacesOptions) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if options.language:
        body["languageCode"] = options.language
    if options.region:
        body["regionCode"] = options.region
    if options.rank_preference:
        body["rankPreference"] = options.rank_preference.upper()
    return body


def text_search_body(options: PlacesOptions) -> dict[str, Any]:
    """The first page's ``searchText`` body; later pages send it again with ``pageToken`` added, unchanged
    otherwise (Google refuses a token whose other parameters changed)."""
    body: dict[str, Any] = {"textQuery": options.search_query, "pageSize": min(PAGE_SIZE, options.max_results),
                            **_common(options)}
    if options.included_type:
        body["includedType"] = options.included_type
    if options.min_rating is not None:
        body["minRating"] = options.min_rating
    if options.open_now is not None:
        body["openNow"] = options.open_now
    if options.price_levels:
        body["priceLevels"] = [PRICE_LEVELS[level] for level in options.price_levels]
    if options.location is not None:
        body["locationBias"] = {"circle": options.location.circle()}
    if options.rectangle is not None:
        body["locationRestriction"] = {"rectangle": options.rectangle.wire()}
    return body


def nearby_search_body(options: PlacesOptions) -> dict[str, Any]:
    """The ``searchNearby`` body: the circle it is restricted to, types, ranking, how many."""
    assert options.location is not None  # the options require it for a nearby search
    body: dict[str, Any] = {"locationRestriction": {"circle": options.location.circle()},
                            "maxResultCount": options.max_results, **_common(options)}
    included = list(dict.fromkeys([*([options.included_type] if options.included_type else []),
                                   *options.included_types]))
    if included:
        body["includedTypes"] = included
    if options.excluded_types:
        body["excludedTypes"] = options.excluded_types
    return body


@dataclass
class GoogleError:
    """An error answer: ``{"error": {"code", "message", "status", "details"}}`` and the HTTP status."""

    http_status: int
    status: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def transient(self) -> bool:
        """Whether asking again later may succeed (a quota per minute, an overloaded server)."""
        return self.status in TRANSIENT or self.http_status in (429, 500, 502, 503, 504)

    @property
    def retry_delay(self) -> float | None:
        """Seconds Google asks to wait (``google.rpc.RetryInfo.retryDelay``), or ``None``."""
        for detail in self.details:
            if detail.get("@type") == RETRY_INFO:
                delay = detail.get("retryDelay")
                if isinstance(delay, str):
                    return parse_duration(delay)
                if isinstance(delay, dict):  # the proto form {"seconds": ..., "nanos": ...}
                    return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
        return None

    @property
    def daily_quota(self) -> bool:
        """Whether a quota per day is spent (waiting minutes will not help)."""
        for detail in self.details:
            if detail.get("@type") == QUOTA_FAILURE:
                for violation in detail.get("violations") or []:
                    if "perday" in str(violation.get("quotaId", "")).replace("_", "").lower():
                        return True
        return "per day" in self.message.lower()

    def __str__(self) -> str:
        return f"Google Places {self.status} (HTTP {self.http_status}): {self.message}"


def error_of(response: httpx.Response) -> GoogleError:
    """Read an error answer; one that is not in Google's format still says its HTTP status."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        text = " ".join(response.text.split())[:200] if response.text else "no body"
        return GoogleError(response.status_code, f"HTTP_{response.status_code}", f"unexpected answer: {text}")
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    return GoogleError(response.status_code, str(error.get("status") or f"HTTP_{response.status_code}"),
                       str(error.get("message") or "no message"), details)
