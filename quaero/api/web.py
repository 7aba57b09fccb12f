"""What a plugin adds to the web server: routes (pages or API endpoints) and templates.

In the ``register_web`` hook a plugin calls ``web.route(...)`` and ``web.templates(...)``. Its endpoints
take the request and a :class:`WebContext`. Templates are looked up in the user's ``templates_dir``
first, then in every plugin's directories, then in the core's: a plugin can add a page (extend
``base.html``) or a panel of results for its action's steps (``results/<action>.html``, included by the
job page with ``job``, ``stats`` and ``result`` in its context).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from quaero.api.context import PluginContext

ModelT = TypeVar("ModelT", bound=BaseModel)


class WebContext(PluginContext):
    """Given to a plugin's endpoints with each request."""

    @abstractmethod
    def execute(self, definition: dict[str, Any], *, trigger: str) -> str:
        """Validate a definition (as data: ``name``, ``steps``...) and start an execution of it now,
        without storing it; returns the execution's root job id. Raises :class:`quaero.api.DefinitionError`
        listing every problem."""

    @abstractmethod
    async def read_json(self, request: Request, model: type[ModelT]) -> ModelT:
        """The request's JSON body validated by ``model`` (a pydantic model); a body too large, not JSON,
        or not valid for the model is a 400 (413) whose ``detail`` names each field at fault."""

    @abstractmethod
    def render(self, request: Request, template: str, context: dict[str, Any] | None = None, *,
               status_code: int = 200) -> Response:
        """A page: ``template`` rendered with ``context`` and what the layout needs (navigation, CSRF)."""


Endpoint = Callable[[Request, WebContext], Awaitable[Response]]


class WebRegistry(ABC):
    """Given to the ``register_web`` hook."""

    @abstractmethod
    def route(self, path: str, endpoint: Endpoint, *, methods: Sequence[str] = ("GET",),
              name: str | None = None, body: type[BaseModel] | None = None) -> None:
        """Serve ``endpoint(request, ctx)`` at ``path`` (Starlette path syntax, e.g. ``/rss/{id:int}``).

        ``body`` is the pydantic model of its JSON body (read with ``ctx.read_json``): its schema joins the
        OpenAPI document's components under the model's class name, for the docstring's ``$ref``.

        The core's routes are matched first, so a plugin cannot shadow them. API endpoints (``/api/...``)
        answer JSON and their docstring's OpenAPI YAML (after a ``---`` line) joins ``/api/openapi.json``.
        The access token, CSRF and Origin checks of the core apply to plugin routes too.
        """

    @abstractmethod
    def templates(self, directory: str | Path) -> None:
        """Add a directory of Jinja templates (after the user's, before the core's)."""
