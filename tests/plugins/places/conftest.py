"""Fixtures of the places tests: a fake Places API on 127.0.0.1 and a Testbed with the places plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_places import FakePlaces, make_place
from places_support import KEY, KEY_VARIABLE
from support import local

from quaero.testing import Testbed


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own key must neither leak into nor rescue a test.
    monkeypatch.delenv("GOOGLE_PLACES_API_KEY", raising=False)
    monkeypatch.delenv(KEY_VARIABLE, raising=False)


@pytest.fixture
def fake() -> Iterator[FakePlaces]:
    server = FakePlaces(places=[make_place(n) for n in range(1, 6)], keys={KEY}).start()
    yield server
    server.close()


@pytest.fixture
def bed(tmp_path: Path, fake: FakePlaces) -> Iterator[Callable[..., Testbed]]:
    """``bed(settings={...}, core={...})``: a started Testbed with the places plugin (closed at teardown),
    whose settings allow the key to go to the fake (and to Google) unless ``settings`` say otherwise, and
    whose outbound requests may reach the fake on 127.0.0.1."""
    beds: list[Testbed] = []

    def factory(*, settings: dict[str, Any] | None = None, core: dict[str, Any] | None = None) -> Testbed:
        settings = {"allowed_base_urls": ["https://places.googleapis.com", fake.url], **(settings or {})}
        core = {**local(), **(core or {})}
        testbed = Testbed(tmp_path, load=["places"], settings={"places": settings}, core=core).start()
        beds.append(testbed)
        return testbed

    yield factory
    for testbed in beds:
        testbed.stop()
