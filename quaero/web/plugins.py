"""Plugins on the web server: the routes and templates their ``register_web`` hooks add, and the
:class:`~quaero.api.WebContext` their endpoints are called with."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from quaero.api.web import Endpoint, ModelT, WebContext, WebRegistry
from quaero.engine.contexts import BaseContext
from quaero.errors import QuaeroError
from quaero.runtime import Runtime
from quaero.stores.definitions import validate_definition
from quaero.web.http import read_model
from quaero.web.render import layout, page

log = logging.getLogger(__name__)


class PluginWeb(BaseContext, WebContext):
    """The context of one plugin's endpoints."""

    def __init__(self, runtime: Runtime, plugin: str) -> None:
        super().__init__(runtime.contexts, plugin)
        self._runtime = runtime

    def execute(self, definition: dict[str, Any], *, trigger: str) -> str:
        checked = validate_definition(definition, self._runtime.registry, origin=f"{self.plugin}: {trigger}")
        orchestrator = self._runtime.orchestrator
        if orchestrator is None:
            raise QuaeroError("this process runs no orchestrator (a worker): executions start on the server")
        return orchestrator.execute(checked, trigger=trigger)

    async def read_json(self, request: Request, model: type[ModelT]) -> ModelT:
        return await read_model(request, model)

    def render(self, request: Request, template: str, context: dict[str, Any] | None = None, *,
               status_code: int = 200) -> Response:
        return page(template, layout(request, "", **(context or {})), status_code=status_code)


class Registrations(WebRegistry):
    """Collects what one plugin's ``register_web`` hook adds."""

    def __init__(self, runtime: Runtime, plugin: str) -> None:
        self.context = PluginWeb(runtime, plugin)
        self.plugin = plugin
        self.routes: list[BaseRoute] = []
        self.template_dirs: list[Path] = []
        self.bodies: dict[str, type[BaseModel]] = {}

    def route(self, path: str, endpoint: Endpoint, *, methods: Sequence[str] = ("GET",),
              name: str | None = None, body: type[BaseModel] | None = None) -> None:
        if not path.startswith("/"):
            raise ValueError(f"plugin {self.plugin}: route path {path!r} must start with '/'")
        if body is not None:
            self.bodies[body.__name__] = body
        context = self.context

        async def handle(request: Request) -> Response:
            return await endpoint(request, context)

        handle.__name__ = getattr(endpoint, "__name__", "endpoint")
        handle.__doc__ = endpoint.__doc__  # the OpenAPI document reads the endpoint's docstring
        self.routes.append(Route(path, handle, methods=list(methods), name=name))

    def templates(self, directory: str | Path) -> None:
        path = Path(directory)
        if not path.is_dir():
            raise ValueError(f"plugin {self.plugin}: template directory {path} does not exist")
        self.template_dirs.append(path)


@dataclass
class PluginWebParts:
    """What every plugin's ``register_web`` added: routes, template directories, body models by name."""

    routes: list[BaseRoute] = field(default_factory=list)
    template_dirs: list[Path] = field(default_factory=list)
    bodies: dict[str, type[BaseModel]] = field(default_factory=dict)


def plugin_web(runtime: Runtime, taken: Iterable[str] = ()) -> PluginWebParts:
    """Every plugin's routes, template directories and body models; a plugin whose hook fails (or whose
    body model's name is already taken) is reported and skipped."""
    parts = PluginWebParts()
    names = set(taken)
    for name, function in runtime.registry.implementations("register_web"):
        registrations = Registrations(runtime, name)
        try:
            function(web=registrations)
            clash = sorted(names & set(registrations.bodies))
            if clash:
                raise ValueError(f"body model name {clash[0]!r} is taken by the core or another plugin; rename it")
        except Exception as exc:
            error = f"register_web failed: {type(exc).__name__}: {exc}"
            log.error("plugin %s: %s; its pages and endpoints are left out", name, error)
            info = runtime.registry.plugins.get(name)
            if info is not None:
                info.error = error
            continue
        parts.routes += registrations.routes
        parts.template_dirs += registrations.template_dirs
        parts.bodies.update(registrations.bodies)
        names |= set(registrations.bodies)
    return parts

