"""Security basics for every route: the access token, cross-origin writes, and CSRF tokens for the pages.

Three rules, applied by one middleware so no view can forget them:

1. When ``access_token`` is set, every request but the login page, static files and ``/api/health``
   needs it: as ``Authorization: Bearer <token>`` (API clients), as ``?access_token=`` (WebSocket
   clients that cannot set headers), or as the session cookie the login page sets (browsers).
2. A state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` or ``Sec-Fetch-Site`` shows it
   came from another site is refused, API included: browsers send these on every cross-site write,
   while scripts and curl send none, so this stops cross-site forms without bothering API clients.
3. A state-changing request from the pages (any path outside ``/api/``) must also carry the CSRF token
   the page was rendered with (form field ``csrf_token`` or header ``X-CSRF-Token``), which matches the
   ``quaero_csrf`` cookie (the double-submit pattern). The cookie is HttpOnly and SameSite=Lax: a link
   from another site lands with it, so other open tabs keep their tokens; rule 2 refuses cross-site writes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quaero.web.http import MAX_BODY

CSRF_COOKIE = "quaero_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "quaero_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = ("/login", "/static/", "/api/health")
# No inline or foreign script may run, whatever a crawled page managed to put into one of ours; and no
# image loads from another host, so a crawled page cannot make the browser call one (tracking pixels,
# internal addresses): the document view shows remote images as links (quaero/web/sanitize.py).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY")]


def session_value(token: str) -> str:
    """What the session cookie holds: a digest of the token, so the cookie never holds the token itself."""
    return hashlib.sha256(b"quaero-session:" + token.encode("utf-8")).hexdigest()


def token_matches(given: str | None, token: str) -> bool:
    """Compare in constant time (as bytes: any text a client sends compares, none raises)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def csrf_token(request: HTTPConnection) -> str:
    """The CSRF token of this browser, made on its first page view (the middleware sets the cookie)."""
    return request.scope.setdefault("quaero.csrf", request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32))


def is_page(path: str) -> bool:
    """Whether ``path`` is one of the HTML pages (not the API, the metrics or the JSON event stream)."""
    return not (path.startswith("/api/") or path == "/metrics" or path == "/ws")


class SecurityMiddleware:
    """ASGI middleware applying the three rules above (a pure ASGI middleware, so WebSockets pass too)."""

    def __init__(self, app: ASGIApp, *, access_token: str | None) -> None:
        self.app = app
        self.access_token = access_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = HTTPConnection(scope)
        method = scope.get("method", "GET")
        refusal = self._authenticate(request, method) or self._check_origin(request, method)
        if refusal is None and method in UNSAFE_METHODS and is_page(scope["path"]):
            refusal, receive = await self._check_csrf(request, receive)
        if refusal is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "not authorised"})
                return
            await refusal(scope, receive, send)
            return
        # A WebSocket's frames go straight through: there are no response headers to add to them.
        await self.app(scope, receive, self._with_headers(request, send) if scope["type"] == "http" else send)

    # ------------------------------------------------------------------ rule 1: the access token
    def _authenticate(self, request: HTTPConnection, method: str) -> Response | None:
        token = self.access_token
        path = request.url.path
        if not token or any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS):
            return None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and token_matches(header[7:].strip(), token):
            return None
        if token_matches(request.query_params.get("access_token"), token):
            return None
        if token_matches(request.cookies.get(SESSION_COOKIE), session_value(token)):
            return None
        if request.scope["type"] == "http" and method == "GET" and is_page(path):
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        return JSONResponse({"error": "an access token is required",
                             "detail": "send 'Authorization: Bearer <token>' (or ?access_token= on /ws)"},
                            status_code=401, headers={"www-authenticate": "Bearer"})

    # ------------------------------------------------------------------ rule 2: no cross-site writes
    @staticmethod
    def _check_origin(request: HTTPConnection, method: str) -> Response | None:
        if request.scope["type"] == "http" and method not in UNSAFE_METHODS:
            return None
        headers: Headers = request.headers
        origin = headers.get("origin")
        host = headers.get("host", "")
        if origin and origin != "null" and urlsplit(origin).netloc == host:
            return None
        if origin or headers.get("sec-fetch-site") == "cross-site":
            return JSONResponse({"error": "cross-origin request refused",
                                 "detail": f"Origin {origin!r} is not this server ({host})"}, status_code=403)
        return None

    # ------------------------------------------------------------------ rule 3: CSRF tokens on page forms
    async def _check_csrf(self, request: HTTPConnection, receive: Receive) -> tuple[Response | None, Receive]:
        expected = request.cookies.get(CSRF_COOKIE)
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body, receive = await _buffer_body(receive)
            fields = parse_qs(body.decode("latin-1")).get(CSRF_FIELD)
            given = fields[0] if fields else None
        if expected and token_matches(given, expected):
            return None, receive
        return PlainTextResponse("The form's security token is missing or out of date: reload the page and try again.",
                                 status_code=403), receive

    @staticmethod
    def _with_headers(request: HTTPConnection, send: Send) -> Callable[[Message], Awaitable[None]]:
        """Add the security headers, and the CSRF cookie when a page made a token for a new browser."""

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                token = request.scope.get("quaero.csrf")
                if token and token != request.cookies.get(CSRF_COOKIE):
                    cookie = f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax"
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return sending


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (bounded) and give back a ``receive`` that replays it for the view."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY or not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
