"""The composition root: :class:`Runtime` builds everything one process runs.

Imported lazily: ``quaero serve`` starts its worker processes (:mod:`quaero.runtime.supervisor`) before it
imports the rest of itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quaero.runtime.runtime import Runtime, events_database

__all__ = ["Runtime", "events_database"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from quaero.runtime import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'quaero.runtime' has no attribute {name!r}")
