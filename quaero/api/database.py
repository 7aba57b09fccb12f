"""A plugin's own tables: versioned migrations, and the database handle to read and write them.

Migrations are given to ``plugin.migrate([...])`` in the plugin's ``startup`` hook. The core records each
applied version per plugin (table ``plugin_migrations``) and applies the missing ones in order, in one
transaction (all or none), once, even when several processes start together, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Migration:
    """One version of a plugin's schema.

    ``sqlite`` holds the statements for SQLite; ``postgresql`` those for PostgreSQL, when they differ (``None``
    runs the SQLite ones there too). Versions start at 1 and only ever grow; never edit an applied one: add
    the next version instead.
    """

    version: int
    sqlite: Sequence[str]
    postgresql: Sequence[str] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"migration versions start at 1, got {self.version}")
        if isinstance(self.sqlite, str) or isinstance(self.postgresql, str):
            raise TypeError(f"migration {self.version}: give a list of statements, not one string")

    def statements(self, backend: str) -> Sequence[str]:
        """The statements to run on ``backend`` (``sqlite`` or ``postgresql``)."""
        return self.postgresql if backend == "postgresql" and self.postgresql is not None else self.sqlite


class Cursor(Protocol):
    """What :meth:`PluginDatabase.execute` returns: a DB-API cursor."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class PluginDatabase(ABC):
    """The knowledge base's database, for a plugin's own tables (``ctx.db``).

    SQL uses ``?`` placeholders on both backends. Reads may run anywhere; writes run inside
    :meth:`transaction` or as one statement through :meth:`write_one`, which queue for SQLite's single
    writer instead of failing with "database is locked".
    """

    @property
    @abstractmethod
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (``SELECT ... FOR UPDATE`` and ``jsonb`` are available)."""
        return self.backend == "postgresql"

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); nested ones become savepoints.

        Everything a job does inside it commits or rolls back together: the plugin's rows, the documents
        ``ctx.save_document`` saves, the child jobs ``ctx.spawn_many`` creates (their messages are sent once
        the outermost transaction has committed, so a worker never sees a job that was rolled back).
        """

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement; inside :meth:`transaction` for anything that writes."""

    @abstractmethod
    def write_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run one writing statement as its own transaction (or within the open one); its first row."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """The rows of a read, one by one."""
        yield from self.execute(sql, params).fetchall()
