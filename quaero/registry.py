"""Plugin discovery and the action registry.

Built-in and third-party plugins load the same way: through the ``quaero`` entry-point group (plus any
``plugin_modules`` named in the settings). A plugin that fails to import, needs a plugin API this core
does not provide, or fails to register is reported and skipped; two plugins that claim one action stop
start-up with an error naming both.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any

import pluggy

from quaero.api import VERSION, hookspecs
from quaero.api.actions import Action, JobWorker
from quaero.api.embeddings import AnswerProvider, EmbeddingProvider
from quaero.errors import PluginError

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "quaero"


@dataclass
class PluginInfo:
    """One plugin as listed by ``quaero plugins``, ``GET /api/plugins`` and the Plugins page."""

    name: str
    version: str | None
    source: str
    actions: list[str] = field(default_factory=list)
    error: str | None = None
    #: The JSON schema of its settings model, once its ``startup`` hook gave one to ``configure``.
    settings_schema: dict[str, Any] | None = None
    #: Its settings as they may be shown (secrets as their ``${VAR}`` or masked).
    settings: dict[str, Any] | None = None

    def as_dict(self, registry: Registry | None = None) -> dict[str, Any]:
        """JSON-ready data; with the registry, each action with its options schema."""
        actions: list[Any] = list(self.actions)
        if registry is not None:
            actions = [registry.actions[name].describe() for name in self.actions if name in registry.actions]
        return {"name": self.name, "version": self.version, "source": self.source, "actions": actions,
                "error": self.error, "settings_schema": self.settings_schema, "settings": self.settings}


class Registry:
    """Loaded plugins, their actions, the workers by job type, and the hooks to call."""

    def __init__(self, manager: pluggy.PluginManager | None = None) -> None:
        self.manager = manager or make_plugin_manager()
        self.plugins: dict[str, PluginInfo] = {}
        self.actions: dict[str, Action] = {}
        self.workers: dict[str, JobWorker] = {}
        #: Actions left out because their plugin failed to start, with why.
        self.unavailable: dict[str, str] = {}
        #: Models for search by meaning, by name: (plugin, provider).
        self.embedders: dict[str, tuple[str, EmbeddingProvider]] = {}
        self.answerers: dict[str, tuple[str, AnswerProvider]] = {}

    @property
    def hook(self) -> Any:
        """The hooks of every loaded plugin (``registry.hook.jobs_deleted(...)``)."""
        return self.manager.hook

    def action(self, name: str) -> Action:
        """The action called ``name``, or a :class:`PluginError` saying why there is none."""
        try:
            return self.actions[name]
        except KeyError:
            raise PluginError(self.why_unknown(name)) from None

    def why_unknown(self, name: str) -> str:
        """Why there is no action ``name``: its plugin failed to start, a near miss, or what is known."""
        if name in self.unavailable:
            return f"action {name!r} is not available: {self.unavailable[name]}"
        close = difflib.get_close_matches(name, self.actions, n=1)
        known = ", ".join(sorted(self.actions)) or "none: no plugin provides actions"
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown action {name!r} ({hint}known actions: {known})"

    def worker(self, job_type: str) -> JobWorker | None:
        """The worker of a job type, if an installed plugin provides it."""
        return self.workers.get(job_type)

    def implementations(self, hook_name: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin name, function) of every plugin implementing a hook, to call each with its own arguments."""
        caller = getattr(self.manager.hook, hook_name)
        return [(impl.plugin_name, impl.function) for impl in caller.get_hookimpls()]

    def disable(self, plugin: str, error: str) -> None:
        """Leave a plugin's actions out from now on, and say why (its startup failed)."""
        info = self.plugins.setdefault(plugin, PluginInfo(plugin, None, "in-process"))
        info.error = error
        for name in info.actions:
            self.unavailable[name] = f"plugin {plugin} {error}"
            action = self.actions.pop(name, None)
            for worker in action.workers if action else ():
                self.workers.pop(worker.worker_type, None)
        if self.manager.get_plugin(plugin) is not None:
            self.manager.unregister(name=plugin)

    def listing(self) -> list[dict[str, Any]]:
        """Every plugin, by name, with its actions described."""
        return [info.as_dict(self) for info in sorted(self.plugins.values(), key=lambda p: p.name)]


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with Quaero's hookspecs added (before any plugin registers)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _candidates(plugin_modules: Iterable[str]) -> list[tuple[str, str, str | None, Any]]:
    """(name, source, version, loader) for every entry point and configured module."""
    found: list[tuple[str, str, str | None, Any]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        version = ep.dist.version if ep.dist is not None else None
        found.append((ep.name, f"entry point {ep.value}", version, ep.load))
    for dotted in plugin_modules:
        found.append((dotted, f"module {dotted}", None, lambda d=dotted: importlib.import_module(d)))
    return found


def api_mismatch(plugin: object) -> str | None:
    """Why a plugin's declared ``QUAERO_API`` is not served by this core's :data:`quaero.api.VERSION`."""
    wanted = getattr(plugin, "QUAERO_API", None)
    if wanted is None:
        return None
    try:
        major, minor = (int(part) for part in str(wanted).split("."))
    except ValueError:
        return f"QUAERO_API = {wanted!r} is not a version such as '1.0'"
    have_major, have_minor = (int(part) for part in VERSION.split("."))
    if major != have_major or minor > have_minor:
        return (f"it needs plugin API {wanted} and this Quaero provides {VERSION}; "
                f"{'upgrade Quaero' if (major, minor) > (have_major, have_minor) else 'upgrade the plugin'}")
    return None


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
    registry = Registry(manager)
    manager = registry.manager
    wanted = set(only) if only is not None else None
    for name, source, version, loader in _candidates(plugin_modules):
        if wanted is not None and name not in wanted:
            continue
        info = PluginInfo(name, version, source)
        registry.plugins[name] = info
        try:
            plugin: object = loader()
            mismatch = api_mismatch(plugin)
            if mismatch:
                raise PluginError(mismatch)
            manager.register(plugin, name=name)
        except Exception as exc:  # a broken plugin must not take the server down
            info.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s failed to load and is skipped: %s", name, info.error)
    for name, plugin in extra:
        registry.plugins[name] = PluginInfo(name, None, "in-process")
        mismatch = api_mismatch(plugin)
        if mismatch:
            registry.plugins[name].error = f"PluginError: {mismatch}"
            continue
        manager.register(plugin, name=name)
    if wanted is not None:
        for name in wanted - set(registry.plugins):
            log.warning("plugin %s was asked for but is not installed", name)

    for plugin_name, function in registry.implementations("register_actions"):
        info = registry.plugins.setdefault(plugin_name, PluginInfo(plugin_name, None, "in-process"))
        collected: list[Action] = []
        try:
            function(register=collected.append)
            for action in collected:
                if not isinstance(action, Action):
                    raise TypeError(f"register() takes an Action, got {type(action).__name__}")
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s failed to register its actions and is skipped: %s", plugin_name, info.error)
            continue
        for action in collected:
            _add_action(registry, replace(action, plugin=plugin_name))
            info.actions.append(action.name)
    _collect_providers(registry)
    return registry


def _collect_providers(registry: Registry) -> None:
    """The models each plugin offers through ``register_providers``; a plugin whose hook fails offers none."""
    for plugin_name, function in registry.implementations("register_providers"):
        collected: list[Any] = []
        try:
            function(register=collected.append)
            for provider in collected:
                if not isinstance(provider, EmbeddingProvider | AnswerProvider):
                    raise TypeError(f"register() takes an EmbeddingProvider or an AnswerProvider, "
                                    f"got {type(provider).__name__}")
        except Exception as exc:
            log.error("plugin %s failed to register its providers, which are left out: %s: %s",
                      plugin_name, type(exc).__name__, exc)
            continue
        for provider in collected:
            kind, table = (("embedding", registry.embedders) if isinstance(provider, EmbeddingProvider)
                           else ("answer", registry.answerers))
            existing = table.get(provider.name)
            if existing is not None:
                raise PluginError(f"{kind} provider {provider.name!r} is registered by both plugin {existing[0]!r} "
                                  f"and plugin {plugin_name!r}; uninstall one or limit plugins with "
                                  f"QUAERO_LOAD_PLUGINS")
            table[provider.name] = (plugin_name, provider)


def _add_action(registry: Registry, action: Action) -> None:
    existing = registry.actions.get(action.name)
    if existing is not None:
        raise PluginError(
            f"action {action.name!r} is registered by both plugin {existing.plugin!r} and plugin {action.plugin!r}; "
            f"uninstall one or limit plugins with QUAERO_LOAD_PLUGINS"
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
