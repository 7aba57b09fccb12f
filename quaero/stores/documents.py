"""DocumentStore: the knowledge base's documents, written idempotently by source reference.

Listing, counting, bulk deletion and search narrow documents with one :class:`DocumentFilter`, turned
into SQL for SQLite or PostgreSQL in one place. Dates filter on ``updated_at``, the last time a
document's content changed, because that is what "recent" means to someone looking for a page.
"""

from __future__ import annotations

import builtins
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import peewee as pw

from quaero.api.documents import STORED_FIELDS, DocumentFilter, DocumentInput, SaveResult
from quaero.api.documents import Document as DocumentData
from quaero.errors import Conflict, NotFound, QueryError
from quaero.stores.db import Database
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


# The stored values a save is compared with; the bodies are compared by the database, so a page's old
# markdown and HTML never travel back just to be found equal.
_SELECT_BY_REF = ("SELECT id, job_id, title, markdown = ?, {same_html}, metadata, tags, keywords, summary "
                  "FROM documents WHERE source_type = ? AND source_ref = ?")
_INSERT = (f"INSERT INTO documents (source_type, source_ref, created_at, {', '.join(_Written._fields)}) "
           f"VALUES ({', '.join('?' * (len(_Written._fields) + 3))}) RETURNING id")
_UPDATE = f"UPDATE documents SET {', '.join(f'{name} = ?' for name in _Written._fields)} WHERE id = ?"

#: Called inside the transaction that deletes documents, with their ids (plugins clean their rows).
DeletionListener = Callable[[list[int]], None]


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


def filter_sql(where: DocumentFilter, *, postgres: bool) -> tuple[list[str], list[Any]]:
    """Conditions on the documents table aliased ``d`` (``?`` placeholders) and their parameters."""
    conditions: list[str] = []
    params: list[Any] = []
    if where.source_types:
        conditions.append(f"d.source_type IN ({', '.join('?' * len(where.source_types))})")
        params += where.source_types
    for tag in where.tags:
        conditions.append("d.tags::jsonb @> jsonb_build_array(?::text)" if postgres
                          else "d.id IN (SELECT document_id FROM document_tags WHERE tag = ?)")
        params.append(tag)
    for condition, moment in (("d.updated_at >= ?", where.after), ("d.updated_at < ?", where.before)):
        if moment is not None:
            conditions.append(condition)
            params.append(moment)
    if where.job_id:
        conditions.append("d.job_id = ?")
        params.append(where.job_id)
    if where.has_html is not None:
        conditions.append("(d.html IS NOT NULL AND TRIM(d.html) <> '')" if where.has_html
                          else "(d.html IS NULL OR TRIM(d.html) = '')")
    if where.has_markdown is not None:
        conditions.append("TRIM(d.markdown) <> ''" if where.has_markdown else "TRIM(d.markdown) = ''")
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
        #: Called inside every deletion's transaction with the deleted ids (plugins' ``documents_deleted``).
        self.deletion_listeners: list[DeletionListener] = []
        #: Called once a save that changed a document's title or body has committed (search by meaning).
        self.text_listeners: list[Callable[[], None]] = []
        same_html = "html IS NOT DISTINCT FROM ?" if database.is_postgres else "html IS ?"
        self._select_by_ref = _SELECT_BY_REF.format(same_html=same_html)

    def upsert(self, item: DocumentInput, *, job_id: str | None = None) -> SaveResult:
        """Insert or update by ``(source_type, source_ref)``; the result names the fields a save changed.

        A save that changes no stored field writes nothing, except that a document another job saved
        becomes this job's (its ``job_id``; ``updated_at`` stays): a re-run that finds a page as it was has
        still saved it, and counts it as one of its results, once (``first_for_job``).
        """
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
            existing = self.database.execute(
                self._select_by_ref, (row.markdown, row.html, item.source_type, item.source_ref)).fetchone()
            if existing is None:
                inserted = self.database.execute(_INSERT, (item.source_type, item.source_ref, row.updated_at, *row))
                self._text_changed()
                return SaveResult(inserted.fetchone()[0], created=True, changed=STORED_FIELDS, first_for_job=True)
            doc_id, old_job, title, same_markdown, same_html, metadata, tags, keywords, summary = existing
            different = {
                "title": title != row.title, "markdown": not same_markdown, "html": not same_html,
                # Compared as data: the same metadata written with its keys in another order is unchanged.
                "metadata": loads(metadata) != loads(row.metadata), "tags": tags != row.tags,
                "keywords": keywords != row.keywords, "summary": summary != row.summary,
            }
            changed = tuple(name for name in STORED_FIELDS if different[name])
            if not changed:
                claimed = row.job_id is not None and old_job != row.job_id
                if claimed:
                    self.database.execute("UPDATE documents SET job_id = ? WHERE id = ?", (row.job_id, doc_id))
                return SaveResult(doc_id, created=False, changed=(), first_for_job=claimed)
            self.database.execute(_UPDATE, (*row, doc_id))
            if different["title"] or different["markdown"]:
                self._text_changed()
            return SaveResult(doc_id, created=False, changed=changed, first_for_job=old_job != row.job_id)

    def _text_changed(self) -> None:
        for listener in self.text_listeners:
            self.database.after_commit(listener)

    def update_fields(self, doc_id: int, *, keywords: builtins.list[str] | None = None, summary: str | None = None,
                      metadata: dict[str, Any] | None = None,
                      if_content_hash: str | None = None) -> tuple[SaveResult, str, str]:
        """Change only the given fields of a document (``metadata`` merged key by key, ``None`` removing a
        key); returns what changed, with the document's title and reference.

        Who saved the document (``job_id``) and when its content last changed (``updated_at``) stay as they
        are: enriching a page neither makes it the enricher's nor makes it recent. :class:`Conflict` when
        ``if_content_hash`` is given and the body changed since.
        """
        with self.database.write():
            row = self.database.execute("SELECT title, source_ref, metadata, keywords, summary, content_hash "
                                        "FROM documents WHERE id = ?", (doc_id,)).fetchone()
            if row is None:
                raise NotFound(f"document {doc_id} not found")
            title, source_ref, old_metadata, old_keywords, old_summary, stored_hash = row
            if if_content_hash is not None and stored_hash != if_content_hash:
                raise Conflict(f"document {doc_id} changed since it was read: its content is not what the "
                               f"change was made for")
            values: dict[str, Any] = {}
            if metadata:
                merged = loads(old_metadata)
                for key, value in metadata.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                if merged != loads(old_metadata):
                    values["metadata"] = dumps(merged)
            if keywords is not None and dumps(keywords) != old_keywords:
                values["keywords"] = dumps(keywords)
            if summary is not None and summary != old_summary:
                values["summary"] = summary
            changed = tuple(name for name in STORED_FIELDS if name in values)
            if changed:  # updated_at stays: it is when the content changed, which enriching does not
                assignments = ", ".join(f"{name} = ?" for name in values)
                self.database.execute(f"UPDATE documents SET {assignments} WHERE id = ?", (*values.values(), doc_id))
        return SaveResult(doc_id, created=False, changed=changed, first_for_job=False), title, source_ref

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
        conditions, params = filter_sql(where, postgres=self.database.is_postgres)
        names = SUMMARY_COLUMNS + ("markdown", "html") if bodies else SUMMARY_COLUMNS
        columns = ", ".join(f"d.{name}" for name in names)
        query = (f"SELECT {columns} FROM documents AS d {where_clause(conditions)} {order_clause(sort)} "
                 "LIMIT ? OFFSET ?")
        return list(self.models.Document.raw(self.database.sql(query), *params, limit, offset))

    def count(self, where: DocumentFilter = DocumentFilter(), *, source_type: str | None = None) -> int:
        """How many documents match ``where`` (or are of one source type)."""
        if source_type:
            where = DocumentFilter(source_types=(source_type,))
        conditions, params = filter_sql(where, postgres=self.database.is_postgres)
        return self.database.execute(f"SELECT COUNT(*) FROM documents AS d {where_clause(conditions)}",
                                     params).fetchone()[0]

    def delete(self, doc_id: int) -> None:
        """Delete one document (its full-text entry goes with it), or :class:`NotFound`."""
        with self.database.write():
            removed = self.database.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
            if removed:
                self._deleted([doc_id])
        if not removed:
            raise NotFound(f"document {doc_id} not found")

    def delete_matching(self, where: DocumentFilter, *, everything: bool = False) -> int:
        """Delete every document ``where`` matches and return how many went.

        An empty filter would delete the whole knowledge base, so it needs ``everything=True`` said outright.
        """
        if not where and not everything:
            raise QueryError("refusing to delete every document: give a filter (source, tag, after, before, "
                             "job_id) or all=true")
        conditions, params = filter_sql(where, postgres=self.database.is_postgres)
        sql = f"DELETE FROM documents AS d {where_clause(conditions)}"
        with self.database.write():
            if not self.deletion_listeners:  # nobody needs the ids: do not collect them
                return self.database.execute(sql, params).rowcount
            ids = [row[0] for row in self.database.execute(sql + " RETURNING id", params).fetchall()]
            self._deleted(ids)
            return len(ids)

    def _deleted(self, ids: builtins.list[int]) -> None:
        """Inside the deleting transaction: let the listeners remove what belongs to these documents."""
        for listener in self.deletion_listeners:
            listener(ids)

    def saved_by(self, job_ids: builtins.list[str]) -> builtins.list[Document]:
        """The documents these jobs wrote last, by id."""
        found: list[Document] = []
        for start in range(0, len(job_ids), 400):
            chunk = job_ids[start:start + 400]
            found.extend(self.models.Document.select().where(self.models.Document.job_id.in_(chunk)))
        return sorted(found, key=lambda doc: doc.id)

    def ids(self, where: DocumentFilter = DocumentFilter()) -> builtins.list[int]:
        """The ids of every document ``where`` matches, oldest first."""
        conditions, params = filter_sql(where, postgres=self.database.is_postgres)
        sql = f"SELECT d.id FROM documents AS d {where_clause(conditions)} ORDER BY d.id"
        return [row[0] for row in self.database.execute(sql, params).fetchall()]

    def tags(self, *, limit: int = 1000) -> builtins.list[dict[str, Any]]:
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


def document_data(doc: Document) -> DocumentData:
    """A stored row as the plugin API's read-only :class:`~quaero.api.Document`."""
    fields = doc.__data__
    return DocumentData(
        id=doc.id, source_type=doc.source_type, source_ref=doc.source_ref, title=doc.title,
        markdown=fields.get("markdown"), html=fields.get("html"), metadata=loads(doc.metadata),
        tags=loads(doc.tags) or [], keywords=loads(doc.keywords) or [], summary=doc.summary,
        content_hash=doc.content_hash, job_id=doc.job_id, created_at=doc.created_at, updated_at=doc.updated_at)
