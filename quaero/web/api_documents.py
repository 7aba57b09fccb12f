"""The documents and search API (JSON).

Each view's docstring is a summary line, ``---``, then its OpenAPI operation in YAML: the OpenAPI
document is generated from them.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from quaero.errors import QueryError
from quaero.stores.documents import DocumentFilter, document_dict, parse_date
from quaero.stores.search import page_dict
from quaero.stores.views import page
from quaero.web.http import int_param, int_path, page_params, runtime_of

FILTER_PARAMS = ("source", "tag", "after", "before", "job_id")


def filter_params(request: Request) -> DocumentFilter:
    """The documents filter from ``source`` and ``tag`` (both repeatable), ``after``, ``before``, ``job_id``."""
    params = request.query_params
    after, before = (parse_date(params[name], name) if params.get(name) else None for name in ("after", "before"))
    return DocumentFilter(source_types=tuple(v for v in params.getlist("source") if v),
                          tags=tuple(v for v in params.getlist("tag") if v), after=after, before=before,
                          job_id=params.get("job_id") or None)


def document_id(request: Request) -> int:
    """The ``{id}`` path parameter; anything but a whole number an id can be names no document."""
    return int_path(request, "id", "document")


async def list_documents(request: Request) -> JSONResponse:
    """List documents, newest first, without their bodies.
    ---
    parameters:
      - {$ref: '#/components/parameters/source'}
      - {$ref: '#/components/parameters/tag'}
      - {$ref: '#/components/parameters/after'}
      - {$ref: '#/components/parameters/before'}
      - {$ref: '#/components/parameters/job_id'}
      - name: sort
        in: query
        description: "updated_at, created_at or title; '-' first for descending"
        schema: {type: string, default: "-updated_at"}
      - {$ref: '#/components/parameters/limit'}
      - {$ref: '#/components/parameters/offset'}
    responses:
      200:
        description: one page of documents and how many match in all
        content: {application/json: {schema: {$ref: '#/components/schemas/DocumentPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    store = runtime_of(request).documents
    where = filter_params(request)
    sort = request.query_params.get("sort") or "-updated_at"
    limit, offset = page_params(request)
    docs = await asyncio.to_thread(store.list, where, sort=sort, limit=limit, offset=offset, bodies=False)
    total = await asyncio.to_thread(store.count, where)
    return JSONResponse(page([document_dict(doc, full=False) for doc in docs], total, limit, offset))


async def delete_documents(request: Request) -> JSONResponse:
    """Delete every document matching the filters; with no filter, only when all=true.
    ---
    parameters:
      - {$ref: '#/components/parameters/source'}
      - {$ref: '#/components/parameters/tag'}
      - {$ref: '#/components/parameters/after'}
      - {$ref: '#/components/parameters/before'}
      - {$ref: '#/components/parameters/job_id'}
      - {name: all, in: query, description: "true to delete every document", schema: {type: boolean}}
    responses:
      200:
        description: how many documents were deleted
        content: {application/json: {schema: {type: object, properties: {deleted: {type: integer}}}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    unknown = sorted(set(request.query_params) - {*FILTER_PARAMS, "all"})
    if unknown:  # a misspelt filter must not widen a deletion
        raise QueryError(f"unknown parameters {unknown}; the filters are {', '.join(FILTER_PARAMS)}")
    everything = request.query_params.get("all", "false").lower()
    if everything not in ("true", "false", "1", "0"):
        raise QueryError(f"all must be true or false, got {everything!r}")
    store = runtime_of(request).documents
    deleted = await asyncio.to_thread(store.delete_matching, filter_params(request),
                                      everything=everything in ("true", "1"))
    return JSONResponse({"deleted": deleted})


async def document_stats(request: Request) -> JSONResponse:
    """Document totals: by source type, top tags, newest and oldest, markdown bytes.
    ---
    parameters:
      - name: top_tags
        in: query
        description: "how many tags to list"
        schema: {type: integer, minimum: 0, maximum: 1000, default: 20}
      - name: sizes
        in: query
        description: "false: leave out markdown_bytes, the one figure that reads every document"
        schema: {type: boolean, default: true}
    responses:
      200:
        description: the totals
        content:
          application/json:
            schema:
              type: object
              properties:
                total: {type: integer}
                by_source_type: {type: object, additionalProperties: {type: integer}}
                top_tags: {type: array, items: {$ref: '#/components/schemas/TagCount'}}
                newest_updated_at: {type: string, format: date-time, nullable: true}
                oldest_updated_at: {type: string, format: date-time, nullable: true}
                markdown_bytes: {type: integer, nullable: true, description: "null with sizes=false"}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    store = runtime_of(request).documents
    top = int_param(request, "top_tags", 20, low=0, high=1000)
    sizes = request.query_params.get("sizes", "true").lower()
    if sizes not in ("true", "false", "1", "0"):
        raise QueryError(f"sizes must be true or false, got {sizes[:50]!r}")
    return JSONResponse(await asyncio.to_thread(store.stats, top_tags=top, sizes=sizes in ("true", "1")))


async def document_tags(request: Request) -> JSONResponse:
    """Every tag with how many documents carry it, most used first.
    ---
    parameters:
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 10000, default: 1000}}
    responses:
      200:
        description: the tags
        content: {application/json: {schema: {$ref: '#/components/schemas/TagPage'}}}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    store = runtime_of(request).documents
    limit = int_param(request, "limit", 1000, low=1, high=10_000)
    tags = await asyncio.to_thread(store.tags, limit=limit)
    return JSONResponse(page(tags, len(tags), limit, 0))


async def get_document(request: Request) -> JSONResponse:
    """One document with its markdown and HTML.
    ---
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: the document
        content: {application/json: {schema: {$ref: '#/components/schemas/Document'}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    doc = runtime_of(request).documents.get(document_id(request))
    return JSONResponse(document_dict(doc))


async def delete_document(request: Request) -> JSONResponse:
    """Delete one document.
    ---
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}}
    responses:
      200:
        description: deleted
        content: {application/json: {schema: {type: object, properties: {deleted: {type: integer}}}}}
      404: {$ref: '#/components/responses/NotFound'}
    """
    doc_id = document_id(request)
    await asyncio.to_thread(runtime_of(request).documents.delete, doc_id)
    return JSONResponse({"deleted": doc_id})


async def search(request: Request) -> JSONResponse:
    """Full-text search, best match first; an empty query lists the newest documents.
    ---
    parameters:
      - name: q
        in: query
        description: >-
          words (all must match), "phrases", prefix*, -excluded, a OR b, and the filters source:web,
          tag:x, after:2025-01-01, before:2025-02-01
        schema: {type: string, default: ""}
      - name: mode
        in: query
        description: >-
          keyword (BM25), semantic (by meaning) or hybrid (both, fused); default hybrid where documents are
          embedded, else keyword
        schema: {type: string, enum: [keyword, semantic, hybrid]}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100, default: 20}}
      - {name: offset, in: query, schema: {type: integer, minimum: 0, maximum: 10000, default: 0}}
    responses:
      200:
        description: "one page of results and how many match in all (`query` echoes q)"
        content:
          application/json:
            schema:
              allOf:
                - {$ref: '#/components/schemas/SearchPage'}
                - type: object
                  properties:
                    query: {type: string}
                    mode: {type: string, enum: [keyword, semantic, hybrid], description: "how the results were found"}
                    notice: {type: string, nullable: true, description: "why keyword results came instead"}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    text = request.query_params.get("q", "")
    limit = int_param(request, "limit", 20, low=1, high=100)
    offset = int_param(request, "offset", 0, high=10_000)
    mode = request.query_params.get("mode")  # absent: the default; given, it must be one of the modes
    page = await asyncio.to_thread(runtime_of(request).search.search, text, limit=limit, offset=offset, mode=mode)
    return JSONResponse(page_dict(page))


async def related_documents(request: Request) -> JSONResponse:
    """The documents nearest one in meaning (by their embeddings); empty when it is not embedded.
    ---
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer}}
      - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 50, default: 5}}
    responses:
      200:
        description: "nearest first; `score` is the cosine similarity of the documents' mean vectors"
        content:
          application/json:
            schema:
              type: object
              properties:
                items:
                  type: array
                  items:
                    type: object
                    properties:
                      id: {type: integer}
                      title: {type: string}
                      source_type: {type: string}
                      source_ref: {type: string}
                      score: {type: number}
      400: {$ref: '#/components/responses/BadRequest'}
      404: {$ref: '#/components/responses/NotFound'}
    """
    runtime = runtime_of(request)
    doc_id = document_id(request)
    limit = int_param(request, "limit", 5, low=1, high=50)
    await asyncio.to_thread(runtime.documents.get, doc_id)
    return JSONResponse({"items": await asyncio.to_thread(runtime.related, doc_id, limit=limit)})


async def ask(request: Request) -> JSONResponse:
    """An answer from the knowledge base, citing the passages it rests on.
    ---
    description: >-
      Retrieves the best passages (hybrid search where documents are embedded), then the answerer of the
      settings writes an answer citing them as [1], [2]. Without an answerer, or when it fails (`error`
      says why), the answer is the passages themselves, quoted with their sources.
    parameters:
      - {name: q, in: query, required: true, description: the question, schema: {type: string, maxLength: 1000}}
      - name: limit
        in: query
        description: passages to retrieve
        schema: {type: integer, minimum: 1, maximum: 20, default: 6}
    responses:
      200:
        description: the answer and its passages
        content:
          application/json:
            schema:
              type: object
              properties:
                question: {type: string}
                answer: {type: string, nullable: true, description: "null when nothing matched"}
                cited: {type: array, items: {type: integer}, description: "indexes of the passages cited"}
                model: {type: string, nullable: true, description: "the answerer's model; null: passages quoted"}
                usage: {type: object, additionalProperties: {type: integer}}
                error: {type: string, nullable: true, description: "why no model wrote the answer"}
                mode: {type: string}
                notice: {type: string, nullable: true}
                passages:
                  type: array
                  items:
                    type: object
                    properties:
                      index: {type: integer}
                      document_id: {type: integer}
                      title: {type: string}
                      source_ref: {type: string}
                      heading: {type: string}
                      text: {type: string}
      400: {$ref: '#/components/responses/BadRequest'}
    """
    limit = int_param(request, "limit", 6, low=1, high=20)
    question = request.query_params.get("q", "")
    return JSONResponse(await asyncio.to_thread(runtime_of(request).ask, question, limit=limit))


routes = [
    Route("/api/documents", list_documents, methods=["GET"]),
    Route("/api/documents", delete_documents, methods=["DELETE"]),
    Route("/api/documents/stats", document_stats, methods=["GET"]),
    Route("/api/documents/tags", document_tags, methods=["GET"]),
    Route("/api/documents/{id}", get_document, methods=["GET"]),
    Route("/api/documents/{id}", delete_document, methods=["DELETE"]),
    Route("/api/documents/{id}/related", related_documents, methods=["GET"]),
    Route("/api/search", search, methods=["GET"]),
    Route("/api/ask", ask, methods=["GET"]),
]
