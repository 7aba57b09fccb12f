"""The account pages: signing in and out, and the users page where admins manage users and API tokens.

Signing in checks the throttle first (``quaero/stores/login_throttle.py``): a user name or a client address
with too many recent failures is answered 429 with ``Retry-After``, without looking at the password. A
successful sign-in ends the browser's previous session, if any, and opens a new one: the cookie holds a
random id (HttpOnly, SameSite=Lax, Secure over https) and the database its hash.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from quaero.errors import QuaeroError
from quaero.stores.accounts import ROLES, Principal
from quaero.stores.login_throttle import throttle_keys
from quaero.web.auth import SESSION_COOKIE, principal_of, token_matches
from quaero.web.http import int_path, runtime_of
from quaero.web.pages import _flash, _form, _see
from quaero.web.render import layout, page

FLASH = {"user-added": "The user was added.", "user-removed": "The user was removed.",
         "token-revoked": "The token was revoked: it no longer works."}


def _status(exc: QuaeroError) -> int:
    """A refusal's status: a plain :class:`QuaeroError` is the request's fault (400), as the app's handler has it."""
    return 400 if exc.status_code == 500 and type(exc) is QuaeroError else exc.status_code


def _target(request: Request) -> str:
    """Where to go after signing in: a path of this server, never another site (``//evil.example``)."""
    target = request.query_params.get("next", "/")
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


async def _login_page(request: Request, *, error: str | None = None, name: str = "", status_code: int = 200,
                      headers: dict[str, str] | None = None) -> HTMLResponse:
    runtime = runtime_of(request)
    principal = principal_of(request)
    response = page("login.html", layout(
        request, "", title="Sign in", next=_target(request), error=error, name=name,
        open=principal is not None and principal.kind == "open",
        accounts=await asyncio.to_thread(runtime.accounts.has_users),
        token_login=bool(runtime.settings.access_token)), status_code=status_code)
    response.headers.update(headers or {})
    return response


async def login(request: Request) -> Response:
    """The sign-in form, and signing in with a user name and password (or the ``access_token`` setting)."""
    if request.method == "GET":
        return await _login_page(request)
    runtime = runtime_of(request)
    settings = runtime.settings
    form = await _form(request)
    name, password, token = form.get("name", "").strip(), form.get("password", ""), form.get("token", "")
    address = request.client.host if request.client else "unknown"
    name_key, address_key = throttle_keys(name, address)
    # The access token has no user name: its tries count against the address only.
    keys = (name_key, address_key) if name else (address_key,)
    throttle = runtime.login_throttle
    wait = await asyncio.to_thread(throttle.wait, keys)
    if wait > 0:
        return await _throttled(request, wait, name)
    principal: Principal | None = None
    if name:
        principal = await asyncio.to_thread(runtime.accounts.authenticate, name, password)
    elif token and settings.access_token and token_matches(token, settings.access_token):
        principal = Principal("access_token", "admin")
    if principal is None:
        wait = await asyncio.to_thread(throttle.failed, keys)
        if wait > 0:
            return await _throttled(request, wait, name)
        what = "That user name and password do not match." if name or not token else "That token is not right."
        return await _login_page(request, error=what, name=name, status_code=401)
    if name:
        await asyncio.to_thread(throttle.succeeded, name_key)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await asyncio.to_thread(runtime.accounts.end_session, previous)
    session = await asyncio.to_thread(runtime.accounts.open_session, principal.user_id,
                                      idle=settings.session_idle_timeout, max_age=settings.session_max_age)
    response = RedirectResponse(_target(request), status_code=303)
    # Lax, not Strict: a link from another site (a chat, a mail) opens the page signed in.
    response.set_cookie(SESSION_COOKIE, session, max_age=int(settings.session_max_age), httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


async def _throttled(request: Request, wait: float, name: str) -> HTMLResponse:
    seconds = math.ceil(wait)
    return await _login_page(request, name=name, status_code=429, headers={"retry-after": str(seconds)},
                             error=f"Too many failed sign-ins: try again in {seconds} s.")


async def logout(request: Request) -> Response:
    """End this browser's session (the form in the page header)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        await asyncio.to_thread(runtime_of(request).accounts.end_session, session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


# ---------------------------------------------------------------------------------------------- users (admins)
async def _users_page(request: Request, *, error: str | None = None, created: dict[str, Any] | None = None,
                      status_code: int = 200) -> HTMLResponse:
    accounts = runtime_of(request).accounts
    users = await asyncio.to_thread(accounts.listing)
    tokens = await asyncio.to_thread(accounts.tokens)
    response = page("users.html", layout(request, "/users", title="Users", users=users, tokens=tokens, roles=ROLES,
                                         error=error, created=created,
                                         flash=FLASH.get(request.query_params.get("done", "")) or _flash(request)),
                    status_code=status_code)
    if created is not None:
        response.headers["cache-control"] = "no-store"  # the token is on this page, once
    return response


async def users(request: Request) -> Response:
    return await _users_page(request)


async def user_create(request: Request) -> Response:
    form = await _form(request)
    accounts = runtime_of(request).accounts
    first = not await asyncio.to_thread(accounts.has_users)
    try:
        await asyncio.to_thread(accounts.add, form.get("name", "").strip(), form.get("role", ""),
                                form.get("password", ""))
    except QuaeroError as exc:
        return await _users_page(request, error=exc.message, status_code=_status(exc))
    # The first account closes an open server: from now on this browser must sign in too.
    return _see("/login?next=/users" if first else "/users", "user-added")


async def user_remove(request: Request) -> Response:
    try:
        await asyncio.to_thread(runtime_of(request).accounts.remove, request.path_params["name"])
    except QuaeroError as exc:
        return await _users_page(request, error=exc.message, status_code=_status(exc))
    return _see("/users", "user-removed")


async def token_create(request: Request) -> Response:
    form = await _form(request)
    try:
        info, token = await asyncio.to_thread(runtime_of(request).accounts.create_token, form.get("user", ""),
                                              form.get("name", ""))
    except QuaeroError as exc:
        return await _users_page(request, error=exc.message, status_code=_status(exc))
    return await _users_page(request, created={**info, "token": token})


async def token_revoke(request: Request) -> Response:
    await asyncio.to_thread(runtime_of(request).accounts.revoke_token, int_path(request, "id", "token"))
    return _see("/users", "token-revoked")


routes = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/users", users),
    Route("/users", user_create, methods=["POST"]),
    Route("/users/tokens", token_create, methods=["POST"]),
    Route("/users/tokens/{id}/revoke", token_revoke, methods=["POST"]),
    Route("/users/{name}/remove", user_remove, methods=["POST"]),
]
