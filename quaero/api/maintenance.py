"""Maintenance of the core's own database (``ctx.maintenance``), on SQLite and on PostgreSQL.

The core knows its tables, its full-text index and its write-ahead log, so it does the work; an action
(``database_maintenance``) decides when and reports what happened. Each operation returns an
:class:`Outcome`; an operation a backend has no equivalent for is "not applicable", not an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

#: The name of one operation, as a type (a step option's, say); :data:`OPERATIONS` lists them in run order.
OperationName = Literal["prune", "vacuum", "reindex", "analyze", "optimize", "wal_checkpoint", "integrity_check"]
OPERATIONS: tuple[OperationName, ...] = get_args(OperationName)


@dataclass
class Outcome:
    """What one operation did: a sentence for the log, and figures for the job's result."""

    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True
    ok: bool = True


class DatabaseMaintenance(ABC):
    """Housekeeping of the database: each method does one operation and says what it did."""

    @property
    @abstractmethod
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""

    @abstractmethod
    def size(self) -> int:
        """Bytes on disk: the SQLite file and its write-ahead log, or the PostgreSQL database's size."""

    @abstractmethod
    def run(self, operation: str, *, older_than_days: float = 30.0,
            check_cancelled: Callable[[], None] = lambda: None) -> Outcome:
        """Run one of :data:`OPERATIONS`. ``prune`` deletes executions finished more than
        ``older_than_days`` ago (with their jobs, logs and the plugins' rows for them), calling
        ``check_cancelled`` between executions."""
