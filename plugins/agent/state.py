"""The agent's state in one process: its tables, and the local models (loaded when a local job first needs
them, then kept: loading takes about half a second and some 100 MB)."""

from __future__ import annotations

import json
import threading
from typing import Any

from .books import AgentBooks


class LocalProvider:
    """The local models, loaded on first use and shared by the process's worker threads."""

    def __init__(self) -> None:
        self._models: Any = None
        self._lock = threading.Lock()

    @property
    def models(self) -> Any:
        if self._models is None:
            with self._lock:
                if self._models is None:
                    from .local import LocalModels

                    self._models = LocalModels()
        return self._models

    def describe_text(self) -> str:
        """The models' names and versions as one string (part of a result's fingerprint)."""
        return json.dumps(self.models.describe(), sort_keys=True)


class AgentState:
    """What the ``startup`` hook makes; contexts hand it back as ``ctx.state``."""

    def __init__(self, books: AgentBooks) -> None:
        self.books = books
        self.local = LocalProvider()
