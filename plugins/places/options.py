"""The ``places_search`` step's options: typed, and checked against what each Google search accepts.

Every rule the Places API (New) would answer with ``INVALID_ARGUMENT`` is checked here first, so a
definition that cannot work fails when it is saved, naming the key to fix, instead of at run time after a
billed request.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from quaero.api import SecretReference, StepOptions

#: The default field mask: every field in it sits in the Pro tier of Text Search and Nearby Search (the
#: rating, website, phone and opening hours would raise each request to the Enterprise tier).
DEFAULT_FIELDS = ("id", "displayName", "formattedAddress", "location", "types", "primaryType", "googleMapsUri",
                  "businessStatus")
#: What ``details: true`` asks Place Details for, when the search's own fields lack it.
DETAIL_FIELDS = ("websiteUri", "nationalPhoneNumber", "internationalPhoneNumber", "regularOpeningHours")
DEFAULT_BASE_URL = "https://places.googleapis.com"
#: Google's limits: results per request (a text search page, a nearby search), pages of a text search,
#: and a circle's radius in metres.
PAGE_SIZE = 20
TEXT_SEARCH_MAX = 60
MAX_RADIUS = 50_000.0

PriceLevel = Literal["inexpensive", "moderate", "expensive", "very_expensive"]
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$")
_TYPE = re.compile(r"^[a-z0-9_]+$")
_REGION = re.compile(r"^[A-Za-z]{2}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_BASE_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", re.IGNORECASE)


class Point(BaseModel):
    """A place on the globe, in degrees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latitude: float = Field(description="Degrees north, -90 to 90.")
    longitude: float = Field(description="Degrees east, -180 to 180.")

    @field_validator("latitude")
    @classmethod
    def _latitude(cls, value: float) -> float:
        if not -90 <= value <= 90:
            raise ValueError(f"latitude must be between -90 and 90 degrees, not {value:g}")
        return value

    @field_validator("longitude")
    @classmethod
    def _longitude(cls, value: float) -> float:
        if not -180 <= value <= 180:
            raise ValueError(f"longitude must be between -180 and 180 degrees, not {value:g}")
        return value

    def wire(self) -> dict[str, float]:
        """As Google writes a ``LatLng``."""
        return {"latitude": self.latitude, "longitude": self.longitude}


class Circle(Point):
    """A centre and a radius: a text search's bias, a nearby search's restriction."""

    radius: float = Field(description=f"Metres, up to {MAX_RADIUS:,.0f}.")

    @field_validator("radius")
    @classmethod
    def _radius(cls, value: float) -> float:
        if not 0 <= value <= MAX_RADIUS:
            raise ValueError(f"radius must be between 0 and {MAX_RADIUS:,.0f} metres, not {value:g}")
        return value

    def circle(self) -> dict[str, object]:
        """As Google writes a ``Circle``."""
        return {"center": self.wire(), "radius": self.radius}


class Rectangle(BaseModel):
    """A viewport: its south-west (``low``) and north-east (``high``) corners."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: Point
    high: Point

    @model_validator(mode="after")
    def _ordered(self) -> Rectangle:
        if self.low.latitude > self.high.latitude:
            raise ValueError(f"rectangle: low.latitude ({self.low.latitude:g}) is north of high.latitude "
                             f"({self.high.latitude:g}); low is the south-west corner, high the north-east")
        return self

    def wire(self) -> dict[str, dict[str, float]]:
        return {"low": self.low.wire(), "high": self.high.wire()}


class PlacesOptions(StepOptions):
    """Options of the ``places_search`` action."""

    search_type: Literal["text_search", "nearby_search"] = Field(
        "text_search", description="text_search (a query, up to 60 results over 3 pages) or nearby_search "
                                   "(places of some types around a point, up to 20).")
    search_query: str | None = Field(None, description="What to look for (text search only), e.g. "
                                                       "'vegetarian restaurants in Lisbon'.")
    location: Circle | None = Field(None, description="{latitude, longitude, radius}: a bias for text search, "
                                                      "the required restriction for nearby search.")
    rectangle: Rectangle | None = Field(None, description="{low: {latitude, longitude}, high: {...}}: the area a "
                                                          "text search is restricted to.")
    included_type: str | None = Field(None, description="A place type (e.g. restaurant): text search returns only "
                                                        "this type; nearby search counts it among included_types.")
    included_types: list[str] = Field(default_factory=list, description="Nearby search: any of these types.")
    excluded_types: list[str] = Field(default_factory=list, description="Nearby search: none of these types.")
    min_rating: float | None = Field(None, description="Text search: only places rated at least this (0-5, in "
                                                       "steps of 0.5); sent to Google and checked on the answer.")
    open_now: bool | None = Field(None, description="Text search: only places open now.")
    price_levels: list[PriceLevel] = Field(default_factory=list, description="Text search: only these price "
                                                                             "levels.")
    max_results: int = Field(20, description="Places to save: 1-60 for text search (pages of 20), 1-20 for nearby.")
    language: str | None = Field(None, description="Language of the answers (e.g. en, pt-BR).")
    region: str | None = Field(None, description="Two-letter region code for formatting and ranking (e.g. PT).")
    rank_preference: Literal["relevance", "distance", "popularity"] | None = Field(
        None, description="Text search: relevance or distance; nearby search: popularity or distance.")
    fields: list[str] = Field(list(DEFAULT_FIELDS), description="Place fields to ask for (the field mask); each "
                                                                "request is billed at its most expensive field.")
    details: bool = Field(False, description="Fetch Place Details for website, phone and opening hours when the "
                                             "fields lack them (one more billed request per place).")
    api_base_url: str = Field(DEFAULT_BASE_URL, description="Where the Places API is (a proxy, a test server).")
    api_key: SecretReference | None = Field(None, description="The API key as \"${ENV_VAR}\" (see the README for "
                                                              "the other places a key is found).")
    auth_id: str | None = Field(None, description="Stored credentials whose X-Goog-Api-Key header is the key.")
    timeout: float = Field(30.0, gt=0, le=300, description="Seconds for one request.")

    @field_validator("search_query", "language", "region", "included_type", "auth_id")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("rank_preference", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("min_rating")
    @classmethod
    def _rating(cls, value: float | None) -> float | None:
        if value is not None and not (0 <= value <= 5 and (value * 2).is_integer()):
            raise ValueError(f"min_rating must be 0 to 5 in steps of 0.5 (such as 3.5 or 4), not {value:g}")
        return value

    @field_validator("included_type")
    @classmethod
    def _one_type(cls, value: str | None) -> str | None:
        if value is not None and not _TYPE.match(value):
            raise ValueError(f"{value!r} is not a place type: Google writes them like restaurant or "
                             f"tourist_attraction")
        return value

    @field_validator("included_types", "excluded_types")
    @classmethod
    def _types(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _TYPE.match(value):
                raise ValueError(f"{value!r} is not a place type: Google writes them like restaurant or "
                                 f"tourist_attraction")
        return list(dict.fromkeys(values))

    @field_validator("fields")
    @classmethod
    def _fields(cls, values: list[str]) -> list[str]:
        names = []
        for value in values:
            name = value.strip().removeprefix("places.")
            if name == "*":
                raise ValueError("fields: '*' asks for every field and is billed at the most expensive tier; "
                                 "list the fields you need")
            if not _FIELD.match(name):
                raise ValueError(f"fields: {value!r} is not a place field name (such as displayName or "
                                 f"regularOpeningHours)")
            names.append(name)
        # The id is what a document is keyed by, so it is always asked for (it costs nothing more).
        return list(dict.fromkeys(["id", *names]))

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value):
            raise ValueError(f"language {value!r} is not a language code such as en or pt-BR")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError(f"region {value!r} is not a two-letter region code such as US or PT")
        return value.upper() if value else value

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not _BASE_URL.match(value.strip()):
            raise ValueError(f"api_base_url {value!r} is not an http:// or https:// URL without query")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _fits_the_search(self) -> PlacesOptions:
        problems = self._text_problems() if self.search_type == "text_search" else self._nearby_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _text_problems(self) -> list[str]:
        problems = []
        if not self.search_query:
            problems.append("a text search needs a search_query (what to look for)")
        if self.location is not None and self.rectangle is not None:
            problems.append("a text search takes location (a bias towards a circle) or rectangle (a restriction "
                            "to an area), not both")
        if self.included_types:
            problems.append("a text search filters on one type: write included_type, not included_types")
        if self.excluded_types:
            problems.append("excluded_types is not supported by text search (only by nearby_search)")
        if self.rank_preference == "popularity":
            problems.append("a text search ranks by relevance or distance, not popularity")
        if not 1 <= self.max_results <= TEXT_SEARCH_MAX:
            problems.append(f"max_results must be 1 to {TEXT_SEARCH_MAX} for a text search (3 pages of "
                            f"{PAGE_SIZE}), not {self.max_results}")
        return problems

    def _nearby_problems(self) -> list[str]:
        problems = []
        if self.location is None:
            problems.append("a nearby search needs location {latitude, longitude, radius}: the circle it is "
                            "restricted to")
        elif self.location.radius <= 0:
            problems.append("a nearby search needs a location radius above 0 metres")
        if self.search_query:
            problems.append("a nearby search has no text query: leave search_query out, or use "
                            "search_type: text_search")
        if self.rectangle is not None:
            problems.append("a nearby search is restricted to a circle (location), not a rectangle")
        unsupported = [name for name, value in (("min_rating", self.min_rating), ("open_now", self.open_now),
                                                ("price_levels", self.price_levels)) if value not in (None, [])]
        if unsupported:
            problems.append(f"{', '.join(unsupported)} {'is' if len(unsupported) == 1 else 'are'} not supported "
                            f"by nearby search (only by text_search)")
        if self.rank_preference == "relevance":
            problems.append("a nearby search ranks by popularity or distance, not relevance")
        if not 1 <= self.max_results <= PAGE_SIZE:
            problems.append(f"max_results must be 1 to {PAGE_SIZE} for a nearby search (it has no paging), not "
                            f"{self.max_results}")
        return problems

    # ------------------------------------------------------------------ what the requests ask for
    @property
    def detail_fields(self) -> list[str]:
        """What Place Details must add: the detail fields the search's own fields lack (none without
        ``details``)."""
        return [name for name in DETAIL_FIELDS if name not in self.fields] if self.details else []

    def describe(self) -> str:
        """The search in a few words, for job names and logs."""
        if self.search_type == "text_search":
            return f"text search {self.search_query!r}"
        assert self.location is not None
        return (f"nearby search within {self.location.radius:g} m of "
                f"{self.location.latitude:g},{self.location.longitude:g}")
