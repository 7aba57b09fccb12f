"""``quaero mcp``: the SDK's own stdio client drives the command as a real subprocess on a seeded data dir."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS

from quaero.runtime import Runtime
from quaero.settings import load_settings
from quaero.stores.db import Database
from quaero.stores.documents import DocumentInput, DocumentStore
from quaero.stores.models import bind_models

ENV = {"QUAERO_PLUGIN_MODULES": "quaero.testing.actions"}
LONG = "Asyncio runs an event loop. " * 400


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir with three documents, written as a crawl would have saved them."""
    data = tmp_path / "data"
    database = Database(load_settings(environ={}, overrides={"data_dir": data}).resolved_database_url)
    store = DocumentStore(database, bind_models(database.db))
    store.upsert(DocumentInput("web", "https://a.test/snakes", "Snakes", "A python is a large snake.", tags=["zoo"]))
    store.upsert(DocumentInput("web", "https://a.test/python", "Python tutorial", "Learn python today.",
                               tags=["docs"]))
    store.upsert(DocumentInput("file", "notes/loop.md", "Event loops", LONG, tags=["docs"]))
    database.close()
    # Embedded with the offline model, as a server's background embedder would have done.
    runtime = Runtime(load_settings(environ={}, overrides={"data_dir": data}), role="control")
    try:
        assert runtime.embeddings.embed_queued() == 3
    finally:
        runtime.stop()
    return data


def server(data_dir: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "quaero", "mcp", "--data-dir", str(data_dir)],
                                 env=ENV, cwd=str(data_dir.parent))


def data(result) -> dict:
    """A tool result's structured content, after checking the text content says the same."""
    assert not result.is_error, result.content[0].text
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def test_an_mcp_client_searches_and_reads_the_knowledge_base_over_stdio(data_dir):
    async def session() -> None:
        with open(data_dir.parent / "stderr.log", "w") as errlog:
            async with stdio_client(server(data_dir), errlog=errlog) as (read, write), \
                    ClientSession(read, write) as client:
                await client.initialize()
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                # Executions need a running server: over stdio only its reading tools (and job_status) are offered.
                assert {"search", "get_document", "list_sources", "job_status"} <= set(tools)
                assert "run_definition" not in tools
                assert tools["search"].input_schema["required"] == ["query"]
                assert tools["search"].annotations.read_only_hint is True

                hybrid = data(await client.call_tool("search", {"query": "python -snake"}))
                assert hybrid["mode"] == "hybrid" and hybrid["items"][0]["title"] == "Python tutorial"
                assert "Snakes" not in [item["title"] for item in hybrid["items"]]  # excluded on both sides
                found = data(await client.call_tool("search", {"query": "python -snake", "mode": "keyword"}))
                assert found["total"] == 1 and found["mode"] == "keyword"
                [hit] = found["items"]
                assert hit["title"] == "Python tutorial" and hit["snippet_text"] == "Learn python today."
                assert "snippet" not in hit
                filtered = data(await client.call_tool("search", {"query": "tag:docs", "limit": 5}))
                assert {item["title"] for item in filtered["items"]} == {"Python tutorial", "Event loops"}

                doc = data(await client.call_tool("get_document", {"id": hit["id"]}))
                assert doc["markdown"] == "Learn python today." and doc["tags"] == ["docs"] and not doc["truncated"]
                [loop] = data(await client.call_tool("search", {"query": '"event loop"'}))["items"]
                cut = data(await client.call_tool("get_document", {"id": loop["id"], "max_chars": 500}))
                assert cut["truncated"] and cut["chars"] == len(LONG)
                assert cut["markdown"].startswith(LONG[:500]) and "larger max_chars" in cut["markdown"]

                sources = data(await client.call_tool("list_sources", {}))
                assert sources["documents"] == 3 and sources["by_source_type"] == {"web": 2, "file": 1}
                assert sources["top_tags"][0] == {"tag": "docs", "count": 2} and sources["definitions"] == []

                meant = data(await client.call_tool("search", {"query": "animals that slither", "mode": "semantic"}))
                assert meant["mode"] == "semantic" and meant["items"][0]["title"] == "Snakes"
                answer = data(await client.call_tool("ask", {"question": "What is a python?", "limit": 2}))
                assert answer["model"] is None and answer["passages"][0]["title"] in ("Snakes", "Python tutorial")
                assert "https://a.test/" in answer["answer"]

                # What a caller got wrong comes back as a tool error saying what to fix, never a traceback.
                bad = await client.call_tool("search", {"query": "python OR"})
                assert bad.is_error and "the query ends with OR" in bad.content[0].text
                missing = await client.call_tool("get_document", {"id": 999})
                assert missing.is_error and missing.content[0].text == "document 999 not found"
                typo = await client.call_tool("search", {"query": "x", "limti": 5})
                assert typo.is_error and "limti: Extra inputs are not permitted" in typo.content[0].text
                too_many = await client.call_tool("search", {"query": "x", "limit": 500})
                assert too_many.is_error
                assert "limit: Input should be less than or equal to 50" in too_many.content[0].text
                with pytest.raises(MCPError, match="needs a running server"):
                    await client.call_tool("run_definition", {"name_or_id": "x"})

    asyncio.run(session())
    assert "Traceback" not in (data_dir.parent / "stderr.log").read_text()


def test_stdout_carries_only_protocol_messages(data_dir):
    """A raw session: every line the command writes to stdout is a JSON-RPC message."""
    version = HANDSHAKE_PROTOCOL_VERSIONS[-1]
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": "py*"}}},
    ]
    process = subprocess.Popen([sys.executable, "-m", "quaero", "mcp", "--data-dir", str(data_dir)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", **ENV}, cwd=data_dir.parent)
    try:
        replies = []
        for line in lines:
            process.stdin.write(json.dumps(line) + "\n")
            process.stdin.flush()
            if "id" in line:  # a request: its answer is the next line, whatever else the server did meanwhile
                replies.append(json.loads(process.stdout.readline()))
        process.stdin.close()
        assert process.wait(timeout=30) == 0
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.wait()
    assert [reply["id"] for reply in replies] == [1, 2] and all(r["jsonrpc"] == "2.0" for r in replies)
    assert replies[0]["result"]["serverInfo"]["name"] == "quaero"
    assert replies[1]["result"]["structuredContent"]["total"] == 2
