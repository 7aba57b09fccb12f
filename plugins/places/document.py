"""A place, as Google answers it, turned into a document: a markdown summary and its metadata.

The document is keyed by the place id (``source_type: places``), so running a search again updates the
places it finds in place. Only what Google sent is written, in a fixed order, so an unchanged place
saves as unchanged (no new ``updated_at``, no new content hash).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from quaero.api import DocumentInput

SOURCE_TYPE = "places"
PRICE_NAMES = {"PRICE_LEVEL_FREE": "free", "PRICE_LEVEL_INEXPENSIVE": "inexpensive",
               "PRICE_LEVEL_MODERATE": "moderate", "PRICE_LEVEL_EXPENSIVE": "expensive",
               "PRICE_LEVEL_VERY_EXPENSIVE": "very expensive"}
STATUS_NAMES = {"OPERATIONAL": "operational", "CLOSED_TEMPORARILY": "closed temporarily",
                "CLOSED_PERMANENTLY": "closed permanently"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _text(value: Any) -> str | None:
    """A ``LocalizedText`` (``{"text", "languageCode"}``) or plain string, as text."""
    if isinstance(value, dict):
        value = value.get("text")
    return value.strip() or None if isinstance(value, str) else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _type_name(place_type: str) -> str:
    return place_type.replace("_", " ")


def maps_url(place: dict[str, Any]) -> str:
    """Google's own Maps link, or a Maps URL that opens the place by its id (which needs no field)."""
    uri = place.get("googleMapsUri")
    if isinstance(uri, str) and uri.startswith("https://"):
        return uri
    name = _text(place.get("displayName")) or _text(place.get("formattedAddress")) or "place"
    return "https://www.google.com/maps/search/?" + urlencode({"api": 1, "query": name,
                                                                "query_place_id": place["id"]})


def place_metadata(place: dict[str, Any]) -> dict[str, Any]:
    """What a document keeps about a place, under readable names; a field Google did not send is absent."""
    location = _mapping(place.get("location"))
    hours = _mapping(place.get("regularOpeningHours"))
    values: dict[str, Any] = {
        "place_id": place["id"],
        "name": _text(place.get("displayName")),
        "address": _text(place.get("formattedAddress")),
        "rating": place.get("rating"),
        "user_rating_count": place.get("userRatingCount"),
        "primary_type": place.get("primaryType"),
        "types": place.get("types") or None,
        "website": place.get("websiteUri"),
        "phone": place.get("nationalPhoneNumber"),
        "international_phone": place.get("internationalPhoneNumber"),
        "latitude": location.get("latitude"),
        "longitude": location.get("longitude"),
        "opening_hours": hours.get("weekdayDescriptions") or None,
        "price_level": PRICE_NAMES.get(place.get("priceLevel", ""), place.get("priceLevel")),
        "business_status": STATUS_NAMES.get(place.get("businessStatus", ""), place.get("businessStatus")),
        "maps_url": maps_url(place),
    }
    return {key: value for key, value in values.items() if value is not None}


def _rating_text(meta: dict[str, Any]) -> str | None:
    if "rating" not in meta:
        return None
    count = meta.get("user_rating_count")
    return f"{meta['rating']:g} / 5" + (f" ({count:,} ratings)" if isinstance(count, int) else "")


def place_markdown(meta: dict[str, Any]) -> str:
    """A readable summary of the place: name, address, rating, kind, contact, hours, map link."""
    lines = [f"# {_escape(meta.get('name') or meta.get('address') or meta['place_id'])}", ""]
    facts = [
        ("Address", meta.get("address") and _escape(meta["address"])),
        ("Rating", _rating_text(meta)),
        ("Type", meta.get("primary_type") and _type_name(meta["primary_type"])),
        ("Categories", meta.get("types") and ", ".join(_type_name(t) for t in meta["types"])),
        ("Price level", meta.get("price_level")),
        ("Status", meta.get("business_status")),
        ("Website", meta.get("website") and f"<{meta['website']}>"),
        ("Phone", meta.get("phone") or meta.get("international_phone")),
        ("International phone", meta.get("phone") and meta.get("international_phone")),
        ("Coordinates", "latitude" in meta and "longitude" in meta
         and f"{meta['latitude']:.6f}, {meta['longitude']:.6f}"),
    ]
    lines += [f"- **{label}:** {value}" for label, value in facts if value]
    if meta.get("opening_hours"):
        lines += ["", "## Opening hours", ""] + [f"- {_escape(day)}" for day in meta["opening_hours"]]
    lines += ["", f"[Open in Google Maps]({meta['maps_url']})", ""]
    return "\n".join(lines)


def place_summary(meta: dict[str, Any]) -> str:
    """One line for lists and search results: kind, rating, address."""
    parts = [meta.get("primary_type") and _type_name(meta["primary_type"]).capitalize(),
             "rating" in meta and f"{meta['rating']:g}★" + (f" ({meta['user_rating_count']:,})"
                                                           if isinstance(meta.get("user_rating_count"), int) else ""),
             meta.get("address")]
    return " · ".join(part for part in parts if part)


def place_document(place: dict[str, Any]) -> DocumentInput:
    """The document of one place (``place["id"]`` is its reference)."""
    meta = place_metadata(place)
    return DocumentInput(source_type=SOURCE_TYPE, source_ref=place["id"],
                         title=meta.get("name") or meta.get("address") or place["id"],
                         markdown=place_markdown(meta), metadata=meta, summary=place_summary(meta))
