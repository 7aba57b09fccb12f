"""DocumentStore: the knowledge base's documents, written idempotently by source reference."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from quaero.db import Database
from quaero.errors import NotFound
from quaero.jsonutil import dumps, loads
from quaero.models import Document, Models


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


def document_dict(doc: Document, *, full: bool = True) -> dict[str, Any]:
    """A document as plain JSON-ready data."""
    from quaero.events import iso

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
    """Upsert, get, list and count documents."""

    def __init__(self, database: Database, models: Models) -> None:
        self.database = database
        self.models = models

    def upsert(self, item: DocumentInput, *, job_id: str | None = None) -> SaveResult:
        """Insert or update by ``(source_type, source_ref)``; an unchanged document is left as it is."""
        digest = content_hash(item.markdown, item.html)
        stamp = time.time()
        values = dict(
            title=item.title, markdown=item.markdown, html=item.html, metadata=dumps(item.metadata),
            tags=dumps(sorted(set(item.tags))), keywords=dumps(item.keywords), summary=item.summary,
            content_hash=digest, job_id=job_id, updated_at=stamp,
        )
        try:
            return self._upsert(item, values, digest, stamp)
        except pw.IntegrityError:
            # Another process inserted the same reference between our look and our insert (PostgreSQL;
            # SQLite writers are serialised): it exists now, so this becomes an update.
            return self._upsert(item, values, digest, stamp)

    def _upsert(self, item: DocumentInput, values: dict[str, Any], digest: str, stamp: float) -> SaveResult:
        Doc = self.models.Document
        with self.database.write():
            existing = (Doc.select(Doc.id, Doc.content_hash, Doc.tags, Doc.title, Doc.job_id)
                        .where(Doc.source_type == item.source_type, Doc.source_ref == item.source_ref)
                        .first())
            if existing is None:
                doc_id = Doc.insert(source_type=item.source_type, source_ref=item.source_ref, created_at=stamp,
                                    **values).execute()
                return SaveResult(doc_id, created=True, changed=True, first_for_job=True)
            first = existing.job_id != values["job_id"]
            if (existing.content_hash == digest and existing.tags == values["tags"]
                    and existing.title == item.title):
                return SaveResult(existing.id, created=False, changed=False, first_for_job=False)
            Doc.update(**values).where(Doc.id == existing.id).execute()
            return SaveResult(existing.id, created=False, changed=True, first_for_job=first)

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

    def list(self, *, source_type: str | None = None, job_id: str | None = None,
             limit: int = 50, offset: int = 0) -> list[Document]:
        """Documents, newest first."""
        Doc = self.models.Document
        query = Doc.select()
        if source_type:
            query = query.where(Doc.source_type == source_type)
        if job_id:
            query = query.where(Doc.job_id == job_id)
        return list(query.order_by(Doc.updated_at.desc(), Doc.id.desc()).limit(limit).offset(offset))

    def count(self, *, source_type: str | None = None) -> int:
        """How many documents (of one source type)."""
        Doc = self.models.Document
        query = Doc.select()
        if source_type:
            query = query.where(Doc.source_type == source_type)
        return query.count()
