"""The database as the plugin API offers it (:class:`quaero.api.PluginDatabase`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from quaero.api.database import Cursor, PluginDatabase
from quaero.stores.db import Database


class PluginTables(PluginDatabase):
    """Transactions, statements and single writes on the core's database, for plugins' own tables."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @property
    def backend(self) -> str:
        return "postgresql" if self._database.is_postgres else "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._database.write():
            yield

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._database.execute(sql, list(params))

    def write_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self._database.write_one(sql, list(params))
