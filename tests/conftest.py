"""Shared fixtures: real SQLite files in tmp_path, real brokers, real runtimes (helpers in support.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import make_settings, need_service

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


@pytest.fixture
def postgres_url():
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg2

    name = f"quaero_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", dbname="test")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: pytest-playwright keeps an event loop running for the rest of the session,
    which breaks async tests collected after it (TOOLING.md)."""
    items.sort(key=lambda item: "test_browser" in item.nodeid)


@pytest.fixture(autouse=True)
def _uvicorn_loggers_as_new() -> None:
    """uvicorn's loggers as a fresh process has them (propagating, enabled, no handlers of their own):
    a library's logging config applied by an earlier test must not hide a later test's access log."""
    import logging

    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.propagate, logger.disabled = True, False
        logger.setLevel(logging.NOTSET)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
