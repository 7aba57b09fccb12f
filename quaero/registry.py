"""Plugin discovery and the action registry.

Built-in and third-party plugins load the same way: through the ``quaero`` entry-point group (plus any
``plugin_modules`` named in the settings). A plugin that fails to import or to register is reported and
skipped; two plugins that claim one action stop start-up with an error naming both.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from quaero.api import hookspecs
from quaero.errors import PluginError
from quaero.api.actions import Action, JobWorker

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "quaero"


@dataclass
class PluginInfo:
    """One plugin as listed by ``quaero plugins``."""

    name: str
    version: str | None
    source: str
    actions: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "source": self.source,
                "actions": self.actions, "error": self.error}


class Registry:
    """Loaded plugins, their actions, and the workers by job type."""

    def __init__(self) -> None:
        self.plugins: dict[str, PluginInfo] = {}
        self.actions: dict[str, Action] = {}
        self.workers: dict[str, JobWorker] = {}

    def action(self, name: str) -> Action:
        """The action called ``name``, or a :class:`PluginError` listing the known ones."""
        try:
            return self.actions[name]
        except KeyError:
            known = ", ".join(sorted(self.actions)) or "none: no plugin provides actions"
            raise PluginError(f"unknown action {name!r} (known actions: {known})") from None

    def worker(self, job_type: str) -> JobWorker | None:
        return self.workers.get(job_type)

    def listing(self) -> list[dict[str, Any]]:
        return [info.as_dict() for info in sorted(self.plugins.values(), key=lambda p: p.name)]


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with Quaero's hookspecs added (before any plugin registers)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _candidates(plugin_modules: Iterable[str]) -> list[tuple[str, str, str | None, Any]]:
    """(name, source, version, loader) for every entry point and configured module."""
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        version = ep.dist.version if ep.dist is not None else None
        found.append((ep.name, f"entry point {ep.value}", version, ep.load))
    for dotted in plugin_modules:
        found.append((dotted, f"module {dotted}", None, lambda d=dotted: importlib.import_module(d)))
    return found


def load_plugins(
    *,
    only: Iterable[str] | None = None,
    plugin_modules: Iterable[str] = (),
    extra: Iterable[tuple[str, object]] = (),
    manager: pluggy.PluginManager | None = None,
) -> Registry:
    """Load plugins and collect their actions into a :class:`Registry`.

    ``only`` limits which plugins load (by name); ``extra`` registers in-process plugin objects (tests).
    """
    manager = manager or make_plugin_manager()
    registry = Registry()
    wanted = set(only) if only is not None else None
    for name, source, version, loader in _candidates(plugin_modules):
        if wanted is not None and name not in wanted:
            continue
        info = PluginInfo(name, version, source)
        registry.plugins[name] = info
        try:
            plugin: ModuleType | object = loader()
            manager.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not take the server down
            info.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s failed to load and is skipped: %s", name, info.error)
    for name, plugin in extra:
        registry.plugins[name] = PluginInfo(name, None, "in-process")
        manager.register(plugin, name=name)
    if wanted is not None:
        for name in wanted - set(registry.plugins):
            log.warning("plugin %s was asked for but is not installed", name)

    for impl in manager.hook.register_actions.get_hookimpls():
        info = registry.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name, None, "in-process"))
        collected: list[Action] = []
        try:
            impl.function(register=collected.append)
            for action in collected:
                if not isinstance(action, Action):
                    raise TypeError(f"register() takes an Action, got {type(action).__name__}")
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s failed to register its actions and is skipped: %s", impl.plugin_name, info.error)
            continue
        for action in collected:
            _add_action(registry, replace(action, plugin=impl.plugin_name))
            info.actions.append(action.name)
    return registry


def _add_action(registry: Registry, action: Action) -> None:
    existing = registry.actions.get(action.name)
    if existing is not None:
        raise PluginError(
            f"action {action.name!r} is registered by both plugin {existing.plugin!r} and plugin {action.plugin!r}; "
            f"uninstall one or limit plugins with QUAERO_PLUGINS"
        )
    for worker in action.workers:
        other = registry.workers.get(worker.worker_type)
        if other is not None and other is not worker:
            raise PluginError(
                f"job type {worker.worker_type!r} of action {action.name!r} (plugin {action.plugin!r}) "
                f"is already handled by another worker"
            )
    registry.actions[action.name] = action
    for worker in action.workers:
        registry.workers[worker.worker_type] = worker
