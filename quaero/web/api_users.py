"""The accounts API (JSON): who is asking, and, for admins, the users and their API tokens.

Everything under ``/api/users`` is for admins only, reading included (the security middleware refuses
the others with 403). Docstrings follow the convention of ``quaero/web/api.py``.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero.stores.views import page
from quaero.web.auth import principal_of
from quaero.web.bodies import TokenInput, UserInput, UserUpdate
from quaero.web.http import int_path, page_params, read_model, runtime_of


async def me(request: Request) -> JSONResponse:
    """Who this request's credential belongs to, and their role.
    ---
    responses:
      200:
        description: the principal
        content: {application/json: {schema: {$ref: '#/components/schemas/Principal'}}}
    """
    principal = principal_of(request)
    assert principal is not None  # the middleware lets no request without one this far
    return JSONResponse({"kind": principal.kind, "role": principal.role, "name": principal.name})


async def list_users(request: Request) -> JSONResponse:
    """Every user with their role and how many tokens they hold.
    ---
    parameters: [{$ref: '#/components/parameters/limit'}, {$ref: '#/components/parameters/offset'}]
    responses:
      200:
        description: one page of users
        content: {application/json: {schema: {$ref: '#/components/schemas/UserPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    limit, offset = page_params(request)
    listing = await asyncio.to_thread(runtime_of(request).accounts.listing)
    return JSONResponse(page(listing[offset:offset + limit], len(listing), limit, offset))


async def create_user(request: Request) -> JSONResponse:
    """Create an account (the first one closes an open server: from then on every request signs in).
    ---
    requestBody:
      required: true
      content: {application/json: {schema: {$ref: '#/components/schemas/UserInput'}}}
    responses:
      201: {description: created, content: {application/json: {schema: {$ref: '#/components/schemas/User'}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      409: {$ref: '#/components/responses/Conflict'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    body = await read_model(request, UserInput)
    user = await asyncio.to_thread(runtime_of(request).accounts.add, body.name, body.role, body.password)
    return JSONResponse(user, status_code=201)


async def get_user(request: Request) -> JSONResponse:
    """One user.
    ---
    responses:
      200: {description: the user, content: {application/json: {schema: {$ref: '#/components/schemas/User'}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    return JSONResponse(await asyncio.to_thread(runtime_of(request).accounts.get, request.path_params["name"]))


async def update_user(request: Request) -> JSONResponse:
    """Change a user's role or password; a new password ends all their sessions.
    ---
    requestBody:
      required: true
      content: {application/json: {schema: {$ref: '#/components/schemas/UserUpdate'}}}
    responses:
      200: {description: changed, content: {application/json: {schema: {$ref: '#/components/schemas/User'}}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
      409: {$ref: '#/components/responses/Conflict'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    body = await read_model(request, UserUpdate)
    user = await asyncio.to_thread(runtime_of(request).accounts.update, request.path_params["name"],
                                   role=body.role, password=body.password)
    return JSONResponse(user)


async def delete_user(request: Request) -> JSONResponse:
    """Remove a user, their tokens and their sessions.
    ---
    responses:
      200:
        description: removed
        content: {application/json: {schema: {type: object, properties: {deleted: {type: string}}}}}
      404: {$ref: '#/components/responses/NotFound'}
      409: {$ref: '#/components/responses/Conflict'}
    """
    await asyncio.to_thread(runtime_of(request).accounts.remove, request.path_params["name"])
    return JSONResponse({"deleted": request.path_params["name"]})


async def list_tokens(request: Request) -> JSONResponse:
    """A user's API tokens: names, ids and last use; never the tokens themselves.
    ---
    parameters: [{$ref: '#/components/parameters/limit'}, {$ref: '#/components/parameters/offset'}]
    responses:
      200:
        description: one page of tokens
        content: {application/json: {schema: {$ref: '#/components/schemas/TokenPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    limit, offset = page_params(request)
    listing = await asyncio.to_thread(runtime_of(request).accounts.tokens, request.path_params["name"])
    return JSONResponse(page(listing[offset:offset + limit], len(listing), limit, offset))


async def create_token(request: Request) -> JSONResponse:
    """Make an API token for a user's scripts; the answer is the only time the token is shown.
    ---
    requestBody:
      required: true
      content: {application/json: {schema: {$ref: '#/components/schemas/TokenInput'}}}
    responses:
      201:
        description: "made: send it as 'Authorization: Bearer <token>'"
        content: {application/json: {schema: {$ref: '#/components/schemas/TokenCreated'}}}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
      413: {$ref: '#/components/responses/TooLarge'}
    """
    body = await read_model(request, TokenInput)
    info, token = await asyncio.to_thread(runtime_of(request).accounts.create_token, request.path_params["name"],
                                          body.name)
    return JSONResponse({**info, "token": token}, status_code=201, headers={"cache-control": "no-store"})


async def revoke_token(request: Request) -> JSONResponse:
    """Revoke one of a user's tokens: it stops working at once.
    ---
    responses:
      200:
        description: revoked
        content: {application/json: {schema: {type: object, properties: {revoked: {type: integer}}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    token_id = int_path(request, "id", "token")
    await asyncio.to_thread(runtime_of(request).accounts.revoke_token, token_id, request.path_params["name"])
    return JSONResponse({"revoked": token_id})


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/users", list_users, methods=["GET"]),
    Route("/api/users", create_user, methods=["POST"]),
    Route("/api/users/{name}", get_user, methods=["GET"]),
    Route("/api/users/{name}", update_user, methods=["PATCH"]),
    Route("/api/users/{name}", delete_user, methods=["DELETE"]),
    Route("/api/users/{name}/tokens", list_tokens, methods=["GET"]),
    Route("/api/users/{name}/tokens", create_token, methods=["POST"]),
    Route("/api/users/{name}/tokens/{id}", revoke_token, methods=["DELETE"]),
]
