"""A stand-in for places.googleapis.com on 127.0.0.1: it checks every request as the Places API (New) does
and answers in its wire format.

What it enforces, as Google does: the ``X-Goog-Api-Key`` (missing → 403 ``PERMISSION_DENIED``, unknown →
400 ``INVALID_ARGUMENT``, blocked → 403 ``PERMISSION_DENIED``), a ``X-Goog-FieldMask`` (missing → 400), the
mask's form (``places.<field>`` for searches, bare names for details), the bodies' fields and ranges
(``pageSize`` 1-20, ``minRating`` in 0.5 steps, a text search's ``locationRestriction`` only as a
rectangle, a nearby search's circle of at most 50,000 m and ``maxResultCount`` 1-20, no unknown field),
and the page-token rule: a ``pageToken`` is valid only with every other parameter as it was. Answers keep
only the fields the mask asks for; ``nextPageToken`` only when the mask names it.

``fake.fail_next(kind, status, message, ...)`` scripts an error answer for the next request of a kind
(``searchText``, ``searchNearby``, ``getPlace``); ``fake.requests`` records every request.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

TEXT_FIELDS = {"textQuery", "includedType", "languageCode", "regionCode", "rankPreference", "minRating", "openNow",
               "priceLevels", "locationBias", "locationRestriction", "pageSize", "pageToken", "strictTypeFiltering",
               "includePureServiceAreaBusinesses", "maxResultCount", "evOptions"}
NEARBY_FIELDS = {"includedTypes", "excludedTypes", "includedPrimaryTypes", "excludedPrimaryTypes", "maxResultCount",
                 "locationRestriction", "rankPreference", "languageCode", "regionCode"}
PRICE_LEVELS = {"PRICE_LEVEL_INEXPENSIVE", "PRICE_LEVEL_MODERATE", "PRICE_LEVEL_EXPENSIVE",
                "PRICE_LEVEL_VERY_EXPENSIVE"}
METHODS = {"searchText": "SearchText", "searchNearby": "SearchNearby", "getPlace": "GetPlace"}


def make_place(n: int, *, rating: float | None = 4.0, types: tuple[str, ...] = ("cafe", "food")) -> dict[str, Any]:
    """A place with every field Google can send, as it sends them."""
    place: dict[str, Any] = {
        "id": f"ChIJplace{n:03d}",
        "displayName": {"text": f"Café {n}", "languageCode": "en"},
        "formattedAddress": f"Rua {n}, 1100-000 Lisboa, Portugal",
        "location": {"latitude": 38.7 + n / 1000, "longitude": -9.14 - n / 1000},
        "userRatingCount": 100 + n,
        "types": [*types, "point_of_interest", "establishment"],
        "primaryType": types[0],
        "websiteUri": f"https://cafe{n}.example/",
        "nationalPhoneNumber": f"21 000 {n:04d}",
        "internationalPhoneNumber": f"+351 21 000 {n:04d}",
        "regularOpeningHours": {"openNow": True, "periods": [{"open": {"day": 1, "hour": 8, "minute": 0},
                                                             "close": {"day": 1, "hour": 18, "minute": 0}}],
                                "weekdayDescriptions": ["Monday: 8:00 AM – 6:00 PM", "Tuesday: Closed"]},
        "googleMapsUri": f"https://maps.google.com/?cid={1000 + n}",
        "priceLevel": "PRICE_LEVEL_MODERATE",
        "businessStatus": "OPERATIONAL",
    }
    if rating is not None:
        place["rating"] = rating
    return place


def error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Google's error answer."""
    return {"error": {"code": code, "message": message, "status": status, "details": details or []}}


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(quota_id: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"subject": "project_number:1", "quotaId": quota_id}]}


class Refused(Exception):
    """Google would refuse the request: answered as an error body."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


@dataclass
class Request:
    """One request as the fake saw it."""

    kind: str
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    query: dict[str, list[str]]
    at: float

    @property
    def mask(self) -> str:
        return self.headers.get("x-goog-fieldmask", "")


@dataclass
class FakePlaces:
    """The fake server; ``places`` is what any search finds, in ranking order."""

    places: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=lambda: {"test-key"})
    blocked_keys: set[str] = field(default_factory=set)
    #: Answer places below ``minRating`` anyway (to check that the client checks what comes back).
    ignore_min_rating: bool = False
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._script: dict[str, deque[list[Any]]] = {}
        self._tokens: dict[str, tuple[dict[str, Any], int]] = {}
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> FakePlaces:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ scripting
    def fail_next(self, kind: str, code: int, status: str, message: str, *, details: list[dict[str, Any]] | None = None,
                  headers: dict[str, str] | None = None, after: int = 0) -> None:
        """Answer a coming request of ``kind`` with this error (after checking it as usual): the next one, or
        the one after ``after`` more have been answered as usual."""
        with self._lock:
            self._script.setdefault(kind, deque()).append([after, code, error_body(code, status, message, details),
                                                           headers or {}])

    def of(self, kind: str) -> list[Request]:
        return [r for r in self.requests if r.kind == kind]

    # ------------------------------------------------------------------ serving
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        kind = {("POST", "/v1/places:searchText"): "searchText", ("POST", "/v1/places:searchNearby"): "searchNearby"
                }.get((handler.command, split.path))
        if kind is None and handler.command == "GET" and split.path.startswith("/v1/places/"):
            kind = "getPlace"
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        with self._lock:
            self.requests.append(Request(kind or "unknown", handler.command, split.path, headers, body,
                                         parse_qs(split.query), time.monotonic()))
        try:
            if kind is None:
                raise Refused(404, "NOT_FOUND", f"Method not found: {handler.command} {split.path}")
            self._check_key(headers, kind)
            mask = headers.get("x-goog-fieldmask")
            if not mask:
                raise Refused(400, "INVALID_ARGUMENT", "FieldMask is a required parameter. See "
                              "https://developers.google.com/maps/documentation/places/web-service/choose-fields")
            if kind == "getPlace":
                answer = self._details(unquote(split.path.removeprefix("/v1/places/")), mask)
            else:
                if "application/json" not in headers.get("content-type", "") or not isinstance(body, dict):
                    raise Refused(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
                answer = self._text(body, mask) if kind == "searchText" else self._nearby(body, mask)
            with self._lock:
                scripted = self._script.get(kind)
                failure = None
                if scripted and scripted[0][0] > 0:
                    scripted[0][0] -= 1
                elif scripted:
                    failure = scripted.popleft()
            if failure is not None:
                _, code, error, extra = failure
                self._send(handler, code, error, extra)
            else:
                self._send(handler, 200, answer)
        except Refused as refused:
            self._send(handler, refused.code, error_body(refused.code, refused.status, refused.message))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, data: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(data).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _check_key(self, headers: dict[str, str], kind: str) -> None:
        key = headers.get("x-goog-api-key")
        if not key:
            raise Refused(403, "PERMISSION_DENIED", "The request is missing a valid API key.")
        if key in self.blocked_keys:
            raise Refused(403, "PERMISSION_DENIED", f"Requests to this API places.googleapis.com method "
                          f"google.maps.places.v1.Places.{METHODS[kind]} are blocked.")
        if key not in self.keys:
            raise Refused(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")

    # ------------------------------------------------------------------ the three methods
    @staticmethod
    def _search_mask(mask: str) -> tuple[set[str], bool]:
        names, token = set(), False
        for entry in (part.strip() for part in mask.split(",")):
            if entry == "nextPageToken":
                token = True
            elif entry.startswith("places."):
                names.add(entry.removeprefix("places.").split(".")[0])
            else:
                raise Refused(400, "INVALID_ARGUMENT", f"Invalid field mask: '{entry}' is not a field of "
                              f"the response (write places.{entry})")
        return names, token

    @staticmethod
    def _masked(place: dict[str, Any], names: set[str]) -> dict[str, Any]:
        return {key: value for key, value in place.items() if "*" in names or key in names}

    def _text(self, body: dict[str, Any], mask: str) -> dict[str, Any]:
        unknown = set(body) - TEXT_FIELDS
        if unknown:
            raise Refused(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name "
                          f"\"{sorted(unknown)[0]}\": Cannot find field.")
        if not str(body.get("textQuery", "")).strip():
            raise Refused(400, "INVALID_ARGUMENT", "Missing required field: text_query.")
        size = body.get("pageSize", 20)
        if not isinstance(size, int) or not 1 <= size <= 20:
            raise Refused(400, "INVALID_ARGUMENT", "page_size must be between 1 and 20.")
        rating = body.get("minRating")
        if rating is not None and not (0 <= rating <= 5 and (rating * 2).is_integer()):
            raise Refused(400, "INVALID_ARGUMENT", "min_rating must be between 0 and 5 in 0.5 steps.")
        restriction = body.get("locationRestriction")
        if restriction is not None and set(restriction) != {"rectangle"}:
            raise Refused(400, "INVALID_ARGUMENT", "location_restriction for text search must be a rectangle.")
        if restriction is not None and body.get("locationBias") is not None:
            raise Refused(400, "INVALID_ARGUMENT", "Only one of location_bias and location_restriction may be set.")
        if not set(body.get("priceLevels") or []) <= PRICE_LEVELS:
            raise Refused(400, "INVALID_ARGUMENT", "Invalid price_levels.")
        names, want_token = self._search_mask(mask)
        params = {key: value for key, value in body.items() if key != "pageToken"}
        offset = 0
        if "pageToken" in body:
            with self._lock:
                issued = self._tokens.get(body["pageToken"])
            if issued is None:
                raise Refused(400, "INVALID_ARGUMENT", "Invalid page_token.")
            if issued[0] != params:
                changed = sorted(k for k in set(params) | set(issued[0]) if params.get(k) != issued[0].get(k))
                raise Refused(400, "INVALID_ARGUMENT", f"The page_token is not valid for this request: every "
                              f"parameter but page_token must be as in the request that returned it (changed: "
                              f"{', '.join(changed)}).")
            offset = issued[1]
        found = [p for p in self.places if self.ignore_min_rating or rating is None or p.get("rating", 0) >= rating]
        if body.get("includedType"):
            found = [p for p in found if body["includedType"] in p["types"]]
        page = found[offset:offset + size]
        answer: dict[str, Any] = {}
        if page:
            answer["places"] = [self._masked(p, names) for p in page]
        if want_token and offset + size < len(found):
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._tokens[token] = (params, offset + size)
            answer["nextPageToken"] = token
        return answer

    def _nearby(self, body: dict[str, Any], mask: str) -> dict[str, Any]:
        unknown = set(body) - NEARBY_FIELDS
        if unknown:
            raise Refused(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name "
                          f"\"{sorted(unknown)[0]}\": Cannot find field.")
        circle = (body.get("locationRestriction") or {}).get("circle")
        if not isinstance(circle, dict) or "center" not in circle:
            raise Refused(400, "INVALID_ARGUMENT", "location_restriction.circle is required.")
        if not 0 < float(circle.get("radius", 0)) <= 50_000:
            raise Refused(400, "INVALID_ARGUMENT", "radius must be greater than 0 and at most 50000.")
        count = body.get("maxResultCount", 20)
        if not isinstance(count, int) or not 1 <= count <= 20:
            raise Refused(400, "INVALID_ARGUMENT", "max_result_count must be between 1 and 20.")
        names, want_token = self._search_mask(mask)
        if want_token:
            raise Refused(400, "INVALID_ARGUMENT", "Invalid field mask: nextPageToken is not a field of a "
                          "nearby search response.")
        found = [p for p in self.places
                 if not body.get("includedTypes") or set(body["includedTypes"]) & set(p["types"])]
        found = [p for p in found if not set(body.get("excludedTypes") or []) & set(p["types"])]
        return {"places": [self._masked(p, names) for p in found[:count]]} if found else {}

    def _details(self, place_id: str, mask: str) -> dict[str, Any]:
        names = {part.strip() for part in mask.split(",")}
        if any(name.startswith("places.") for name in names):
            raise Refused(400, "INVALID_ARGUMENT", "Invalid field mask: Place Details fields are bare names "
                          "(displayName, not places.displayName).")
        for place in self.places:
            if place["id"] == place_id:
                return self._masked(place, names)
        raise Refused(404, "NOT_FOUND", f"Place '{place_id}' not found.")
