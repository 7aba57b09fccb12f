"""The settings API (JSON, admins only): every setting in effect and where its value came from.

Docstrings follow the convention of ``quaero/web/api.py``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero.web.http import runtime_of
from quaero.web.settings_view import settings_in_effect


async def get_settings(request: Request) -> JSONResponse:
    """Every setting in effect, with where its value came from; no secret in it.
    ---
    responses:
      200:
        description: "each setting by name: the value in effect (a derived default, such as the SQLite file used,
          rather than null), its source (default, file PATH, environment variable QUAERO_X or flag --x) and what it
          means; a password in a URL is masked and a secret setting says only whether it is set"
        content:
          application/json:
            schema:
              type: object
              additionalProperties:
                type: object
                required: [value, source]
                properties:
                  value: {nullable: true}
                  source: {type: string}
                  description: {type: string}
    """
    return JSONResponse(settings_in_effect(runtime_of(request)))


routes = [Route("/api/settings", get_settings, methods=["GET"])]
