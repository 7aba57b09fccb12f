"""What the places tests share: the test key, and a one-step definition against the fake."""

from __future__ import annotations

from typing import Any

from fake_places import FakePlaces

KEY = "AIzaTEST-k3y-that-must-never-be-stored-0123"
KEY_VARIABLE = "PLACES_TEST_KEY"


def definition(fake: FakePlaces, *, tags: tuple[str, ...] = ("lisbon",), definition_auth_id: str | None = None,
               **config: Any) -> dict[str, Any]:
    """A one-step places_search definition against ``fake``, with the key from ``$PLACES_TEST_KEY`` unless
    ``config`` says otherwise (``api_key=None`` leaves it out)."""
    config = {"api_base_url": fake.url, "api_key": f"${{{KEY_VARIABLE}}}", **config}
    config = {key: value for key, value in config.items() if value is not None}
    data: dict[str, Any] = {"name": "places", "tags": list(tags),
                            "steps": [{"name": "search", "action": "places_search", "config": config}]}
    if definition_auth_id:
        data["auth_id"] = definition_auth_id
    return data
