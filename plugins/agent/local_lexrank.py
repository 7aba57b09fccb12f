"""sumy's LexRank, its similarity matrix computed with numpy.

sumy 0.13's :class:`~sumy.summarizers.lex_rank.LexRankSummarizer` compares every pair of sentences word
by word in Python (and counts each term's sentences by scanning them all): 0.43 s for 150 sentences
here. The subclass builds the same tf-idf matrix and takes its cosines with one matrix product: the
same numbers (tests/plugins/agent/test_local.py compares the summaries with sumy's own), 0.06 s.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from .local_text import words

if TYPE_CHECKING:
    from sumy.summarizers.lex_rank import LexRankSummarizer  # type: ignore[import-untyped]


def lexrank_ratings(sentences: list[str], stem: Any, stop_words: frozenset[str]) -> list[float]:
    """LexRank centrality of each sentence (stemmed by ``stem``, lowercase ``stop_words`` left out)."""
    return _fast_lexrank()(stem, stop_words).rate(sentences)


_FAST_LEXRANK: type[LexRankSummarizer] | None = None


def _fast_lexrank() -> type[LexRankSummarizer]:
    """The subclass, defined on first use (sumy is imported only when the models load)."""
    global _FAST_LEXRANK
    if _FAST_LEXRANK is None:
        from sumy.summarizers.lex_rank import LexRankSummarizer

        class FastLexRank(LexRankSummarizer):
            def __init__(self, stem: Any, stop_words: frozenset[str]) -> None:
                super().__init__(stem)
                self._stop_words = stop_words  # lowercase already: the setter would normalize each again

            @staticmethod
            def _compute_idf(sentences: list[list[str]]) -> dict[str, float]:
                counts: Counter[str] = Counter()
                for sentence in sentences:
                    counts.update(set(sentence))
                return {term: math.log(len(sentences) / (1 + n)) for term, n in counts.items()}

            def _create_matrix(self, sentences: list[list[str]], threshold: float, tf_metrics: list[dict[str, float]],
                               idf_metrics: dict[str, float]) -> np.ndarray:
                vocabulary = {term: i for i, term in enumerate(idf_metrics)}
                weights = np.zeros((len(sentences), max(len(vocabulary), 1)))
                for row, tf in enumerate(tf_metrics):
                    for term, value in tf.items():
                        weights[row, vocabulary[term]] = value * idf_metrics[term]
                norms = np.linalg.norm(weights, axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    cosine = (weights @ weights.T) / np.outer(norms, norms)
                matrix = (np.nan_to_num(cosine) > threshold).astype(float)
                degrees = matrix.sum(axis=1)
                degrees[degrees == 0] = 1
                return matrix / degrees[:, None]

            def rate(self, texts: list[str]) -> list[float]:
                # What _to_words_set does for a sumy Sentence, without its per-word conversions.
                stop, stem = self._stop_words, self._stemmer
                sentences_words = [[stem(w) for w in map(str.lower, words(text)) if w not in stop] for text in texts]
                if not any(sentences_words):
                    return [0.0] * len(texts)
                tf_metrics = self._compute_tf(sentences_words)
                idf_metrics = self._compute_idf(sentences_words)
                matrix = self._create_matrix(sentences_words, self.threshold, tf_metrics, idf_metrics)
                return [float(x) for x in np.nan_to_num(self.power_method(matrix, self.epsilon))]

        _FAST_LEXRANK = FastLexRank
    return _FAST_LEXRANK
