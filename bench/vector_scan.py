"""Brute-force vector search, four ways, on the same vectors: which to build search by meaning on.

    python bench/vector_scan.py [--json] [--documents 100000] [--queries 100]

- The vectors: about 3 chunks per document (1-5, seeded), 128 dimensions, random unit vectors from a
  fixed seed (a brute-force scan costs the same whatever the values). Each query is another random unit
  vector; the answer is the 10 best documents (a document scores its best chunk), from the best 40 chunks.
- numpy_f16: the matrix kept as float16 (half the bytes), converted to float32 a block of 4,096 rows at a
  time for the matrix-vector product (numpy has no fast float16 product), one thread per core.
- numpy_f32: the matrix kept as float32, one product.
- vec0_f32 / vec0_int8: sqlite-vec's ``vec0`` virtual table in a real SQLite file (WAL, as Quaero opens
  its files), ``embedding float[128]`` or ``int8[128]`` (each value × 127, rounded), queried with
  ``WHERE embedding MATCH ? AND k = 40``. Python's sqlite3 must be able to load extensions; when it cannot
  (pyenv's builds), the ``sqlean`` package's sqlite3 is used if installed, else these two are skipped.
- Per variant: build_s (numpy: making the stored matrix from the float32 vectors; vec0: the inserts and
  commit), bytes_per_document (the matrix, or the database file), ms_p50/ms_p95 per query after a warm-up
  of 5 queries, and recall_at_10 against numpy_f32's documents (the exact answer).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import print_figures

SEED = 20251203
DIMENSIONS = 128
TOP_DOCUMENTS, TOP_CHUNKS = 10, 40
BLOCK_ROWS = 4096
WARM_UP = 5
Search = Callable[[np.ndarray], list[int]]


def unit_vectors(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random float32 unit vectors of :data:`DIMENSIONS`."""
    vectors = rng.standard_normal((count, DIMENSIONS), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def chunk_owners(documents: int, rng: np.random.Generator) -> np.ndarray:
    """The document of each chunk: 1-5 chunks a document (3 on average), in document order."""
    return np.repeat(np.arange(documents, dtype=np.int32), rng.integers(1, 6, size=documents))


def best_documents(chunks: np.ndarray, owners: np.ndarray) -> list[int]:
    """The first :data:`TOP_DOCUMENTS` distinct documents of ``chunks`` (best first)."""
    return list(dict.fromkeys(owners[chunks].tolist()))[:TOP_DOCUMENTS]


def _top_chunks(scores: np.ndarray) -> np.ndarray:
    best = np.argpartition(scores, -TOP_CHUNKS)[-TOP_CHUNKS:]
    return best[np.argsort(-scores[best])]


def numpy_f32(vectors: np.ndarray, owners: np.ndarray) -> tuple[Search, int]:
    """A float32 matrix: one product per query. The search and its bytes."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    return (lambda query: best_documents(_top_chunks(matrix @ query), owners)), matrix.nbytes


def numpy_f16(vectors: np.ndarray, owners: np.ndarray) -> tuple[Search, int]:
    """A float16 matrix, converted to float32 block by block for the product, on every core (numpy's cast
    releases the GIL; the float32 product gets every core from BLAS too)."""
    matrix = vectors.astype(np.float16)
    scores = np.empty(len(matrix), dtype=np.float32)
    workers = os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers)
    buffers = [np.empty((BLOCK_ROWS, DIMENSIONS), dtype=np.float32) for _ in range(workers)]
    bounds = np.linspace(0, len(matrix), workers + 1).astype(int)

    def part(worker: int, query: np.ndarray) -> None:
        block = buffers[worker]
        for start in range(bounds[worker], bounds[worker + 1], BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, bounds[worker + 1])
            converted = block[:stop - start]
            converted[...] = matrix[start:stop]  # float16 -> float32 into this thread's buffer
            np.einsum("ij,j->i", converted, query, out=scores[start:stop])  # no BLAS: its threads would contend

    def search(query: np.ndarray) -> list[int]:
        list(pool.map(part, range(workers), [query] * workers))
        return best_documents(_top_chunks(scores), owners)

    return search, matrix.nbytes


def sqlite_module() -> ModuleType | None:
    """A sqlite3 module that can load extensions (the standard one, else ``sqlean``), or ``None``."""
    import sqlite3

    if hasattr(sqlite3.Connection, "enable_load_extension"):
        return sqlite3
    try:
        import sqlean  # type: ignore[import-not-found]
    except ImportError:
        return None
    return sqlean


@contextmanager
def vec0(vectors: np.ndarray, owners: np.ndarray, kind: str, folder: Path) -> Iterator[tuple[Search, int, float]]:
    """A ``vec0`` table of ``kind`` (``float`` or ``int8``) in a fresh SQLite file: the search, the file's
    bytes and the build time."""
    import sqlite_vec

    sqlite = sqlite_module()
    assert sqlite is not None
    path = folder / f"vec0_{kind}.db"
    connection = sqlite.connect(path)
    connection.enable_load_extension(True)
    sqlite_vec.load(connection)
    connection.enable_load_extension(False)
    for pragma in ("journal_mode = wal", "synchronous = normal", "cache_size = -32000",
                   "mmap_size = 268435456", "temp_store = memory"):
        connection.execute(f"PRAGMA {pragma}")
    if kind == "int8":
        stored = np.clip(np.rint(vectors * 127), -127, 127).astype(np.int8)
        value = "vec_int8(?)"
    else:
        stored, value = vectors.astype(np.float32), "?"
    started = time.perf_counter()
    connection.execute(f"CREATE VIRTUAL TABLE chunks USING vec0(embedding {kind}[{DIMENSIONS}])")
    with connection:
        connection.executemany(f"INSERT INTO chunks(rowid, embedding) VALUES (?, {value})",
                               ((i, row.tobytes()) for i, row in enumerate(stored)))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    build_s = time.perf_counter() - started
    size = path.stat().st_size
    sql = f"SELECT rowid FROM chunks WHERE embedding MATCH {value} AND k = {TOP_CHUNKS} ORDER BY distance"

    def search(query: np.ndarray) -> list[int]:
        probe = np.clip(np.rint(query * 127), -127, 127).astype(np.int8) if kind == "int8" else query
        rows = connection.execute(sql, (probe.tobytes(),)).fetchall()
        return best_documents(np.array([r[0] for r in rows], dtype=np.int64), owners)

    try:
        yield search, size, build_s
    finally:
        connection.close()


def time_queries(search: Search, queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """Milliseconds per query after a warm-up, and each query's documents."""
    for query in queries[:WARM_UP]:
        search(query)
    timings, answers = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(search(query))
        timings.append((time.perf_counter() - started) * 1000)
    return timings, answers


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(documents: int, queries: int) -> dict[str, Any]:
    """Every variant's figures, as one flat dictionary."""
    rng = np.random.default_rng(SEED)
    owners = chunk_owners(documents, rng)
    vectors = unit_vectors(len(owners), rng)
    probes = unit_vectors(queries, rng)
    figures: dict[str, Any] = {"vector_documents": documents, "vector_chunks": len(owners),
                               "vector_dimensions": DIMENSIONS, "vector_queries": queries}
    exact: list[list[int]] = []

    def record(name: str, search: Search, size: int, build_s: float) -> None:
        timings, answers = time_queries(search, probes)
        if not exact:
            exact.extend(answers)
        recall = statistics.fmean(len(set(a) & set(e)) / len(e) for a, e in zip(answers, exact))
        figures.update({f"{name}_build_s": round(build_s, 2), f"{name}_bytes_per_document": round(size / documents),
                        f"{name}_ms_p50": round(statistics.median(timings), 2),
                        f"{name}_ms_p95": round(_percentile(timings, 0.95), 2),
                        f"{name}_recall_at_10": round(recall, 3)})

    for name, build in (("numpy_f32", numpy_f32), ("numpy_f16", numpy_f16)):
        started = time.perf_counter()
        search, size = build(vectors, owners)
        record(name, search, size, time.perf_counter() - started)
    if sqlite_module() is None:
        figures["vec0_skipped"] = "this Python's sqlite3 cannot load extensions and sqlean is not installed"
        return figures
    with tempfile.TemporaryDirectory(prefix="quaero-bench-vectors-") as tmp:
        for kind in ("float", "int8"):
            with vec0(vectors, owners, kind, Path(tmp)) as (search, size, build_s):
                record(f"vec0_{'f32' if kind == 'float' else kind}", search, size, build_s)
    figures["numpy_f16_over_f32_ms_p50"] = round(figures["numpy_f16_ms_p50"] / figures["numpy_f32_ms_p50"], 2)
    figures["vec0_f32_over_numpy_f16_ms_p50"] = round(figures["vec0_f32_ms_p50"] / figures["numpy_f16_ms_p50"], 2)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args(argv)
    print_figures(measure(args.documents, args.queries), as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
