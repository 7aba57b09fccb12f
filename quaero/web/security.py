"""Security basics for every route: allowed hosts, who is asking, cross-origin writes, CSRF on the pages.

Five rules, applied by one middleware in this order, so that no view can forget them:

1. The ``Host`` header must name this server (setting ``allowed_hosts``: the loopback names by default),
   else 400. A page elsewhere that rebinds its own name to 127.0.0.1 (DNS rebinding) gets no further.
2. Unless the server is open (no accounts, no access token, a loopback address), every request but the
   sign-in page, static files and ``/api/health`` must show a credential (``quaero/web/auth.py``): without
   one an API call is 401 and a page sends to ``/login``.
3. The credential's role must allow the request: a viewer reads, an admin also writes (403 otherwise);
   on ``/mcp`` the tools decide (``quaero/web/mcp.py``).
4. A state-changing request (POST, PUT, PATCH, DELETE) and a WebSocket whose ``Origin`` is not this
   allowed host (or whose ``Sec-Fetch-Site`` says cross-site) is refused, API included: browsers send these
   on every cross-site write, while scripts and curl send none, so this stops cross-site forms without
   bothering API clients.
5. A state-changing request from the pages (any path outside ``/api/``) must also carry the CSRF token
   the page was rendered with (form field ``csrf_token`` or header ``X-CSRF-Token``), which matches the
   ``quaero_csrf`` cookie (the double-submit pattern). The cookie is HttpOnly and SameSite=Lax: a link
   from another site lands with it, so other open tabs keep their tokens; rule 4 refuses cross-site writes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qs, quote, urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quaero.runtime import Runtime
from quaero.settings import Settings
from quaero.web.auth import (
    OPEN,
    OPEN_PATHS,
    PRINCIPAL,
    QUERY_TOKEN_PATHS,
    SESSION_COOKIE,
    Authenticator,
    refusal,
    take_query_token,
    token_matches,
    under,
)
from quaero.web.http import MAX_BODY

__all__ = ["SESSION_COOKIE", "SecurityMiddleware", "csrf_token", "host_allowed", "hostname_of", "is_page",
           "token_matches"]

CSRF_COOKIE = "quaero_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# No inline or foreign script may run, whatever a crawled page managed to put into one of ours; and no
# image loads from another host, so a crawled page cannot make the browser call one (tracking pixels,
# internal addresses): the document view shows remote images as links (quaero/web/sanitize.py).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY")]
#: Answers a refused request: JSON ``{"error", "detail"}`` on the API, a page on the pages (``web/app.py``).
Refuse = Callable[[HTTPConnection, int, str, object, Mapping[str, str] | None], Response]


def csrf_token(request: HTTPConnection) -> str:
    """The CSRF token of this browser, made on its first page view (the middleware sets the cookie)."""
    return request.scope.setdefault("quaero.csrf", request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32))


def is_page(path: str) -> bool:
    """Whether ``path`` is one of the HTML pages (not the API, the metrics, the JSON event stream or MCP)."""
    return not (path.startswith("/api/") or path in ("/metrics", "/ws", "/mcp"))


def hostname_of(host: str) -> str:
    """The name in a ``Host`` header or an origin's netloc, without port, IPv6 brackets or final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Whether a host name is in the allow-list: ``*``, the name itself, or ``.domain`` above it."""
    if not name:
        return False
    for entry in allowed:
        if entry == "*" or entry == name or (entry.startswith(".") and (name.endswith(entry) or name == entry[1:])):
            return True
    return False


class SecurityMiddleware:
    """ASGI middleware applying the five rules above (a pure ASGI middleware, so WebSockets pass too)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, runtime: Runtime, refuse: Refuse) -> None:
        self.app = app
        self.allowed_hosts = settings.resolved_allowed_hosts
        self.auth = Authenticator(settings, runtime)
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query_token = take_query_token(scope)  # first: whatever happens next, no log line holds it
        request = HTTPConnection(scope)
        method = scope.get("method", "GET")
        refused = (self._check_host(request) or await self._authenticate(request, method, query_token)
                   or self._check_origin(request, method) or self._check_role(request, method))
        if refused is None and method in UNSAFE_METHODS and is_page(scope["path"]):
            refused, receive = await self._check_csrf(request, receive)
        if refused is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "not authorised"})
                return
            await refused(scope, receive, self._with_headers(request, send))
            return
        # A WebSocket's frames go straight through: there are no response headers to add to them.
        await self.app(scope, receive, self._with_headers(request, send) if scope["type"] == "http" else send)

    def _refuse(self, request: HTTPConnection, status: int, error: str, detail: str,
                headers: Mapping[str, str] | None) -> Response:
        """The refusal's answer; a page says the detail too (its error page shows no text detail)."""
        if is_page(request.url.path):
            return self.refuse(request, status, f"{error}: {detail}", None, headers)
        return self.refuse(request, status, error, detail, headers)

    # ------------------------------------------------------------------ rule 1: allowed hosts
    def _check_host(self, request: HTTPConnection) -> Response | None:
        host = request.headers.get("host", "")
        if host_allowed(hostname_of(host), self.allowed_hosts):
            return None
        return self._refuse(request, 400, f"this server does not answer to the host name {host[:100]!r}",
                            "add it to the allowed_hosts setting (QUAERO_ALLOWED_HOSTS, comma-separated; * for any) "
                            "if it is a name of this server", None)

    # ------------------------------------------------------------------ rules 2 and 3: who, and their role
    async def _authenticate(self, request: HTTPConnection, method: str, query_token: str | None) -> Response | None:
        path = request.url.path
        if path.startswith("/static/"):
            return None
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        allowed_query = query_token if path in QUERY_TOKEN_PATHS else None
        session = request.cookies.get(SESSION_COOKIE)
        principal = None
        if bearer or allowed_query or session:
            principal = await asyncio.to_thread(self.auth.identify, bearer, allowed_query, session)
        if principal is None and not await asyncio.to_thread(self.auth.required):
            principal = OPEN
        if principal is not None:
            request.scope[PRINCIPAL] = principal
            return None
        if under(path, OPEN_PATHS):
            return None
        if request.scope["type"] == "http" and method == "GET" and is_page(path):
            return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        if query_token is not None and allowed_query is None:
            detail = "?access_token= is accepted only on /ws and /api/events: send 'Authorization: Bearer <token>'"
        elif bearer or allowed_query:
            detail = "the token is not valid (revoked, or mistyped)"
        else:
            detail = ("send 'Authorization: Bearer <token>' (an API token from 'quaero users token', or the "
                      "access_token setting), or sign in at /login")
        return self._refuse(request, 401, "sign in first: this server needs a credential", detail,
                            {"www-authenticate": "Bearer"})

    def _check_role(self, request: HTTPConnection, method: str) -> Response | None:
        principal = request.scope.get(PRINCIPAL)
        reason = refusal(principal, method, request.url.path) if principal is not None else None
        if reason is None:
            return None
        return self._refuse(request, 403, "your role does not allow this", reason, None)

    # ------------------------------------------------------------------ rule 4: no cross-site writes
    def _check_origin(self, request: HTTPConnection, method: str) -> Response | None:
        if request.scope["type"] == "http" and method not in UNSAFE_METHODS:
            return None
        headers: Headers = request.headers
        origin = headers.get("origin")
        host = headers.get("host", "")
        if origin and origin != "null":
            try:
                netloc = urlsplit(origin).netloc
            except ValueError:
                netloc = ""
            # The same server, by a name it answers to (rule 1 checked the Host; the Origin must match both).
            if netloc == host and host_allowed(hostname_of(netloc), self.allowed_hosts):
                return None
        if origin or headers.get("sec-fetch-site") == "cross-site":
            return self._refuse(request, 403, "cross-origin request refused",
                                f"Origin {origin!r} is not this server ({host})", None)
        return None

    # ------------------------------------------------------------------ rule 5: CSRF tokens on page forms
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
                    secure = "; Secure" if request.url.scheme == "https" else ""
                    cookie = f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"
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
