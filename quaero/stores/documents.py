"""DocumentStore: the knowledge base's documents, written idempotently by source reference.

Listing, counting, bulk deletion and search narrow documents with one :class:`DocumentFilter`, turned
into SQL for SQLite or PostgreSQL in one place. Dates filter on ``updated_at``, the last time a
document's content changed, because that is what "recent" means to someone looking for a page.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import peewee as pw

from quaero.stores.db import Database
from quaero.errors import NotFound, QueryError
from quaero.stores.events import iso
from quaero.stores.jsonutil import dumps, loads
from quaero.stores.models import Document, Models

SORTS = ("updated_at", "created_at", "title")
# Everything but the bodies: listings never need them, and they are most of a row's bytes.
SUMMARY_COLUMNS = ("id", "source_type", "source_ref", "title", "metadata", "tags", "keywords", "summary",
                   "content_hash", "job_id", "created_at", "updated_at")


class _Written(NamedTuple):
    """The columns upsert writes, in the order its statements name them."""

    title: str
    markdown: str
    html: str | None
    metadata: str
    tags: str
    keywords: str
    summary: str
    content_hash: str
    job_id: str | None
    updated_at: float


_SELECT_BY_REF = ("SELECT id, content_hash, tags, title, job_id FROM documents "
                  "WHERE source_type = ? AND source_ref = ?")
_INSERT = (f"INSERT INTO documents (source_type, source_ref, created_at, {', '.join(_Written._fields)}) "
           f"VALUES ({', '.join('?' * (len(_Written._fields) + 3))}) RETURNING id")
_UPDATE = f"UPDATE documents SET {', '.join(f'{name} = ?' for name in _Written._fields)} WHERE id = ?"


@dataclass
class DocumentInput:
    """What a worker hands over to save; ``source_type`` + ``source_ref`` identify the document."""

    source_type: str
    source_ref: str
    title: str = ""
    markdown: str = ""
    html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    summary: str = ""


@dataclass(frozen=True)
class SaveResult:
    """The saved document's id, whether the save created it or changed it, and whether it counts as a new
    result of the saving job (a job run again after a crash does not count its documents twice)."""

    id: int
    created: bool
    changed: bool
    first_for_job: bool = True


def content_hash(markdown: str, html: str | None = None) -> str:
    """A stable hash of what the document says, to skip rewriting unchanged pages."""
    digest = hashlib.sha256(markdown.encode("utf-8"))
    if not markdown and html:
        digest.update(html.encode("utf-8"))
    return digest.hexdigest()


def parse_date(text: str, name: str) -> float:
    """``YYYY-MM-DD`` or an ISO 8601 date and time (UTC unless it says otherwise) as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(f"{name}: {text!r} is not a date; write it as YYYY-MM-DD "
                         f"or YYYY-MM-DDTHH:MM:SS") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class DocumentFilter:
    """Which documents: any of ``source_types``, all of ``tags``, updated in ``[after, before)``, by a job.

    ``after`` is inclusive and ``before`` exclusive, so ``after:2025-01-01 before:2025-02-01`` is January.
    """

    source_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    after: float | None = None
    before: float | None = None
    job_id: str | None = None

    def __post_init__(self) -> None:
        if any("\0" in value for value in (*self.source_types, *self.tags, self.job_id or "")):
            raise QueryError("a filter value contains a NUL character")
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise QueryError("'after' must be earlier than 'before': no document can match both")

    def __bool__(self) -> bool:
        return bool(self.source_types or self.tags or self.job_id
                    or self.after is not None or self.before is not None)

    def sql(self, *, postgres: bool) -> tuple[list[str], list[Any]]:
        """Conditions on the documents table aliased ``d`` (``?`` placeholders) and their parameters."""
        conditions: list[str] = []
        params: list[Any] = []
        if self.source_types:
            conditions.append(f"d.source_type IN ({', '.join('?' * len(self.source_types))})")
            params += self.source_types
        for tag in self.tags:
            conditions.append("d.tags::jsonb @> jsonb_build_array(?::text)" if postgres
                              else "d.id IN (SELECT document_id FROM document_tags WHERE tag = ?)")
            params.append(tag)
        for condition, moment in (("d.updated_at >= ?", self.after), ("d.updated_at < ?", self.before)):
            if moment is not None:
                conditions.append(condition)
                params.append(moment)
        if self.job_id:
            conditions.append("d.job_id = ?")
            params.append(self.job_id)
        return conditions, params


def where_clause(conditions: list[str]) -> str:
    """``WHERE a AND b``, or nothing."""
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def order_clause(sort: str) -> str:
    """``updated_at``, ``created_at`` or ``title``, ``-`` first for descending; ties go by id."""
    column = sort.removeprefix("-")
    if column not in SORTS:
        raise QueryError(f"cannot sort by {sort!r}; use one of {', '.join(SORTS)}, with '-' first for descending")
    direction = "DESC" if sort.startswith("-") else "ASC"
    return f"ORDER BY d.{column} {direction}, d.id {direction}"


def document_dict(doc: Document, *, full: bool = True) -> dict[str, Any]:
    """A document as plain JSON-ready data."""
    data: dict[str, Any] = {
        "id": doc.id, "source_type": doc.source_type, "source_ref": doc.source_ref, "title": doc.title,
        "tags": loads(doc.tags) or [], "keywords": loads(doc.keywords) or [], "summary": doc.summary,
        "metadata": loads(doc.metadata), "content_hash": doc.content_hash, "job_id": doc.job_id,
        "created_at": iso(doc.created_at), "updated_at": iso(doc.updated_at),
    }
    if full:
        data["markdown"] = doc.markdown
        data["html"] = doc.html
    return data


class DocumentStore:
    """Upsert, get, list, count, delete and summarise documents."""

    def __init__(self, database: Database, models: Models) -> None:
        self.database = database
        self.models = models

    def upsert(self, item: DocumentInput, *, job_id: str | None = None) -> SaveResult:
        """Insert or update by ``(source_type, source_ref)``; an unchanged document is left as it is."""
        row = _Written(item.title, item.markdown, item.html, dumps(item.metadata), dumps(sorted(set(item.tags))),
                       dumps(item.keywords), item.summary, content_hash(item.markdown, item.html), job_id,
                       time.time())
        try:
            return self._upsert(item, row)
        except pw.IntegrityError:
            # Another process inserted the same reference between our look and our insert (PostgreSQL;
            # SQLite writers are serialised): it exists now, so this becomes an update.
            return self._upsert(item, row)

    def _upsert(self, item: DocumentInput, row: _Written) -> SaveResult:
        # Plain SQL, not the query builder: every crawled page comes through here, and building the
        # statements took longer than running them.
        with self.database.write():
            existing = self.database.execute(_SELECT_BY_REF, (item.source_type, item.source_ref)).fetchone()
            if existing is None:
                inserted = self.database.execute(_INSERT, (item.source_type, item.source_ref, row.updated_at, *row))
                return SaveResult(inserted.fetchone()[0], created=True, changed=True, first_for_job=True)
            doc_id, old_hash, old_tags, old_title, old_job = existing
            if (old_hash, old_tags, old_title) == (row.content_hash, row.tags, row.title):
                return SaveResult(doc_id, created=False, changed=False, first_for_job=False)
            self.database.execute(_UPDATE, (*row, doc_id))
            return SaveResult(doc_id, created=False, changed=True, first_for_job=old_job != row.job_id)

    def get(self, doc_id: int) -> Document:
        """The document, or :class:`NotFound`."""
        doc = self.models.Document.get_or_none(self.models.Document.id == doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id} not found")
        return doc

    def get_by_ref(self, source_type: str, source_ref: str) -> Document | None:
        """The document with this source reference, if any."""
        Doc = self.models.Document
        return Doc.get_or_none(Doc.source_type == source_type, Doc.source_ref == source_ref)

    def list(self, where: DocumentFilter = DocumentFilter(), *, sort: str = "-updated_at", limit: int = 50,
             offset: int = 0, bodies: bool = True) -> list[Document]:
        """Documents matching ``where`` in ``sort`` order; ``bodies=False`` leaves markdown and html out."""
        conditions, params = where.sql(postgres=self.database.is_postgres)
        names = SUMMARY_COLUMNS + ("markdown", "html") if bodies else SUMMARY_COLUMNS
        columns = ", ".join(f"d.{name}" for name in names)
        query = (f"SELECT {columns} FROM documents AS d {where_clause(conditions)} {order_clause(sort)} "
                 "LIMIT ? OFFSET ?")
        return list(self.models.Document.raw(self.database.sql(query), *params, limit, offset))

    def count(self, where: DocumentFilter = DocumentFilter(), *, source_type: str | None = None) -> int:
        """How many documents match ``where`` (or are of one source type)."""
        if source_type:
            where = DocumentFilter(source_types=(source_type,))
        conditions, params = where.sql(postgres=self.database.is_postgres)
        return self.database.execute(f"SELECT COUNT(*) FROM documents AS d {where_clause(conditions)}",
                                     params).fetchone()[0]

    def delete(self, doc_id: int) -> None:
        """Delete one document (its full-text entry goes with it), or :class:`NotFound`."""
        with self.database.write():
            removed = self.database.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
        if not removed:
            raise NotFound(f"document {doc_id} not found")

    def delete_matching(self, where: DocumentFilter, *, everything: bool = False) -> int:
        """Delete every document ``where`` matches and return how many went.

        An empty filter would delete the whole knowledge base, so it needs ``everything=True`` said outright.
        """
        if not where and not everything:
            raise QueryError("refusing to delete every document: give a filter (source, tag, after, before, "
                             "job_id) or all=true")
        conditions, params = where.sql(postgres=self.database.is_postgres)
        with self.database.write():
            return self.database.execute(f"DELETE FROM documents AS d {where_clause(conditions)}",
                                         params).rowcount

    def tags(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Tags with how many documents carry each, most used first."""
        if self.database.is_postgres:
            query = ("SELECT j.tag, COUNT(*) AS n FROM documents AS d, jsonb_array_elements_text(d.tags::jsonb) "
                     "AS j(tag) GROUP BY j.tag ORDER BY n DESC, j.tag LIMIT ?")
        else:
            query = "SELECT tag, COUNT(*) AS n FROM document_tags GROUP BY tag ORDER BY n DESC, tag LIMIT ?"
        return [{"tag": tag, "count": n} for tag, n in self.database.execute(query, (limit,)).fetchall()]

    def stats(self, *, top_tags: int = 20, sizes: bool = True) -> dict[str, Any]:
        """Totals for a dashboard: documents, by source type, top tags, newest and oldest, markdown bytes.

        Each figure is its own query so that the indexes answer it; only the markdown bytes read every
        document's body (``sizes=False`` leaves them out, as ``None``: about 1.4 s at 100,000 documents).
        """
        def one(sql: str) -> Any:
            return self.database.execute(sql).fetchone()[0]

        size = "octet_length(d.markdown)" if self.database.is_postgres else "length(CAST(d.markdown AS BLOB))"
        newest, oldest = one("SELECT MAX(updated_at) FROM documents"), one("SELECT MIN(updated_at) FROM documents")
        by_source = self.database.execute(
            "SELECT d.source_type, COUNT(*) AS n FROM documents AS d GROUP BY d.source_type "
            "ORDER BY n DESC, d.source_type").fetchall()
        return {
            "total": one("SELECT COUNT(*) FROM documents"),
            "by_source_type": {source: n for source, n in by_source},
            "top_tags": self.tags(limit=top_tags),
            "newest_updated_at": iso(newest) if newest is not None else None,
            "oldest_updated_at": iso(oldest) if oldest is not None else None,
            "markdown_bytes": int(one(f"SELECT SUM({size}) FROM documents AS d") or 0) if sizes else None,
        }
