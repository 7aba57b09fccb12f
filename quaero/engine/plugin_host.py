"""Plugins in a running process: their start-up, settings, migrations and state, owned by the runtime.

Each plugin's ``startup`` hook is called with a :class:`Host` of its own; what it returns is that plugin's
state in this process, handed back to its managers, workers and routes as ``ctx.state`` and closed when
the process stops. A plugin whose start-up fails is reported and its actions are left out; the others
start as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quaero.api.context import PluginHost, SettingsT
from quaero.api.database import Migration, PluginDatabase
from quaero.registry import Registry
from quaero.settings import Settings, validate_plugin_settings
from quaero.stores.db import Database
from quaero.stores.migrations import migrate
from quaero.stores.redaction import process_redactor

log = logging.getLogger(__name__)


@dataclass
class PluginState:
    """What one plugin holds in this process."""

    name: str
    settings: Any = None
    state: Any = None
    migrated: list[int] = field(default_factory=list)


class Host(PluginHost):
    """The :class:`PluginHost` one plugin's ``startup`` hook is given."""

    def __init__(self, record: PluginState, plugins: Plugins) -> None:
        self._record = record
        self._plugins = plugins

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def db(self) -> PluginDatabase:
        return self._plugins.tables

    @property
    def data_dir(self) -> Path:
        path = Path(self._plugins.settings.data_dir) / "plugins" / self._record.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def configure(self, model: type[SettingsT]) -> SettingsT:
        registry = self._plugins.registry
        values = validate_plugin_settings(self._plugins.settings, self.name, model, known=registry.plugins)
        self._record.settings = values
        process_redactor().remember_settings(values)  # a secret setting is masked in every log line
        info = registry.plugins.get(self.name)
        if info is not None:
            info.settings_schema = model.model_json_schema()
            info.settings = values.model_dump(mode="json")  # secrets dump as ${VAR} or a mask
        return values

    def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        applied = migrate(self._plugins.database, self.name, migrations)
        self._record.migrated += applied
        if applied:
            log.info("plugin %s: applied schema migration(s) %s", self.name, applied)
        return applied


class Plugins:
    """Starts every loaded plugin and keeps its settings and state."""

    def __init__(self, registry: Registry, settings: Settings, database: Database, tables: PluginDatabase) -> None:
        self.registry = registry
        self.settings = settings
        self.database = database
        self.tables = tables
        self._records: dict[str, PluginState] = {}

    def start(self) -> None:
        """Run each plugin's ``startup`` hook once; a failure leaves that plugin out, with the reason."""
        for name, function in self.registry.implementations("startup"):
            record = PluginState(name)
            try:
                record.state = function(plugin=Host(record, self))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.error("plugin %s failed to start and is left out: %s", name, error)
                self.registry.disable(name, f"startup failed: {error}")
                continue
            self._records[name] = record
        for name in sorted(set(self.settings.plugins) - set(self.registry.plugins)):
            log.warning("quaero.toml has settings for plugin %r, which is not loaded (loaded: %s)", name,
                        ", ".join(sorted(self.registry.plugins)) or "none")

    def record(self, name: str) -> PluginState:
        """The settings and state of a plugin (empty for one without a ``startup`` hook)."""
        return self._records.get(name) or PluginState(name)

    def close(self) -> None:
        """Close every plugin state that has a ``close()``; errors are logged, the others still close."""
        for record in self._records.values():
            close = getattr(record.state, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("plugin %s: closing its state failed", record.name)
        self._records.clear()
