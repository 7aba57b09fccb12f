"""The vector scan benchmark's variants find the same documents as the exact float32 scan."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import vector_scan
from vector_scan import chunk_owners, numpy_f16, numpy_f32, sqlite_module, unit_vectors, vec0


@pytest.fixture
def vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    owners = chunk_owners(400, rng)
    return unit_vectors(len(owners), rng), owners, unit_vectors(5, rng)


def test_the_float16_scan_in_blocks_finds_the_exact_documents(vectors, monkeypatch) -> None:
    chunks, owners, queries = vectors
    monkeypatch.setattr(vector_scan, "BLOCK_ROWS", 100)  # several blocks per thread
    exact, _ = numpy_f32(chunks, owners)
    half, size = numpy_f16(chunks, owners)
    assert size == chunks.size * 2
    for query in queries:
        assert len(exact(query)) == 10
        assert half(query) == exact(query)


def test_vec0_finds_the_exact_documents(vectors, tmp_path: Path) -> None:
    assert sqlite_module() is not None, "the test extra installs sqlean.py, whose sqlite3 loads extensions"
    chunks, owners, queries = vectors
    exact, _ = numpy_f32(chunks, owners)
    with vec0(chunks, owners, "float", tmp_path) as (search, size, _):
        assert size > chunks.nbytes
        assert [search(q) for q in queries] == [exact(q) for q in queries]
