"""The documents' vectors for search by meaning: stored compactly, queued by triggers, scanned in memory.

Tables (both backends):

- ``embedding_queue``: the documents to embed. Triggers on ``documents`` queue a document when it is
  inserted or its title or body changes, in the statement that changes it (as the full-text index
  follows it), so no save can be forgotten; an embedder claims rows for a while (``claimed_until``) so
  that two processes do not embed the same page, and a killed one's claims lapse.
- ``document_vectors``: one row per embedded document: the ``model`` that embedded it, the content hash it
  was embedded from, its chunks' vectors as one float16 blob (``chunks × dimensions × 2`` bytes), the
  chunks' spans in the markdown and their headings, and ``seq``, which grows with each write so that a
  process's in-memory index reads only what changed. Deleting a document deletes its row (trigger).

Searching scans every chunk vector in memory (:class:`VectorIndex`): the float16 blobs expanded once to a
float32 matrix (numpy's float16 arithmetic is several times slower than float32's, and sqlite-vec's
``vec0`` scans no faster than numpy; see ``bench/vector_scan.py``), multiplied with the query's vector in
blocks. The same scan serves both backends (pgvector was not on the PostgreSQL server this was built on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quaero.api.embeddings import EmbeddingReport
from quaero.stores.db import Database
from quaero.stores.jsonutil import dumps, loads

CLAIM_SECONDS = 120.0  # a batch takes seconds; a killed embedder's documents wait this long at most
DTYPE = np.dtype("<f2")  # as stored
MEMORY = np.float32  # as scanned
BLOCK_ROWS = 32768
REFRESH_EVERY = 0.5  # seconds between two looks for new vectors, at most

_NOW_SQLITE = "((julianday('now') - 2440587.5) * 86400.0)"
_SQLITE_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS embedding_queue (document_id INTEGER PRIMARY KEY, queued_at REAL NOT NULL, "
    "claimed_until REAL, generation INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS document_vectors (document_id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
    "content_hash TEXT NOT NULL, dimensions INTEGER NOT NULL, chunks INTEGER NOT NULL, vectors BLOB NOT NULL, "
    "spans TEXT NOT NULL, embedded_at REAL NOT NULL, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS document_vectors_seq ON document_vectors (model, seq)",
    # The next seq is MAX(seq) + 1, read at every save: from this index, not by reading every row.
    "CREATE INDEX IF NOT EXISTS document_vectors_last ON document_vectors (seq)",
    f"""CREATE TRIGGER IF NOT EXISTS documents_embed_insert AFTER INSERT ON documents BEGIN
        INSERT INTO embedding_queue (document_id, queued_at) VALUES (new.id, {_NOW_SQLITE})
        ON CONFLICT (document_id) DO UPDATE SET queued_at = excluded.queued_at, claimed_until = NULL,
        generation = embedding_queue.generation + 1;
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS documents_embed_update AFTER UPDATE OF title, markdown ON documents
    WHEN old.title IS NOT new.title OR old.markdown IS NOT new.markdown BEGIN
        INSERT INTO embedding_queue (document_id, queued_at) VALUES (new.id, {_NOW_SQLITE})
        ON CONFLICT (document_id) DO UPDATE SET queued_at = excluded.queued_at, claimed_until = NULL,
        generation = embedding_queue.generation + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS documents_embed_delete AFTER DELETE ON documents BEGIN
        DELETE FROM embedding_queue WHERE document_id = old.id;
        DELETE FROM document_vectors WHERE document_id = old.id;
    END""",
]
POSTGRES_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS embedding_queue (document_id BIGINT PRIMARY KEY, queued_at DOUBLE PRECISION NOT NULL, "
    "claimed_until DOUBLE PRECISION, generation INTEGER NOT NULL DEFAULT 0)",
    "CREATE SEQUENCE IF NOT EXISTS document_vectors_seq",
    "CREATE TABLE IF NOT EXISTS document_vectors (document_id BIGINT PRIMARY KEY, model TEXT NOT NULL, "
    "content_hash TEXT NOT NULL, dimensions INTEGER NOT NULL, chunks INTEGER NOT NULL, vectors BYTEA NOT NULL, "
    "spans TEXT NOT NULL, embedded_at DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS document_vectors_seq_index ON document_vectors (model, seq)",
    """CREATE OR REPLACE FUNCTION quaero_embed_queue() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM embedding_queue WHERE document_id = OLD.id;
            DELETE FROM document_vectors WHERE document_id = OLD.id;
            RETURN OLD;
        END IF;
        IF TG_OP = 'UPDATE' AND OLD.title IS NOT DISTINCT FROM NEW.title
           AND OLD.markdown IS NOT DISTINCT FROM NEW.markdown THEN
            RETURN NEW;
        END IF;
        INSERT INTO embedding_queue (document_id, queued_at) VALUES (NEW.id, extract(epoch from clock_timestamp()))
        ON CONFLICT (document_id) DO UPDATE SET queued_at = excluded.queued_at, claimed_until = NULL,
        generation = embedding_queue.generation + 1;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS documents_embed ON documents",
    "CREATE TRIGGER documents_embed AFTER INSERT OR UPDATE OF title, markdown OR DELETE ON documents "
    "FOR EACH ROW EXECUTE FUNCTION quaero_embed_queue()",
]

def install(database: Any) -> None:
    """Create the tables and triggers (inside the schema transaction of :func:`quaero.stores.models.bind_models`)."""
    import peewee as pw

    postgres = isinstance(database, pw.PostgresqlDatabase)
    existed = database.execute_sql(
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'embedding_queue'" if postgres
        else "SELECT 1 FROM sqlite_master WHERE name = 'embedding_queue'").fetchone() is not None
    for statement in POSTGRES_SCHEMA if postgres else _SQLITE_SCHEMA:
        database.execute_sql(statement)
    if not existed:  # documents saved before search by meaning existed are queued once
        now = time.time()
        database.execute_sql("INSERT INTO embedding_queue (document_id, queued_at) SELECT id, "
                             + ("%s" if postgres else "?") + " FROM documents", (now,))


@dataclass(frozen=True)
class Span:
    """Where a chunk is: ``markdown[start:end]``, under ``heading``."""

    start: int
    end: int
    heading: str


@dataclass(frozen=True)
class Claimed:
    """A queued document claimed for embedding, with what it says now."""

    document_id: int
    generation: int  # how many times it was queued again since its row was made
    title: str
    markdown: str
    content_hash: str


@dataclass(frozen=True)
class Nearest:
    """A document near the query: its best chunk and that chunk's cosine similarity."""

    document_id: int
    chunk: int
    score: float


def encode(vectors: np.ndarray) -> bytes:
    """Vectors as the stored blob (row-major float16, little-endian)."""
    return np.ascontiguousarray(vectors, dtype=DTYPE).tobytes()


def normalised(vectors: Any) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


class VectorStore:
    """The queue and the stored vectors of one database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # ------------------------------------------------------------------------------------------ the queue

    def queued(self) -> int:
        return self.database.execute("SELECT COUNT(*) FROM embedding_queue").fetchone()[0]

    def claim(self, limit: int, *, seconds: float = CLAIM_SECONDS) -> list[Claimed]:
        """Claim up to ``limit`` queued documents that nobody holds, oldest first, with their text now."""
        now = time.time()
        skip = " FOR UPDATE SKIP LOCKED" if self.database.is_postgres else ""
        with self.database.write():
            rows = self.database.execute(
                "UPDATE embedding_queue SET claimed_until = ? WHERE (claimed_until IS NULL OR claimed_until < ?) "
                "AND document_id IN (SELECT document_id FROM embedding_queue WHERE claimed_until IS NULL "
                f"OR claimed_until < ? ORDER BY queued_at, document_id LIMIT ?{skip}) "
                "RETURNING document_id, generation, queued_at", (now + seconds, now, now, limit)).fetchall()
            if not rows:
                return []
            queued = {row[0]: row[1] for row in rows}
            order = {row[0]: row[2] for row in rows}
            found = self._texts(list(queued))
            gone = [doc_id for doc_id in queued if doc_id not in found]
            if gone:  # deleted meanwhile (the trigger missed nothing: the queue row is older than that)
                self.database.execute(f"DELETE FROM embedding_queue WHERE document_id IN ({_marks(gone)})", gone)
        ordered = sorted(found, key=lambda doc_id: (order[doc_id], doc_id))
        return [Claimed(doc_id, queued[doc_id], *found[doc_id]) for doc_id in ordered]

    def _texts(self, ids: list[int]) -> dict[int, tuple[str, str, str]]:
        rows = self.database.execute(f"SELECT id, title, markdown, content_hash FROM documents "
                                     f"WHERE id IN ({_marks(ids)})", ids).fetchall()
        return {row[0]: (row[1] or "", row[2] or "", row[3] or "") for row in rows}

    def next_lapse(self) -> float | None:
        """Seconds until the first claim held now lapses (``None``: nothing is claimed)."""
        row = self.database.execute("SELECT MIN(claimed_until) FROM embedding_queue WHERE claimed_until > ?",
                                    (time.time(),)).fetchone()
        return None if row is None or row[0] is None else max(0.0, float(row[0]) - time.time())

    def release(self, ids: Iterable[int]) -> None:
        """Give claimed documents back to the queue (the embedder failed on them)."""
        ids = list(ids)
        if ids:
            self.database.write_one(f"UPDATE embedding_queue SET claimed_until = NULL "
                                    f"WHERE document_id IN ({_marks(ids)})", ids)

    def queue_stale(self, model: str) -> int:
        """Queue every document without vectors from ``model`` for its content now; how many were queued."""
        sql = ("INSERT INTO embedding_queue (document_id, queued_at) SELECT d.id, ? FROM documents AS d "
               "LEFT JOIN document_vectors AS v ON v.document_id = d.id WHERE (v.document_id IS NULL "
               "OR v.model <> ? OR v.content_hash <> d.content_hash) ON CONFLICT (document_id) DO NOTHING")
        with self.database.write():
            return self.database.execute(sql, (time.time(), model)).rowcount

    # ------------------------------------------------------------------------------------------ vectors

    def save(self, item: Claimed, model: str, vectors: np.ndarray, spans: Sequence[Span]) -> bool:
        """Store a claimed document's vectors, unless its content changed since it was claimed (it is queued
        again then); its queue row goes unless it was queued again meanwhile. ``False``: not stored."""
        return self.save_many(model, [(item, vectors, spans)]) == 1

    def save_many(self, model: str, embedded: Sequence[tuple[Claimed, np.ndarray, Sequence[Span]]]) -> int:
        """:meth:`save` for a batch, in one write transaction (the crawl's writes wait once, not per page);
        how many were stored."""
        with self.database.write():
            return sum(self._save(item, model, vectors, spans) for item, vectors, spans in embedded)

    def _save(self, item: Claimed, model: str, vectors: np.ndarray, spans: Sequence[Span]) -> bool:
        """Inside the write transaction: one document of :meth:`save_many`."""
        blob = encode(vectors)
        dimensions = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else 0
        spans_json = dumps([[span.start, span.end, span.heading] for span in spans])
        row = self.database.execute("SELECT content_hash, title FROM documents WHERE id = ?",
                                    (item.document_id,)).fetchone()
        current = row is not None and row[0] == item.content_hash and (row[1] or "") == item.title
        if current:
            seq = ("nextval('document_vectors_seq')" if self.database.is_postgres
                   else "(SELECT COALESCE(MAX(seq), 0) + 1 FROM document_vectors)")
            self.database.execute(
                "INSERT INTO document_vectors (document_id, model, content_hash, dimensions, chunks, vectors, "
                f"spans, embedded_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {seq}) ON CONFLICT (document_id) DO "
                "UPDATE SET model = excluded.model, content_hash = excluded.content_hash, dimensions = "
                "excluded.dimensions, chunks = excluded.chunks, vectors = excluded.vectors, spans = "
                "excluded.spans, embedded_at = excluded.embedded_at, seq = excluded.seq",
                (item.document_id, model, item.content_hash, dimensions, len(spans), blob, spans_json,
                 time.time()))
        self.database.execute("DELETE FROM embedding_queue WHERE document_id = ? AND generation = ?",
                              (item.document_id, item.generation))
        return current

    def chunk_text(self, doc_id: int, span: Span, max_chars: int | None = None) -> str:
        """The markdown of one chunk (its first ``max_chars``), as the document holds it now."""
        length = span.end - span.start if max_chars is None else min(max_chars, span.end - span.start)
        row = self.database.execute("SELECT substr(markdown, ?, ?) FROM documents WHERE id = ?",
                                    (span.start + 1, max(0, length), doc_id)).fetchone()
        return (row[0] or "") if row else ""

    def spans(self, doc_id: int) -> list[Span]:
        row = self.database.execute("SELECT spans FROM document_vectors WHERE document_id = ?", (doc_id,)).fetchone()
        return [Span(*span) for span in loads(row[0])] if row else []

    def spans_of(self, ids: Sequence[int]) -> dict[int, list[Span]]:
        if not ids:
            return {}
        rows = self.database.execute(f"SELECT document_id, spans FROM document_vectors "
                                     f"WHERE document_id IN ({_marks(ids)})", list(ids)).fetchall()
        return {row[0]: [Span(*span) for span in loads(row[1])] for row in rows}

    def embedded_any(self) -> bool:
        return self.database.execute("SELECT EXISTS (SELECT 1 FROM document_vectors)").fetchone()[0] in (1, True)

    def check(self, model: str) -> EmbeddingReport:
        """How the vectors stand against the documents, under ``model``."""
        size = "octet_length" if self.database.is_postgres else "length"
        documents, embedded, missing, stale, queued, chunks, bytes_per = self.database.execute(
            "SELECT (SELECT COUNT(*) FROM documents), "
            "(SELECT COUNT(*) FROM document_vectors AS v JOIN documents AS d ON d.id = v.document_id "
            " WHERE v.model = ? AND v.content_hash = d.content_hash), "
            "(SELECT COUNT(*) FROM documents AS d WHERE NOT EXISTS "
            " (SELECT 1 FROM document_vectors AS v WHERE v.document_id = d.id)), "
            "(SELECT COUNT(*) FROM document_vectors AS v JOIN documents AS d ON d.id = v.document_id "
            " WHERE v.model <> ? OR v.content_hash <> d.content_hash), "
            "(SELECT COUNT(*) FROM embedding_queue), "
            "(SELECT COALESCE(SUM(chunks), 0) FROM document_vectors WHERE model = ?), "
            f"(SELECT AVG({size}(vectors) + {size}(spans) + 48) FROM document_vectors WHERE model = ?)",
            (model, model, model, model)).fetchone()
        return EmbeddingReport(model, documents, embedded, missing, stale, queued, int(chunks),
                               None if bytes_per is None else round(float(bytes_per), 1))

    def changes(self, model: str, after: int, limit: int = 5000) -> list[tuple]:
        """(document_id, seq, dimensions, vectors) written by ``model`` after ``seq``, in seq order."""
        return self.database.execute("SELECT document_id, seq, dimensions, vectors FROM document_vectors "
                                     "WHERE model = ? AND seq > ? ORDER BY seq LIMIT ?",
                                     (model, after, limit)).fetchall()

    def chunk_total(self, model: str) -> int:
        """How many chunk vectors ``model`` has stored."""
        return int(self.database.execute("SELECT COALESCE(SUM(chunks), 0) FROM document_vectors WHERE model = ?",
                                         (model,)).fetchone()[0])

    def signature(self, model: str) -> tuple[int, int]:
        """(rows, highest seq) of ``model``'s vectors: what an in-memory copy compares itself with."""
        count, top = self.database.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM document_vectors "
                                           "WHERE model = ?", (model,)).fetchone()
        return int(count), int(top)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


class VectorIndex:
    """Every chunk vector of one model in memory, kept up to date with the database, scanned per query.

    The copy follows ``seq``: it reads the rows written after the highest ``seq`` it holds. On PostgreSQL
    a row can commit after one with a higher ``seq``; and deletions leave no row to read: in both cases
    the row count no longer matches, and the copy is read again from scratch.
    """

    def __init__(self, store: VectorStore, model: str, dimensions: int) -> None:
        self.store = store
        self.model = model
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._matrix = np.zeros((0, dimensions), dtype=MEMORY)
        self._doc_of_row = np.zeros(0, dtype=np.int64)
        self._chunk_of_row = np.zeros(0, dtype=np.int32)
        self._live = np.zeros(0, dtype=bool)
        self._rows: dict[int, tuple[int, int]] = {}  # document id -> (first row, chunks)
        self._used = 0
        self._seq = 0
        self._checked = 0.0

    @property
    def documents(self) -> int:
        return len(self._rows)

    def refresh(self, *, force: bool = False, max_age: float = REFRESH_EVERY) -> None:
        """Read what changed since the last look, if that was ``max_age`` seconds ago (at once if ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < max_age:
            return
        with self._lock:
            self._checked = now
            count, top = self.store.signature(self.model)
            if top == self._seq and count == len(self._rows):
                return
            self._read_changes()
            if len(self._rows) != count:  # deleted rows, or one committed late: read everything again
                self._reset()
                self._read_changes()

    def _read_changes(self) -> None:
        """Every row written after the highest ``seq`` held (from the start: the matrix sized at once)."""
        if not self._seq:
            self._grow(self.store.chunk_total(self.model))
        while rows := self.store.changes(self.model, self._seq):
            for doc_id, seq, dimensions, blob in rows:
                self._put(int(doc_id), int(dimensions), bytes(blob))
                self._seq = max(self._seq, int(seq))

    def _reset(self) -> None:
        self._matrix = np.zeros((0, self.dimensions), dtype=MEMORY)
        self._doc_of_row = np.zeros(0, dtype=np.int64)
        self._chunk_of_row = np.zeros(0, dtype=np.int32)
        self._live = np.zeros(0, dtype=bool)
        self._rows, self._used, self._seq = {}, 0, 0

    def _put(self, doc_id: int, dimensions: int, blob: bytes) -> None:
        old = self._rows.pop(doc_id, None)
        if old is not None:
            self._live[old[0]:old[0] + old[1]] = False
        if dimensions != self.dimensions or not blob:  # nothing to search (an empty page), but counted
            self._rows[doc_id] = (self._used, 0)
            return
        vectors = np.frombuffer(blob, dtype=DTYPE).reshape(-1, dimensions)
        n = len(vectors)
        self._grow(self._used + n)
        start = self._used
        self._matrix[start:start + n] = vectors
        self._doc_of_row[start:start + n] = doc_id
        self._chunk_of_row[start:start + n] = np.arange(n, dtype=np.int32)
        self._live[start:start + n] = True
        self._rows[doc_id] = (start, n)
        self._used += n

    def _grow(self, needed: int) -> None:
        capacity = len(self._matrix)
        if needed <= capacity:
            return
        size = max(needed, capacity * 2, 1024)

        def grown(array: np.ndarray, fill: Any) -> np.ndarray:
            bigger = np.full((size, *array.shape[1:]), fill, dtype=array.dtype)
            bigger[:capacity] = array
            return bigger

        self._matrix = grown(self._matrix, 0)
        self._doc_of_row = grown(self._doc_of_row, -1)
        self._chunk_of_row = grown(self._chunk_of_row, 0)
        self._live = grown(self._live, False)

    def vectors_of(self, doc_id: int) -> np.ndarray | None:
        """The chunk vectors of one document (float32), if it is embedded."""
        with self._lock:
            where = self._rows.get(doc_id)
            return None if where is None else self._matrix[where[0]:where[0] + where[1]].copy()

    def nearest(self, query: np.ndarray, limit: int, *, allowed: set[int] | None = None,
                excluded: set[int] | None = None) -> list[Nearest]:
        """The ``limit`` documents whose best chunk is nearest ``query`` (unit vectors: cosine), best first;
        only ``allowed`` ones when given, never ``excluded`` ones."""
        return self.ranking(query).restricted(allowed, excluded).first(limit)

    def ranking(self, query: np.ndarray) -> Ranking:
        """Every embedded chunk scored against ``query`` (unit vectors: cosine), to be read best first."""
        with self._lock:
            used = self._used
            # Views, not copies: rows below ``used`` never change (a document embedded again gets new rows,
            # its old ones are only marked dead), and a grown or reset index makes new arrays.
            docs, chunks = self._doc_of_row[:used], self._chunk_of_row[:used]
            scores = np.empty(used, dtype=np.float32)
            if used:
                matrix, q = self._matrix[:used], np.asarray(query, dtype=np.float32).reshape(-1)
                for start in range(0, used, BLOCK_ROWS):
                    np.matmul(matrix[start:start + BLOCK_ROWS], q, out=scores[start:start + BLOCK_ROWS])
                scores[~self._live[:used]] = -np.inf
        return Ranking(scores, docs, chunks)


class Ranking:
    """The chunks of one query's scan, best first, read only as deep as asked: the nearest documents, each
    by its best chunk. Search reads a few hundred, checks them against the query's filters, and reads deeper
    only if too few passed (post-filtering), or restricts the ranking to the documents a filter allows."""

    def __init__(self, scores: np.ndarray, docs: np.ndarray, chunks: np.ndarray) -> None:
        self.scores = scores
        self.docs = docs
        self.chunks = chunks

    def restricted(self, allowed: set[int] | None = None, excluded: set[int] | None = None) -> Ranking:
        """The same ranking with only ``allowed`` documents in it (when given), and no ``excluded`` one."""
        if allowed is None and not excluded:
            return self
        scores = self.scores.copy()
        if allowed is not None:
            scores[~np.isin(self.docs, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))] = -np.inf
        if excluded:
            scores[np.isin(self.docs, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))] = -np.inf
        return Ranking(scores, self.docs, self.chunks)

    def first(self, limit: int) -> list[Nearest]:
        """The ``limit`` nearest documents, best first (fewer when fewer are in the ranking)."""
        scores, used = self.scores, len(self.scores)
        rows = max(limit * 8, 64)  # a document has a few chunks: read deeper until ``limit`` are found
        while limit > 0 and used:
            wanted = min(used, rows)
            top = np.sort(np.argpartition(-scores, wanted - 1)[:wanted]) if wanted < used else np.arange(used)
            top = top[np.argsort(-scores[top], kind="stable")]  # equal scores in the order of the rows
            top = top[scores[top] > -np.inf]
            _, firsts = np.unique(self.docs[top], return_index=True)  # each document's best row
            if len(firsts) >= limit or len(top) < wanted or wanted == used:
                chosen = top[np.sort(firsts)[:limit]]
                return [Nearest(doc_id, chunk, score) for doc_id, chunk, score in zip(
                    self.docs[chosen].tolist(), self.chunks[chosen].tolist(), scores[chosen].tolist(), strict=True)]
            rows *= 4
        return []
