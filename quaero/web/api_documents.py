"""The documents and search API (JSON)."""

from __future__ import annotations

routes: list = []
