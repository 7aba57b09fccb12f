"""The vector store on SQLite and PostgreSQL: the queue the triggers fill, claims, saves, staleness, the
in-memory index following writes and deletions."""

from __future__ import annotations

import numpy as np
import pytest

from quaero.api import DocumentInput
from quaero.stores.db import Database
from quaero.stores.documents import DocumentStore
from quaero.stores.models import bind_models
from quaero.stores.vectors import Span, VectorIndex, VectorStore, normalised


@pytest.fixture
def database(stores) -> Database:
    """The database of the stores suite (tests/stores/conftest.py): a real SQLite file, and PostgreSQL."""
    return stores.database


def _docs(database: Database) -> DocumentStore:
    return DocumentStore(database, bind_models(database.db))


def _save(docs: DocumentStore, ref: str, markdown: str, title: str = "T") -> int:
    return docs.upsert(DocumentInput(source_type="web", source_ref=ref, title=title, markdown=markdown)).id


def _embed_all(store: VectorStore, model: str, vector_of) -> int:
    done = 0
    while claimed := store.claim(10):
        for item in claimed:
            vectors = normalised([vector_of(item.markdown), vector_of(item.title)])
            store.save(item, model, vectors, [Span(0, len(item.markdown), ""), Span(0, 0, "")])
            done += 1
    return done


def _axis(i: int, dims: int = 4) -> np.ndarray:
    vector = np.zeros(dims, dtype=np.float32)
    vector[i % dims] = 1.0
    return vector


def test_saves_queue_documents_once_and_only_a_text_change_queues_again(database):
    docs, store = _docs(database), VectorStore(database)
    a = _save(docs, "a", "alpha")
    _save(docs, "b", "beta")
    assert store.queued() == 2
    assert _embed_all(store, "m/4", lambda text: _axis(len(text))) == 2
    assert store.queued() == 0
    docs.update_fields(a, keywords=["x"])  # enrichment does not change what is embedded
    _save(docs, "a", "alpha")  # the same page saved again
    assert store.queued() == 0
    _save(docs, "a", "alpha, changed")
    assert store.queued() == 1
    report = store.check("m/4")
    assert (report.documents, report.embedded, report.stale, report.missing, report.queued) == (2, 1, 1, 0, 1)
    assert report.bytes_per_document and report.bytes_per_document < 200  # 2 chunks x 4 dims x 2 bytes + spans


def test_claims_are_exclusive_lapse_and_a_change_during_embedding_is_not_lost(database):
    docs, store = _docs(database), VectorStore(database)
    a = _save(docs, "a", "first text")
    claimed = store.claim(10)
    assert [item.document_id for item in claimed] == [a]
    assert store.claim(10) == []  # held by the first claimer
    _save(docs, "a", "second text")  # changed while it was being embedded
    assert not store.save(claimed[0], "m/4", normalised([_axis(0)]), [Span(0, 10, "")])
    again = store.claim(10, seconds=-1)  # queued again, with the new text; this claim lapses at once
    assert [item.markdown for item in again] == ["second text"]
    assert [item.markdown for item in store.claim(10)] == ["second text"]  # a lapsed claim is claimable


def test_a_model_change_makes_every_document_stale_and_queue_stale_queues_them(database):
    docs, store = _docs(database), VectorStore(database)
    for i in range(3):
        _save(docs, f"d{i}", f"text {i}")
    _embed_all(store, "old/4", lambda text: _axis(0))
    assert store.check("new/4").stale == 3 and store.check("old/4").embedded == 3
    assert store.queue_stale("old/4") == 0
    assert store.queue_stale("new/4") == 3 and store.queued() == 3


def test_the_index_finds_the_nearest_documents_and_follows_writes_and_deletions(database):
    docs, store = _docs(database), VectorStore(database)
    ids = [_save(docs, f"d{i}", "x" * (i + 1)) for i in range(4)]
    _embed_all(store, "m/4", lambda text: _axis(len(text) - 1))
    index = VectorIndex(store, "m/4", 4)
    index.refresh(force=True)
    assert index.documents == 4
    found = index.nearest(_axis(2), 2)
    assert found[0].document_id == ids[2] and found[0].chunk == 0 and found[0].score == pytest.approx(1.0, abs=1e-3)
    assert index.nearest(_axis(2), 4, allowed={ids[0], ids[1]})[0].document_id in {ids[0], ids[1]}
    assert ids[2] not in {n.document_id for n in index.nearest(_axis(2), 4, excluded={ids[2]})}
    _save(docs, "d2", "x")  # now like d0
    _embed_all(store, "m/4", lambda text: _axis(len(text) - 1))
    index.refresh(force=True)
    assert index.nearest(_axis(2), 1)[0].document_id != ids[2]
    docs.delete(ids[0])
    index.refresh(force=True)
    assert index.documents == 3 and ids[0] not in {n.document_id for n in index.nearest(_axis(0), 4)}
    assert store.spans(ids[0]) == [] and len(store.spans(ids[1])) == 2


def test_documents_saved_before_search_by_meaning_existed_are_queued_once(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        docs = _docs(database)
        _save(docs, "old", "saved long ago")
        database.execute("DROP TABLE embedding_queue")
        bind_models(database.db)
        assert VectorStore(database).queued() == 1
        bind_models(database.db)  # a second start queues nothing more
        assert VectorStore(database).queued() == 1
    finally:
        database.close()


def test_a_document_with_nothing_to_embed_is_counted_and_does_not_make_the_index_read_everything_again(database):
    docs, store = _docs(database), VectorStore(database)
    _save(docs, "empty", "", title="")
    _save(docs, "full", "text")
    for item in store.claim(10):
        vectors = np.zeros((0, 4), dtype=np.float32) if not item.markdown else normalised([_axis(1)])
        assert store.save(item, "m/4", vectors, [] if not item.markdown else [Span(0, 4, "")])
    index = VectorIndex(store, "m/4", 4)
    index.refresh(force=True)
    assert index.documents == 2 and store.signature("m/4")[0] == 2
    seq = index._seq
    index.refresh(force=True)  # nothing changed: nothing is read again
    assert index._seq == seq and [n.document_id for n in index.nearest(_axis(1), 5)] == [2]


def test_the_nearest_documents_are_found_however_many_chunks_the_nearest_one_has(database):
    docs, store = _docs(database), VectorStore(database)
    long_id = _save(docs, "long", "a long page")
    others = [_save(docs, f"short{i}", f"short page {i}") for i in range(3)]
    near, nearer = normalised([[0.8, 0.6, 0, 0]])[0], _axis(0)
    for item in store.claim(10):
        chunks = 300 if item.document_id == long_id else 1  # more chunks than the first rows read
        vectors = np.stack([nearer if item.document_id == long_id else near] * chunks)
        assert store.save(item, "m/4", vectors, [Span(0, 1, "")] * chunks)
    index = VectorIndex(store, "m/4", 4)
    index.refresh(force=True)
    found = index.nearest(_axis(0), 3)
    assert found[0].document_id == long_id and len(found) == 3 and {n.document_id for n in found[1:]} < set(others)
    ranking = index.ranking(_axis(0))
    assert [n.document_id for n in ranking.first(4)] == [long_id, *sorted(others)]
    assert [n.document_id for n in ranking.restricted(excluded={long_id}).first(10)] == sorted(others)
    assert ranking.restricted(allowed={others[1]}).first(10)[0].document_id == others[1]
    assert ranking.restricted(allowed=set()).first(10) == []
