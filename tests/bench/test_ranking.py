"""The relevance benchmark's metrics on rankings whose scores are known by hand."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ranking import hit_at, ndcg_at, reciprocal_rank_at

GRADES = {"answer": 2, "related": 1}


def test_perfect_ranking_scores_one() -> None:
    ranking = ["answer", "related", "x"]
    assert hit_at(ranking, GRADES, 3) == 1.0
    assert reciprocal_rank_at(ranking, GRADES, 10) == 1.0
    assert ndcg_at(ranking, GRADES, 10) == pytest.approx(1.0)


def test_answer_third_after_an_unjudged_document_and_the_related_one() -> None:
    ranking = ["x", "related", "answer"]
    assert hit_at(ranking, GRADES, 3) == 1.0
    assert hit_at(ranking, GRADES, 2) == 0.0
    assert reciprocal_rank_at(ranking, GRADES, 10) == pytest.approx(1 / 3)
    ideal = 2 + 1 / math.log2(3)
    assert ndcg_at(ranking, GRADES, 10) == pytest.approx((1 / math.log2(3) + 2 / math.log2(4)) / ideal)


def test_related_only_or_nothing_found() -> None:
    assert reciprocal_rank_at(["related"], GRADES, 10) == 0.0
    assert ndcg_at(["related"], GRADES, 10) == pytest.approx(1 / (2 + 1 / math.log2(3)))
    assert ndcg_at([], GRADES, 10) == 0.0
    assert hit_at([], GRADES, 3) == 0.0


def test_answer_past_the_cut_off_counts_nothing() -> None:
    ranking = [f"x{i}" for i in range(10)] + ["answer"]
    assert reciprocal_rank_at(ranking, GRADES, 10) == 0.0
    assert ndcg_at(ranking, GRADES, 10) == 0.0
