"""Ranking quality of one result list against graded judgements (2: the answer, 1: related, else 0).

The definitions, so that the figures can be compared with other evaluations:

- hit@k: 1 when an answer (grade 2) is among the first ``k`` results, else 0.
- reciprocal rank@k: 1 / the rank of the first answer when it is among the first ``k``, else 0.
- nDCG@k: sum of ``grade / log2(rank + 1)`` over the first ``k`` results (linear gain, trec_eval's form),
  divided by the same sum for the judged documents in the best order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

ANSWER = 2


def hit_at(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """1.0 when a document graded as the answer is in the first ``k`` of ``ranking``."""
    return float(any(grades.get(ref, 0) >= ANSWER for ref in ranking[:k]))


def reciprocal_rank_at(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """1 / the rank of the first answer within the first ``k``, or 0.0."""
    for rank, ref in enumerate(ranking[:k], start=1):
        if grades.get(ref, 0) >= ANSWER:
            return 1.0 / rank
    return 0.0


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of ``gains`` in rank order (rank 1 first)."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ndcg_at(ranking: Sequence[str], grades: Mapping[str, int], k: int) -> float:
    """nDCG@k with graded relevance; 0.0 when nothing is judged relevant."""
    ideal = dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([grades.get(ref, 0) for ref in ranking[:k]]) / ideal
