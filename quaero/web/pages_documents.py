"""The knowledge base pages: documents (filter, paginate, bulk delete), search as you type, document view.

The same services as the documents API (:class:`DocumentStore`, :class:`DocumentSearch`); crawled
markdown is rendered through :mod:`quaero.web.sanitize`, and every other crawled string is escaped by the
templates.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from quaero.errors import QueryError
from quaero.runtime import Runtime
from quaero.stores.documents import DocumentFilter, document_dict, parse_date
from quaero.stores.search import MODES, hit_dict
from quaero.web.http import int_path, runtime_of
from quaero.web.pages import PAGE_SIZE, _flash, _form, _offset, _see
from quaero.web.render import Page, fragment, layout, page, url_maker
from quaero.web.sanitize import markdown_html

FILTER_FIELDS = ("source", "tag", "after", "before")
SEARCH_PAGE = 20


def _filter(params: Mapping[str, str]) -> tuple[DocumentFilter, dict[str, str]]:
    """The documents filter from the form's fields (one source, one tag, dates), and the fields as given."""
    fields = {name: (params.get(name) or "").strip() for name in FILTER_FIELDS}
    where = DocumentFilter(
        source_types=(fields["source"],) if fields["source"] else (),
        tags=(fields["tag"],) if fields["tag"] else (),
        after=parse_date(fields["after"], "after") if fields["after"] else None,
        before=parse_date(fields["before"], "before") if fields["before"] else None,
    )
    return where, fields


def documents_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    store = runtime.documents
    offset = _offset(params)
    try:
        where, fields = _filter(params)
        error = None
    except QueryError as exc:
        where, fields, error = DocumentFilter(), {name: params.get(name, "") for name in FILTER_FIELDS}, exc.message
    items = [document_dict(d, full=False) for d in store.list(where, limit=PAGE_SIZE, offset=offset, bodies=False)]
    stats = store.stats(top_tags=30, sizes=False)  # the page does without the one figure that reads every body
    return {"documents": items, "fields": fields, "error": error, "stats": stats, "filtered": bool(where),
            "pagination": Page(store.count(where), PAGE_SIZE, offset),
            "url": url_maker("/documents", {**fields, "offset": offset}),
            "filter_query": urlencode({k: v for k, v in fields.items() if v})}


async def documents(request: Request) -> Response:
    context = await asyncio.to_thread(documents_context, runtime_of(request), request.query_params)
    removed = request.query_params.get("removed", "")
    flash = f"{removed} document(s) deleted." if removed.isdigit() else _flash(request)
    return page("documents.html", layout(request, "/documents", title="Documents", flash=flash, **context),
                status_code=400 if context["error"] else 200)


async def documents_confirm_delete(request: Request) -> Response:
    """How many documents the filter matches, and a button to delete them (works without JavaScript)."""
    runtime = runtime_of(request)
    where, fields = _filter(request.query_params)
    if not where:
        raise QueryError("choose a source, tag or dates first: deleting every document is not offered here")
    count = await asyncio.to_thread(runtime.documents.count, where)
    described = ", ".join(f"{name} {value}" for name, value in fields.items() if value)
    return page("documents_delete.html", layout(request, "/documents", title="Delete documents?", count=count,
                                                fields=fields, described=described))


async def documents_delete(request: Request) -> Response:
    form = await _form(request)
    where, _ = _filter(form)
    if not where:
        raise QueryError("choose a source, tag or dates first: deleting every document is not offered here")
    removed = await asyncio.to_thread(runtime_of(request).documents.delete_matching, where)
    return _see(f"/documents?removed={removed}")


_LAST_WORD = re.compile(r"(?:^|\s)-?\w+$")


def as_typed(text: str) -> str:
    """While the user is still typing, the last word counts as a prefix: ``event lo`` finds "event loop"."""
    last = text.rsplit(None, 1)[-1] if text.strip() else ""
    if _LAST_WORD.search(text) and text.count('"') % 2 == 0 and last != "OR":
        return text + "*"
    return text


def search_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    text = params.get("q", "")
    offset = _offset(params)
    mode = params.get("mode") or None
    used, notice = "keyword", None
    try:
        searched = as_typed(text) if params.get("typing") == "1" else text
        found = runtime.search.search(searched, limit=SEARCH_PAGE, offset=offset, mode=mode)
        results, total, error = [hit_dict(hit) for hit in found.items], found.total, None
        used, notice = found.mode, found.notice
    except QueryError as exc:
        results, total, error = [], 0, exc.message
    return {"q": text, "mode": mode or "", "used_mode": used, "notice": notice, "modes": MODES, "results": results,
            "error": error, "pagination": Page(total, SEARCH_PAGE, offset),
            "url": url_maker("/search", {"q": text, "mode": mode or "", "offset": offset})}


def ask_context(runtime: Runtime, params: Mapping[str, str]) -> dict[str, Any]:
    question = params.get("q", "")
    if not question.strip():
        return {"q": question, "answer": None, "error": None}
    try:
        return {"q": question, "answer": runtime.ask(question), "error": None}
    except QueryError as exc:
        return {"q": question, "answer": None, "error": exc.message}


async def ask(request: Request) -> Response:
    context = await asyncio.to_thread(ask_context, runtime_of(request), request.query_params)
    return page("ask.html", layout(request, "/search", title="Ask", **context),
                status_code=400 if context["error"] else 200)


async def search(request: Request) -> Response:
    context = await asyncio.to_thread(search_context, runtime_of(request), request.query_params)
    status = 400 if context["error"] else 200
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return fragment("search.html", ["results"], {"request": request, **context}, status_code=200)
    return page("search.html", layout(request, "/search", title="Search", **context), status_code=status)


async def document(request: Request) -> Response:
    runtime = runtime_of(request)
    doc_id = int_path(request, "id", "document")
    doc = await asyncio.to_thread(runtime.documents.get, doc_id)
    data = document_dict(doc)
    job = await asyncio.to_thread(runtime.jobs.find, doc.job_id) if doc.job_id else None
    body = await asyncio.to_thread(markdown_html, doc.markdown or "")
    related = await asyncio.to_thread(runtime.related, doc_id, limit=5)
    return page("document.html", layout(request, "/documents", title=doc.title or doc.source_ref, doc=data,
                                        body=body, job=job, safe_link=_safe_link(doc.source_ref), related=related))


def _safe_link(ref: str) -> str | None:
    """The source reference as a link only when it is an http(s) URL."""
    return ref if ref.lower().startswith(("http://", "https://")) else None


async def document_delete(request: Request) -> Response:
    doc_id = int_path(request, "id", "document")
    if request.method == "GET":
        doc = await asyncio.to_thread(runtime_of(request).documents.get, doc_id)
        return page("confirm.html", layout(
            request, "/documents", title="Delete document?", question="Delete this document?",
            consequence="It is removed from the knowledge base and the search index.", button="Delete document",
            action_url=f"/documents/{doc.id}/delete", back_url=f"/documents/{doc.id}",
            subject=doc.title or doc.source_ref, danger=True))
    await asyncio.to_thread(runtime_of(request).documents.delete, doc_id)
    return _see("/documents", "document-deleted")


routes = [
    Route("/documents", documents),
    Route("/documents/delete", documents_confirm_delete, methods=["GET"]),
    Route("/documents/delete", documents_delete, methods=["POST"]),
    Route("/documents/{id}", document),
    Route("/documents/{id}/delete", document_delete, methods=["GET", "POST"]),
    Route("/search", search),
    Route("/ask", ask),
]
