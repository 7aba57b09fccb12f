"""The knowledge base's tools for MCP clients: what each one takes, says it does, and calls.

Each tool is a typed argument model (its JSON schema is the tool's input schema; unknown keys are
errors) and a function of the runtime that returns JSON-ready data. The functions call the same services
as the REST API: ``runtime.search``, ``runtime.documents``, the orchestrator, ``job_detail``.

Who may call what is decided here, per tool, not by the HTTP layer (MCP sends every message as a POST):
the read tools are for every signed-in role, the ``admin`` ones for admins only. A tool also says whether
a runtime can serve it: starting executions needs a runtime whose orchestrator runs (``quaero serve``),
not the one ``quaero mcp`` builds, which only reads (and whose caller, the local user, is an admin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mcp import types
from pydantic import BaseModel, ConfigDict, Field

from quaero.errors import NotFound, QuaeroError
from quaero.runtime import Runtime
from quaero.stores.accounts import Principal
from quaero.stores.events import iso
from quaero.stores.jsonutil import loads
from quaero.stores.search import hit_dict
from quaero.web.api import job_detail

#: The roles whose runtimes run executions: the others (``control``) have an orchestrator that never starts.
ENGINE_ROLES = frozenset({"server", "run"})
QUERY_HELP = ('Query language: words (all must match), "exact phrase", prefix*, -excluded, a OR b, and the '
              'filters source:TYPE, tag:TAG, after:YYYY-MM-DD, before:YYYY-MM-DD. Filters alone list the newest.')


class Arguments(BaseModel):
    """A tool's arguments: unknown keys are errors, so a typo says which key is wrong."""

    model_config = ConfigDict(extra="forbid")


class SearchArgs(Arguments):
    query: str = Field(max_length=1000, description=QUERY_HELP)
    mode: Literal["keyword", "semantic", "hybrid"] | None = Field(
        None, description="keyword (full-text), semantic (by meaning) or hybrid; default: the server's")
    limit: int = Field(10, ge=1, le=50, description="how many results (1 to 50)")


class DocumentArgs(Arguments):
    id: int = Field(ge=1, description="the document id, as search results give it")
    max_chars: int = Field(20_000, ge=200, le=200_000, description="cut the markdown after this many characters")


class NoArgs(Arguments):
    pass


class AskArgs(Arguments):
    question: str = Field(min_length=1, max_length=1000, description="a question in plain words")
    limit: int = Field(5, ge=1, le=20, description="how many passages to answer from")


class RunArgs(Arguments):
    name_or_id: str = Field(min_length=1, max_length=200, description="the job definition's id or its name")


class JobArgs(Arguments):
    job_id: str = Field(min_length=1, max_length=100, description="the job id, as run_definition returns it")


def _search(runtime: Runtime, args: SearchArgs) -> dict[str, Any]:
    page = runtime.search.search(args.query, limit=args.limit, offset=0, mode=args.mode)
    items = [{key: value for key, value in hit_dict(hit).items() if key != "snippet"} for hit in page.items]
    return {"query": page.query, "mode": page.mode, "notice": page.notice, "total": page.total, "items": items}


def _get_document(runtime: Runtime, args: DocumentArgs) -> dict[str, Any]:
    doc = runtime.documents.get(args.id)
    markdown = doc.markdown or ""
    shown = markdown[:args.max_chars]
    if len(markdown) > args.max_chars:
        shown += (f"\n\n[truncated: {args.max_chars} of {len(markdown)} characters shown; call get_document "
                  f"with a larger max_chars (at most 200000) for more]")
    return {"id": doc.id, "title": doc.title, "source_type": doc.source_type, "source_ref": doc.source_ref,
            "tags": loads(doc.tags) or [], "summary": doc.summary, "updated_at": iso(doc.updated_at),
            "chars": len(markdown), "truncated": len(markdown) > args.max_chars, "markdown": shown}


def _list_sources(runtime: Runtime, args: NoArgs) -> dict[str, Any]:
    stats = runtime.documents.stats(top_tags=20, sizes=False)
    definitions = [{"id": record.id, "name": record.name, "enabled": record.enabled}
                   for record in runtime.definitions.list()]
    return {"documents": stats["total"], "by_source_type": stats["by_source_type"], "top_tags": stats["top_tags"],
            "newest_updated_at": stats["newest_updated_at"], "definitions": definitions}


def _ask(runtime: Runtime, args: AskArgs) -> dict[str, Any]:
    return runtime.ask(args.question, limit=args.limit)


def _definition_id(runtime: Runtime, name_or_id: str) -> str:
    records = runtime.definitions.list()
    if any(record.id == name_or_id for record in records):
        return name_or_id
    named = [record.id for record in records if record.name.casefold() == name_or_id.casefold()]
    if len(named) == 1:
        return named[0]
    if named:
        raise QuaeroError(f"{len(named)} job definitions are named {name_or_id!r}: give the id, one of "
                          f"{', '.join(named)}")
    raise NotFound(f"no job definition has the id or name {name_or_id!r}: list_sources lists them")


def _run_definition(runtime: Runtime, args: RunArgs) -> dict[str, Any]:
    definition_id = _definition_id(runtime, args.name_or_id)
    assert runtime.orchestrator is not None  # the tool is offered by engine runtimes only
    job_id = runtime.orchestrator.execute(definition_id, trigger="mcp")
    return {"job_id": job_id, "definition_id": definition_id, "status": "running",
            "next": "job_status with this job_id tells how far it got"}


def _job_status(runtime: Runtime, args: JobArgs) -> dict[str, Any]:
    return job_detail(runtime, args.job_id)


def _always(runtime: Runtime) -> bool:
    return True


def _runs_executions(runtime: Runtime) -> bool:
    return runtime.role in ENGINE_ROLES and runtime.orchestrator is not None


@dataclass(frozen=True)
class Tool:
    """One tool: its name, what it tells the model, its arguments, and what it calls."""

    name: str
    description: str
    arguments: type[Arguments]
    run: Callable[[Runtime, Any], dict[str, Any]]
    admin: bool = False
    available: Callable[[Runtime], bool] = _always

    def allows(self, principal: Principal) -> bool:
        """Whether ``principal``'s role may see and call this tool."""
        return principal.is_admin or not self.admin

    def spec(self) -> types.Tool:
        """The tool as ``tools/list`` describes it."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        hints = types.ToolAnnotations(read_only_hint=not self.admin, destructive_hint=False,
                                      idempotent_hint=not self.admin, open_world_hint=False)
        return types.Tool(name=self.name, description=self.description, input_schema=schema, annotations=hints)


TOOLS = (
    Tool("search", "Search the knowledge base's documents; best matches first, each with its id, title, source "
         "and a snippet. " + QUERY_HELP + " Read a hit in full with get_document.", SearchArgs, _search),
    Tool("get_document", "One document by id: title, source, tags, when it last changed, and its text as markdown "
         "(cut at max_chars, with a note saying so).", DocumentArgs, _get_document),
    Tool("list_sources", "What the knowledge base holds: document counts by source type, the most used tags (for "
         "source: and tag: filters in search) and the job definitions that fill it.", NoArgs, _list_sources),
    Tool("ask", "Answer a question from the knowledge base: the answer, the passages it rests on (with their "
         "document ids) and the model that wrote it.", AskArgs, _ask),
    Tool("run_definition", "Start an execution of a job definition (by id or name), as the Run button does; "
         "returns the execution's job id at once. Admins only.", RunArgs, _run_definition, admin=True,
         available=_runs_executions),
    Tool("job_status", "A job's status and progress (counts of its children by status, result count, error), as "
         "GET /api/jobs/{id} gives it. Admins only.", JobArgs, _job_status, admin=True),
)
