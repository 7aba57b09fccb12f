"""Shared fixtures: real SQLite files in tmp_path, real brokers, real runtimes (helpers in support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import make_settings

from quaero.runtime import Runtime
from quaero.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime(settings, role="run")
    rt.start()
    try:
        yield rt
    finally:
        rt.stop()
