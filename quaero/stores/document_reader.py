"""The knowledge base as the plugin API reads it (:class:`quaero.api.Documents`): rows become plain data."""

from __future__ import annotations

import builtins

from quaero.api.documents import Document, DocumentFilter, Documents, SearchPage
from quaero.stores.documents import DocumentStore, document_data
from quaero.stores.search import DocumentSearch


class DocumentReader(Documents):
    """Read-only queries over the document store and the search index."""

    def __init__(self, store: DocumentStore, search: DocumentSearch) -> None:
        self._store = store
        self._search = search

    def get(self, doc_id: int) -> Document:
        return document_data(self._store.get(doc_id))

    def find(self, source_type: str, source_ref: str) -> Document | None:
        row = self._store.get_by_ref(source_type, source_ref)
        return document_data(row) if row is not None else None

    def list(self, where: DocumentFilter = DocumentFilter(), *, sort: str = "-updated_at", limit: int = 50,
             offset: int = 0, bodies: bool = True) -> list[Document]:
        return [document_data(row) for row in self._store.list(where, sort=sort, limit=limit, offset=offset,
                                                               bodies=bodies)]

    def ids(self, where: DocumentFilter = DocumentFilter()) -> builtins.list[int]:
        return self._store.ids(where)

    def count(self, where: DocumentFilter = DocumentFilter()) -> int:
        return self._store.count(where)

    def search(self, query: str, *, limit: int = 20, offset: int = 0) -> SearchPage:
        return self._search.search(query, limit=limit, offset=offset)
