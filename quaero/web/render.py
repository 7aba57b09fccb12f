"""Rendering pages and fragments: each app's Jinja2 environment, the layout's context, and block rendering.

:func:`make_templates` builds an app's environment (``app.state.templates``): a template is looked up in
the user's ``templates_dir``, then in each plugin's directories in plugin order, then in the core's
(``templates/``, installed as ``quaero_templates``), so that the first two can override a core template by
its file name. The helpers find the environment through the request in the page's context.

A page template wraps each part that changes live in a ``{% block %}`` whose outer element has an id.
The full page renders the whole template; the live stream renders only the changed blocks, from the same
context, with ``oob=True`` so that htmx swaps each one into place by its id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse

import quaero_templates
from quaero.errors import ConfigError
from quaero.settings import Settings
from quaero.web.auth import principal_of
from quaero.web.security import csrf_token

TEMPLATES: Path = quaero_templates.DIRECTORY
STATIC = Path(__file__).parent / "static"

NAV = (
    ("/", "Dashboard"), ("/definitions", "Definitions"), ("/jobs", "Jobs"), ("/documents", "Documents"),
    ("/search", "Search"), ("/queue", "Queue"), ("/plugins", "Plugins"), ("/settings", "Settings"),
    ("/guide/", "Guide"),
)


def ago(value: str | float | None) -> str:
    """'3 min ago' for an ISO timestamp or epoch seconds (the exact time goes in the title attribute)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        from datetime import datetime

        value = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    seconds = max(0.0, time.time() - value)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def duration(seconds: float | None) -> str:
    """A short human duration: '850 ms', '12.3 s', '4 min 05 s'."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def figure(value: Any) -> str:
    """A job's figure as a reader wants it: ``robots 3, http_404 1`` for a table of counts, items joined
    by commas for a list, ``yes``/``no``, fractions with at most two decimals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value == value else "—"
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{key} {figure(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(figure(item) for item in value) or "none"
    return str(value)


def make_templates(settings: Settings, plugin_dirs: Sequence[Path] = ()) -> jinja2.Environment:
    """An app's Jinja environment: templates from ``settings.templates_dir``, then ``plugin_dirs`` in order,
    then the core's. A ``templates_dir`` that is not a directory is a :class:`ConfigError`."""
    user_dir = settings.templates_dir
    if user_dir is not None and not Path(user_dir).is_dir():
        raise ConfigError(f"templates_dir {user_dir} is not a directory")
    searched = [*([Path(user_dir)] if user_dir is not None else []), *plugin_dirs, TEMPLATES]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(directory) for directory in searched]),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["ago"] = ago
    env.filters["duration"] = duration
    env.filters["figure"] = figure
    versions = {p.name: int(p.stat().st_mtime) for p in STATIC.rglob("*") if p.is_file()}
    env.globals["static"] = lambda name: f"/static/{name}?v={versions.get(Path(name).name, 0)}"
    # The shared macros as a global, so that a block rendered on its own (a live fragment) can call them.
    env.globals["ui"] = env.get_template("macros.html").module
    return env


def templates_of(connection: HTTPConnection) -> jinja2.Environment:
    """The Jinja environment of the app serving a request or a WebSocket."""
    templates: jinja2.Environment = connection.app.state.templates
    return templates


@dataclass(frozen=True)
class Page:
    """One page of a paginated list: what the pager shows and links to."""

    total: int
    limit: int
    offset: int

    @property
    def first(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.offset + self.limit, self.total)

    @property
    def prev_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None


def url_maker(path: str, params: dict[str, Any]) -> Any:
    """A function the templates call as ``url(offset=50)``: ``path`` with ``params`` updated, empty ones dropped."""

    def url(**changes: Any) -> str:
        merged = {k: v for k, v in {**params, **changes}.items()
                  if v not in (None, "") and not (k == "offset" and v == 0)}
        return f"{path}?{urlencode(merged)}" if merged else path

    return url


def layout(request: HTTPConnection, section: str, **context: Any) -> dict[str, Any]:
    """What every page's layout needs, plus the page's own context."""
    return {"request": request, "nav": NAV, "section": section, "flash": None, "live_url": None, "oob": False,
            **viewer_context(request), **context}


def viewer_context(connection: HTTPConnection) -> dict[str, Any]:
    """What a page and its live blocks need to know of who looks: their CSRF token, who they are, and
    ``read_only`` (hide the buttons that would change something: a viewer's, or nobody's yet)."""
    principal = principal_of(connection)
    return {"csrf": csrf_token(connection), "user": principal,
            "read_only": principal is None or not principal.is_admin}


def page(template: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    """Render a whole page with the environment of the app serving ``context["request"]``."""
    html = templates_of(context["request"]).get_template(template).render(context)
    return HTMLResponse(html, status_code=status_code)


def blocks(template: str, names: list[str], context: dict[str, Any], *, oob: bool = True,
           templates: jinja2.Environment | None = None) -> str:
    """Render only the named blocks of a page template; ``oob`` marks them for out-of-band swapping.

    ``templates`` is the environment to use; without it, that of the app serving ``context["request"]``.
    """
    compiled = (templates or templates_of(context["request"])).get_template(template)
    ctx = compiled.new_context({**context, "oob": oob})
    return "".join("".join(compiled.blocks[name](ctx)) for name in names)


def fragment(template: str, names: list[str], context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    """Blocks of a page as an HTTP response (for htmx requests that replace part of a page); ``context``
    holds the ``request``, as a page's does."""
    return HTMLResponse(blocks(template, names, context, oob=False), status_code=status_code)
