"""The relevance benchmark's hand-written queries stay valid against its committed corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from relevance import KINDS, QUERIES, load_queries
from stdlib_docs import committed


def test_every_answer_is_a_document_of_the_committed_corpus() -> None:
    _, docs = committed()
    queries = load_queries(QUERIES, {d.source_ref for d in docs})
    assert len(queries) >= 60
    assert {q.kind for q in queries} == set(KINDS)


def test_an_answer_missing_from_the_corpus_stops_the_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "queries.yaml"
    path.write_text("- q: assert\n  kind: words\n  relevant: {pydoc:topic/asert: 2}\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="pydoc:topic/asert is not in the corpus"):
        load_queries(path, {"pydoc:topic/assert"})
