"""``/mcp``: the SDK's Streamable HTTP client against the app served by uvicorn on 127.0.0.1.

The tools, not the HTTP method, decide what a role may do: an admin's token runs a definition, a viewer's
sees and calls only the read tools; a request without a credential never reaches them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

from quaero.stores.documents import DocumentInput

DEFINITION = "id: fan\nname: Fan out\nsteps:\n  - {name: a, action: test_fanout, config: {count: 3}}\n"
READ_TOOLS = {"search", "get_document", "list_sources"}
ADMIN_TOOLS = {"run_definition", "job_status"}


@pytest.fixture
def knowledge(runtime):
    """Two documents and one definition in the test's runtime."""
    runtime.documents.upsert(DocumentInput("web", "https://a.test/python", "Python tutorial", "Learn python today."))
    runtime.documents.upsert(DocumentInput("web", "https://a.test/snakes", "Snakes", "A python is a large snake."))
    runtime.definitions.create(DEFINITION)
    return runtime


@pytest.fixture
def tokens(knowledge):
    """API tokens of an admin and of a viewer (once a user exists, every request needs a credential)."""
    knowledge.accounts.add("ada", "admin", "admin-password-1")
    knowledge.accounts.add("vic", "viewer", "viewer-password-1")
    return {name: knowledge.accounts.create_token(name, "mcp client")[1] for name in ("ada", "vic")}


def with_session(url: str, token: str | None, work: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Run ``work`` in an initialized MCP session on ``url``, sending ``token`` as the bearer credential."""
    async def main() -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http, \
                streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)

    return asyncio.run(main())


async def tool_names(session: ClientSession) -> set[str]:
    return {tool.name for tool in (await session.list_tools()).tools}


def test_without_accounts_a_local_client_may_use_every_tool(knowledge, live_server):
    """An open server (no account, no access token, loopback) treats everyone as an admin, as its pages do."""
    async def work(session: ClientSession) -> None:
        assert await tool_names(session) >= READ_TOOLS | ADMIN_TOOLS
        found = (await session.call_tool("search", {"query": "python", "limit": 1})).structured_content
        assert found["total"] == 2 and len(found["items"]) == 1 and found["items"][0]["title"] == "Python tutorial"

    with_session(live_server.url, None, work)


def test_an_admin_token_runs_a_definition_and_follows_it(tokens, live_server):
    async def work(session: ClientSession) -> dict:
        assert await tool_names(session) >= READ_TOOLS | ADMIN_TOOLS
        [hit] = (await session.call_tool("search", {"query": "tutorial"})).structured_content["items"]
        doc = (await session.call_tool("get_document", {"id": hit["id"]})).structured_content
        assert doc["title"] == "Python tutorial" and doc["markdown"] == "Learn python today."
        sources = (await session.call_tool("list_sources", {})).structured_content
        assert sources["definitions"] == [{"id": "fan", "name": "Fan out", "enabled": True}]

        started = await session.call_tool("run_definition", {"name_or_id": "Fan out"})  # by name, or by id
        assert not started.is_error, started.content[0].text
        job_id = started.structured_content["job_id"]
        assert json.loads(started.content[0].text)["definition_id"] == "fan"
        for _ in range(300):
            status = (await session.call_tool("job_status", {"job_id": job_id})).structured_content
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            await asyncio.sleep(0.1)
        unknown = await session.call_tool("run_definition", {"name_or_id": "nope"})
        assert unknown.is_error and "no job definition has the id or name 'nope'" in unknown.content[0].text
        return status

    status = with_session(live_server.url, tokens["ada"], work)
    assert status["status"] == "completed" and status["type"] == "parent" and status["definition_id"] == "fan"
    assert live_server.runtime.jobs.get(status["id"]).status == "completed"


def test_a_viewer_token_gets_the_read_tools_only(tokens, live_server):
    async def work(session: ClientSession) -> None:
        names = await tool_names(session)
        assert names >= READ_TOOLS and not names & ADMIN_TOOLS
        found = (await session.call_tool("search", {"query": "snake"})).structured_content
        assert [item["title"] for item in found["items"]] == ["Snakes"]
        refused = await session.call_tool("run_definition", {"name_or_id": "fan"})
        assert refused.is_error
        assert refused.content[0].text.startswith("run_definition is for admins only: user 'vic' has the viewer role")
        assert (await session.call_tool("job_status", {"job_id": "x"})).is_error

    with_session(live_server.url, tokens["vic"], work)
    assert live_server.runtime.jobs.executions(definition_id="fan") == []


def test_no_credential_is_refused_and_a_session_belongs_to_its_credential(tokens, live_server):
    url = f"{live_server.url}/mcp"
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    opening = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": HANDSHAKE_PROTOCOL_VERSIONS[-1], "capabilities": {},
                          "clientInfo": {"name": "raw", "version": "0"}}}
    with httpx2.Client(timeout=30) as http:
        anonymous = http.post(url, json=opening, headers=headers)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["error"] == "sign in first: this server needs a credential"
        admin = http.post(url, json=opening, headers={**headers, "authorization": f"Bearer {tokens['ada']}"})
        assert admin.status_code == 200
        session_id = admin.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        # The viewer presenting the admin's session id is told it does not exist.
        hijack = http.post(url, json=listing, headers={**headers, "mcp-session-id": session_id,
                                                       "mcp-protocol-version": HANDSHAKE_PROTOCOL_VERSIONS[-1],
                                                       "authorization": f"Bearer {tokens['vic']}"})
        assert hijack.status_code == 404
