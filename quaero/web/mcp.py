"""The knowledge base as an MCP server: over stdio (``quaero mcp``) and over Streamable HTTP (``/mcp``).

One low-level ``mcp`` SDK server per runtime offers the tools of ``quaero/web/mcp_tools.py``. Every message
asks who is calling: over HTTP, the principal the security middleware found for the POST that carried it
(a bearer token, a session, or everyone on an open local server, as on every other route); over stdio,
the local user, who holds the data directory's files and so is an admin. ``tools/list`` shows a caller the
tools their role may use, and ``tools/call`` refuses the others with a message saying why.

A tool that fails on purpose (an unknown document, a malformed query, a disabled definition) answers a
tool error with the ``QuaeroError``'s message; a bug answers an error id, its traceback goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from quaero import __version__
from quaero.errors import QuaeroError
from quaero.runtime import Runtime
from quaero.stores.accounts import Principal
from quaero.web.auth import PRINCIPAL, principal_of
from quaero.web.mcp_tools import TOOLS, Tool

log = logging.getLogger(__name__)

PATH = "/mcp"
#: Who calls over stdio: whoever started ``quaero mcp``, who can read and change the data directory anyway.
LOCAL = Principal("local", "admin")
#: Never met: the middleware lets no request reach ``/mcp`` without a principal. Read tools at most.
NOBODY = Principal("none", "viewer")
INSTRUCTIONS = ("Quaero is a self-hosted knowledge base. Use search to find documents (its query language is in "
                "the tool's description), get_document to read one, list_sources to see what is there.")


def caller(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """Who sent this message: the HTTP request's principal, or the local user on stdio."""
    if ctx.request is None:
        return LOCAL
    return principal_of(ctx.request) or NOBODY


def make_server(runtime: Runtime) -> Server[Any]:
    """An MCP server offering the tools this runtime can serve, to each caller those their role allows."""
    tools = {tool.name: tool for tool in TOOLS if tool.available(runtime)}

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        principal = caller(ctx)
        return types.ListToolsResult(tools=[tool.spec() for tool in tools.values() if tool.allows(principal)])

    async def call_tool(ctx: ServerRequestContext[Any, Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, _unknown(params.name))
        principal = caller(ctx)
        if not tool.allows(principal):
            who = f"user {principal.name!r}" if principal.name else "this credential"
            return failure(f"{tool.name} is for admins only: {who} has the {principal.role} role, which may use "
                           f"the read tools ({', '.join(t.name for t in tools.values() if t.allows(principal))})")
        return await call(runtime, tool, params.arguments or {})

    return Server("quaero", version=__version__, title="Quaero knowledge base", instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


def _unknown(name: str) -> str:
    if any(tool.name == name for tool in TOOLS):
        return (f"{name} needs a running server (quaero serve): call it on the server's {PATH} endpoint, "
                f"not on quaero mcp")
    return f"there is no tool {name!r}: tools/list lists this server's tools"


async def call(runtime: Runtime, tool: Tool, arguments: dict[str, Any]) -> types.CallToolResult:
    """Validate the arguments, run the tool in a thread (the stores block), and wrap its data or its error."""
    try:
        parsed = tool.arguments.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                             for error in exc.errors())
        return failure(f"invalid arguments for {tool.name}: {problems}")
    try:
        data = await asyncio.to_thread(tool.run, runtime, parsed)
    except QuaeroError as exc:
        return failure(exc.message)
    except Exception:
        error_id = secrets.token_hex(6)
        log.exception("MCP tool %s failed: error %s", tool.name, error_id)
        return failure(f"internal error {error_id}: the server's log has the details under this id")
    text = json.dumps(data, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=data)


def failure(message: str) -> types.CallToolResult:
    """A tool error the model can read and act on."""
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


class McpEndpoint:
    """The Streamable HTTP endpoint (an ASGI app at ``/mcp``) and the SDK session manager behind it.

    ``run()`` belongs in the app's lifespan: it holds the task group the sessions run in. The security
    middleware has checked the host, the origin and the credential already, so the SDK's own host checks
    stay off. Each session is bound to the principal that opened it: another credential presenting its id
    gets 404, as if it did not exist.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._running: list[StreamableHTTPSessionManager] = []

    @property
    def manager(self) -> StreamableHTTPSessionManager | None:
        """The session manager of the latest lifespan still running (an app may be started more than once)."""
        return self._running[-1] if self._running else None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The session manager's lifetime: a new one each time the app starts (a manager runs only once)."""
        manager = StreamableHTTPSessionManager(app=make_server(self.runtime), security_settings=None)
        async with manager.run():
            self._running.append(manager)
            try:
                yield
            finally:
                self._running.remove(manager)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal | None = scope.get(PRINCIPAL)
        if principal is not None:
            who = f"{principal.kind}:{principal.user_id if principal.user_id is not None else principal.name or ''}"
            token = AccessToken(token="", client_id=f"{who}:{principal.role}", scopes=[principal.role])
            scope = {**scope, "user": AuthenticatedUser(token)}
        manager = self.manager
        if manager is None:  # before the app's lifespan started it, or after it ended
            response = JSONResponse({"error": "the MCP endpoint is not running: the server is starting or stopping"},
                                    status_code=503, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        await manager.handle_request(scope, receive, send)


def serve_stdio(runtime: Runtime) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin (stdout carries protocol messages only)."""
    asyncio.run(_serve_stdio(make_server(runtime)))


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())

