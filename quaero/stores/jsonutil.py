"""Compact JSON for payloads stored in the database."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str:
    """Serialise compactly; unknown objects become strings rather than errors."""
    return _encoder.encode(value)


def loads(text: str | bytes | None) -> Any:
    """Parse JSON; ``None`` and empty text give an empty dict."""
    if not text:
        return {}
    return json.loads(text)
