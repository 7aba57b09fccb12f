"""Who sent a request, and whether their role lets them: the rules the security middleware applies.

A request proves who sent it with one of:

1. ``Authorization: Bearer <token>``: a user's API token (``qk_...``, ``quaero users token``), or the
   ``access_token`` setting (an admin with no user, for the scripts of setups older than accounts);
2. ``?access_token=<token>``, the same tokens, only on ``/ws`` and ``/api/events``: WebSocket and
   EventSource clients cannot set headers. :func:`take_query_token` removes it from the request before
   anything else sees it, so that no log line (uvicorn's access log included) ever holds it;
3. the session cookie a browser gets at ``/login``.

With no account, no ``access_token`` and a loopback address to listen on, every request is an admin's,
as before accounts existed; ``quaero serve`` refuses to listen on any other address in that state
(:func:`unsafe_bind`).

Roles: a ``viewer`` may read everything (GET, HEAD and OPTIONS, the event streams included) and sign in
and out; an ``admin`` may do everything, and alone may see the users and their tokens. The MCP endpoint
(``/mcp``) takes every signed-in role whatever the method, since MCP sends each message as a POST: its
tools decide by role which of them a caller sees and may call (``quaero/web/mcp.py``).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlencode

from starlette.requests import HTTPConnection
from starlette.types import Scope

from quaero.runtime import Runtime
from quaero.settings import Settings
from quaero.stores.accounts import TOKEN_PREFIX, Principal

SESSION_COOKIE = "quaero_session"
QUERY_TOKEN = "access_token"
#: Where ``?access_token=`` is accepted: the clients that cannot send a header.
QUERY_TOKEN_PATHS = frozenset({"/ws", "/api/events"})
#: Paths anyone may open: the sign-in page, the static files, the liveness probe, and the user guide (the
#: README, public anyway) with the robots.txt that lets crawlers read only it.
OPEN_PATHS = ("/login", "/static/", "/api/health", "/guide", "/guide/", "/robots.txt")
#: Paths only an admin may open, reading included.
ADMIN_PATHS = ("/api/users", "/users", "/api/settings")
#: Writes every signed-in role may make: signing in and out.
SELF_SERVICE = frozenset({"/login", "/logout"})
#: Where the tools, not the method, decide what a role may do: the MCP endpoint.
TOOL_PATHS = frozenset({"/mcp"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRINCIPAL = "quaero.principal"
OPEN = Principal("open", "admin")
ACCESS_TOKEN = Principal("access_token", "admin")


def token_matches(given: str | None, token: str) -> bool:
    """Compare in constant time (as bytes: any text a client sends compares, none raises)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def principal_of(connection: HTTPConnection) -> Principal | None:
    """Who sent this request (``None``: nobody signed in, on a path anyone may open)."""
    return connection.scope.get(PRINCIPAL)


def under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or below one (a prefix ending in ``/`` matches below only)."""
    return any(path == p or path.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


def take_query_token(scope: Scope) -> str | None:
    """Remove ``access_token`` from the request's query string and return it (``None`` when absent)."""
    raw: bytes = scope.get("query_string", b"")
    if QUERY_TOKEN.encode() not in raw:
        return None
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    given = [value for name, value in pairs if name == QUERY_TOKEN]
    if not given:
        return None
    # The same dict the server logs from: the token is gone from its access log line too.
    scope["query_string"] = urlencode([(name, value) for name, value in pairs if name != QUERY_TOKEN]).encode()
    return given[-1]


def unsafe_bind(settings: Settings, runtime_has_users: bool) -> str | None:
    """Why serving with these settings would open everything to the network (``None`` when it would not)."""
    if settings.loopback_bind or settings.access_token or runtime_has_users:
        return None
    return (f"refusing to listen on {settings.host}: with no accounts and no access token, anyone who can reach "
            f"it could do anything. Add an admin first (quaero users add NAME --role admin), or set access_token "
            f"(QUAERO_ACCESS_TOKEN), or listen on 127.0.0.1 only (--host 127.0.0.1)")


def hosts_warning(settings: Settings) -> str | None:
    """What to tell whoever listens on every address with the default allowed hosts (``None``: nothing)."""
    if settings.allowed_hosts is not None or settings.host.strip("[]") not in ("0.0.0.0", "::", ""):
        return None
    return (f"listening on every address ({settings.host}) but answering only requests for "
            f"{', '.join(settings.resolved_allowed_hosts)}: set allowed_hosts (QUAERO_ALLOWED_HOSTS) to the names "
            f"and addresses clients use to reach this server")


class Authenticator:
    """Finds the principal of a request from its credentials (called in a thread: it reads the database)."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime

    def required(self) -> bool:
        """Whether requests must prove who sent them (else everyone is an admin, as before accounts)."""
        settings = self.settings
        return bool(settings.access_token) or not settings.loopback_bind or self.runtime.accounts.has_users()

    def identify(self, bearer: str | None, query_token: str | None, session: str | None) -> Principal | None:
        """The principal the first valid credential names, or ``None``."""
        for token in (bearer, query_token):
            if token:
                principal = self._token(token)
                if principal is not None:
                    return principal
        if session:
            settings = self.settings
            principal = self.runtime.accounts.session_principal(session, idle=settings.session_idle_timeout,
                                                                max_age=settings.session_max_age)
            # A session opened with the access token ends when the setting is removed.
            if principal is not None and (principal.kind != "access_token" or settings.access_token):
                return principal
        return None

    def _token(self, token: str) -> Principal | None:
        if token.startswith(TOKEN_PREFIX):
            return self.runtime.accounts.token_principal(token)
        legacy = self.settings.access_token
        return ACCESS_TOKEN if legacy and token_matches(token, legacy) else None


def refusal(principal: Principal, method: str, path: str) -> str | None:
    """Why ``principal``'s role does not allow this request (``None`` when it does)."""
    if principal.is_admin:
        return None
    if under(path, ADMIN_PATHS):
        return "only an admin may see the users, their tokens and the settings"
    if method not in SAFE_METHODS and path not in SELF_SERVICE and path not in TOOL_PATHS:
        who = f"user {principal.name!r}" if principal.name else "this credential"
        return f"{who} has the {principal.role} role, which can read but not change anything: an admin can"
    return None
