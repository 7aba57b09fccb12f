"""The agent's local provider: keywords and summaries computed on this machine, offline.

- Keywords: YAKE proposes candidates from the text (statistics, no model): by default yake-rust 1.2,
  a port of YAKE to Rust (MIT), or the pure-Python reference yake 0.7.3 (``keyword_backend="yake"``;
  about 6 times slower, its top 10 agreeing at about 95% on the benchmark's documents). Candidates
  with stop words inside ("number of large") and noise are dropped, near-duplicates merged
  (:func:`_merge_duplicates`). Then, when ``rerank`` is on, each candidate is re-scored by its cosine
  similarity to the document in WordLlama's static embeddings (the l2_supercat weights that ship inside
  the wordllama wheel, truncated to 64 dimensions; the document's vector is the mean of its first
  :data:`EMBED_CHARS` characters' tokens). The final score is
  ``YAKE_WEIGHT * yake + (1 - YAKE_WEIGHT) * similarity``, both min-max scaled over the document's
  candidates: yake as ``-log(h)`` (its raw score is "lower is better" and spans orders of magnitude),
  similarity as is. YAKE's statistics stay the main signal; the similarity lifts candidates close to
  the document's subject and demotes frequent but off-subject ones.
- Summaries: extractive LexRank (sumy 0.13, its similarity matrix computed with numpy: the same
  result) over the text's sentences, split by a regex that knows common abbreviations (sumy's own
  tokenizer needs NLTK data that cannot be downloaded here) and stemmed by sumy's Snowball stemmer.
  The chosen sentences keep document order; ``max_words`` caps their words (whole sentences).
- Both read markdown as plain text (:mod:`.local_text`): no links' targets, images, code, HTML or
  markup; one conversion per document serves both.

Caps, so that a 2.5 MB page costs about what a 25 KB one does (YAKE's cost grows with the text: about
2 ms a KB in Rust and 15 in Python here; LexRank compares every pair of sentences):

- :data:`KEYWORD_CHARS` (6,000): YAKE reads the document's first blocks up to this many characters of
  plain text, then its remaining headings, up to a quarter as much (:func:`keyword_text`).
- :data:`SUMMARY_SENTENCES` (120) candidate sentences at most, of 5 to 80 words, from the first
  :data:`SUMMARY_CHARS` (20,000) characters of plain text (:func:`candidate_sentences`).
- Only the first ``CONVERT_CHARS`` (24,000) characters of markdown are converted; past them the text is
  only searched for headings.

Nothing is downloaded and no connection is opened: the libraries are imported and the weights read
from the wordllama package's folder the first time a :class:`LocalModels` is used.

Licences: yake-rust MIT, sumy Apache-2.0, wordllama's code MIT. yake 0.7.3 (the optional backend)
says LGPLv3 in its metadata, GPLv3 in its classifier and AGPL-3.0 (or a commercial licence from INESC
TEC) in its LICENSE file. The WordLlama weights are derived from Llama 2's token embeddings; whether
they are MIT like the code is not settled.
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quaero.api import ConfigError

from .local_lexrank import lexrank_ratings
from .local_text import (
    KEYWORD_CHARS,
    SUMMARY_CHARS,
    SUMMARY_SENTENCES,
    SentenceTokenizer,
    candidate_sentences,
    keyword_text,
    plain_text,
    split_sentences,
    words,
)

__all__ = ["KEYWORD_CHARS", "SUMMARY_CHARS", "SUMMARY_SENTENCES", "LocalModels",
           "SentenceTokenizer", "candidate_sentences", "keyword_text", "plain_text", "split_sentences", "words"]

CANDIDATES_PER_KEYWORD = 5
YAKE_NGRAM = 3
YAKE_WEIGHT = 0.6
EMBEDDING_CONFIG, EMBEDDING_DIM, EMBEDDING_TRUNC = "l2_supercat", 256, 64
EMBED_CHARS = 2_000  # a document's vector: the mean of its first words' vectors
KEYWORD_BACKENDS = {"yake-rust": "yake_rust", "yake": "yake"}  # name (and distribution): module
# The languages both YAKEs ship stop words for (yake 0.7.3's StopwordsList, the same in yake-rust 1.2).
YAKE_LANGUAGES = frozenset("ar bg br cz da de el en es et fa fi fr hi hr hu hy id it ja lt lv nl no pl pt ro ru sk "
                           "sl sv tr uk zh".split())

# ------------------------------------------------------------------------------------------ keywords


class _Words:
    """The words of the text YAKE read, indexed, to count phrases and find their spelling."""

    def __init__(self, text: str, stem: Any) -> None:
        self.surface = words(text)
        self.lower = [w.lower() for w in self.surface]
        self.stem = stem
        self.at: dict[str, list[int]] = {}  # each (lowercase) word: where it is
        for i, word in enumerate(self.lower):
            self.at.setdefault(word, []).append(i)
        self.by_start: dict[str, list[str]] = {}  # the words by their first three letters
        for word in self.at:
            self.by_start.setdefault(word[:3], []).append(word)
        self._counts: dict[str, int] = {}

    def key(self, phrase: str) -> tuple[str, ...]:
        """The phrase's words, stemmed: equal keys are the same phrase inflected."""
        return tuple(self.stem(w) for w in words(phrase.lower()))

    def spelling(self, phrase: str) -> str:
        """The phrase as the text writes it: the lowercase form when the text has it (a capital that only
        starts a sentence or a heading: "called", but "Python"), else its most frequent spelling."""
        lowered = words(phrase.lower())
        if not lowered:
            return phrase
        found = Counter(" ".join(self.surface[i:i + len(lowered)]) for i in self._exact(lowered))
        if not found or " ".join(lowered) in found:
            return " ".join(lowered) if found else phrase
        return found.most_common(1)[0][0]

    def _exact(self, lowered: list[str]) -> list[int]:
        return [i for i in self.at.get(lowered[0], ()) if self.lower[i:i + len(lowered)] == lowered]

    def preferred(self, a: str, b: str) -> str:
        """Of two spellings of one phrase ("reference count", "reference counting"), the one the text
        uses more often, else the one it uses first."""
        uses = {}
        for phrase in (a, b):
            found = self._exact(words(phrase.lower()))
            uses[phrase] = (-len(found), found[0] if found else len(self.lower))
        return min((a, b), key=lambda phrase: uses[phrase])

    def occurrences(self, phrase: str) -> int:
        """How often the text uses ``phrase``, any inflection of its words included ("garbage collector"
        counts "garbage collection" and "garbage collectors" too)."""
        if phrase not in self._counts:
            prefixes = []
            for word in words(phrase.lower()):
                root = os.path.commonprefix([word, self.stem(word)])
                if len(root) > 5 and root.endswith(("er", "or")):
                    root = root[:-2]
                prefixes.append(root if len(root) >= 3 else word)
            count = 0
            if prefixes:
                first = [w for w in self.by_start.get(prefixes[0][:3], ()) if w.startswith(prefixes[0])]
                if len(prefixes) == 1:
                    count = sum(len(self.at[w]) for w in first)
                else:
                    lower, rest = self.lower, prefixes[1:]
                    count = sum(1 for w in first for i in self.at[w] if i + len(rest) < len(lower)
                                and all(lower[i + 1 + j].startswith(p) for j, p in enumerate(rest)))
            self._counts[phrase] = count
        return self._counts[phrase]


def _same_word(a: str, b: str) -> bool:
    short, long = sorted((a, b), key=len)
    return a == b or (len(short) >= 4 and long.startswith(short) and long[len(short):] in ("er", "or", "r"))


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    span = len(shorter)
    return any(all(_same_word(x, y) for x, y in zip(longer[i:i + span], shorter))
               for i in range(len(longer) - span + 1))


def _merge_duplicates(candidates: Sequence[tuple[str, float]], text: _Words) -> list[tuple[str, float]]:
    """Candidates (best first) without near-duplicates, each survivor at the better rank of its group.

    - Phrases whose words stem alike ("reference cycle" / "reference cycles", "garbage collector" /
      "garbage collection") are one, at the better rank, spelled as the text spells it more often (or
      first).
    - When one phrase contains another ("garbage" / "garbage collection"), the longer stays if the text
      uses it as a phrase: at least twice, and, when the shorter one has several words, at least half as
      often ("garbage collector" over "cyclic garbage collector" when most collectors are not called
      cyclic). It names the concept more precisely than a single word, which YAKE ranks high for its
      frequency alone. Otherwise the shorter stays ("CPython" over "CPython manages memory"), unless it
      only occurs inside the longer ("San Andreas Fault" over "Andreas Fault").
    """

    def longer_wins(longer: tuple[str, float, tuple[str, ...]], shorter: tuple[str, float, tuple[str, ...]]) -> bool:
        used, alone = text.occurrences(longer[0]), text.occurrences(shorter[0])
        return used >= alone or (used >= 2 and (len(shorter[2]) == 1 or 2 * used >= alone))

    kept: list[tuple[str, float, tuple[str, ...]]] = []
    kept_letters: list[set[str]] = []  # each kept phrase's words' first letters: a cheap test of relation
    for phrase, score in candidates:
        new = (phrase, score, text.key(phrase))
        if not new[2]:
            continue
        first_letters = {w[:3] for w in new[2]}
        related = [i for i, letters in enumerate(kept_letters) if not first_letters.isdisjoint(letters)]
        containers = [i for i in related if len(kept[i][2]) >= len(new[2]) and _contains(kept[i][2], new[2])]
        inner = [i for i in related if len(kept[i][2]) < len(new[2]) and _contains(new[2], kept[i][2])]
        if containers:  # the best ranked phrase containing it decides
            first = kept[containers[0]]
            if len(first[2]) == len(new[2]):  # the same phrase inflected
                winner = first if text.preferred(first[0], new[0]) == first[0] else new
            else:
                winner = first if longer_wins(first, new) else new
            kept[containers[0]] = (winner[0], first[1], winner[2])
            kept_letters[containers[0]] = {w[:3] for w in winner[2]}
        elif inner:  # it may take the place of the phrases it contains
            first = kept[inner[0]]
            if longer_wins(new, first):
                kept[inner[0]] = (new[0], first[1], new[2])
                kept_letters[inner[0]] = first_letters
                kept = [k for i, k in enumerate(kept) if i not in inner[1:]]
                kept_letters = [k for i, k in enumerate(kept_letters) if i not in inner[1:]]
        else:
            kept.append(new)
            kept_letters.append(first_letters)
    return [(phrase, score) for phrase, score, _ in kept]


_CLEAN_EDGES = re.compile(r"^[^\w]+|[^\w]+$")
_VALID = re.compile(r"^[\w][\w '’\-]*$")


def _clean(phrase: str) -> str | None:
    """The candidate without stray edges, or None for noise (digits, one letter, symbols)."""
    phrase = _CLEAN_EDGES.sub("", phrase.strip())
    if len(phrase) < 2 or not _VALID.match(phrase) or sum(c.isalpha() for c in phrase) < 2:
        return None
    return phrase


def _scale(values: np.ndarray) -> np.ndarray:
    spread = float(values.max() - values.min()) if values.size else 0.0
    return (values - values.min()) / spread if spread > 0 else np.ones_like(values)


# ------------------------------------------------------------------------------------------ the models


@dataclass(frozen=True)
class _Language:
    """What one language needs: the keyword extractor's stop words, sumy's (cached) stemmer and stop words."""

    code: str
    yake_language: str | None  # the stop-word list both YAKEs ship for it, None when there is none
    keyword_stopwords: frozenset[str]
    stem: Any
    summary_stopwords: frozenset[str]


class LocalModels:
    """The local provider's models: YAKE, sumy's LexRank and WordLlama, loaded once on first use.

    ``keyword_backend`` chooses the YAKE implementation: ``"yake-rust"`` (default; a port of YAKE to Rust,
    MIT, about 6 times faster here, its top 10 agreeing at 94% with the reference on the benchmark's
    documents) or ``"yake"`` (the reference, pure Python). ``keyword_chars`` caps what it reads
    (:func:`keyword_text`).

    One instance serves a whole process and may be shared between threads: the load is guarded by a
    lock, and every call builds its own extractor and summarizer objects (cheap) around shared,
    read-only data (stop words, stemmers' tables, the embedding matrix).
    """

    def __init__(self, *, keyword_chars: int = KEYWORD_CHARS, keyword_backend: str = "yake-rust") -> None:
        if keyword_backend not in KEYWORD_BACKENDS:
            raise ConfigError(f"unknown keyword backend {keyword_backend!r}: use one of {', '.join(KEYWORD_BACKENDS)}")
        self.keyword_chars = keyword_chars
        self.keyword_backend = keyword_backend
        self._lock = threading.Lock()
        self._loaded = False
        self._embedder: Any = None
        self._blas: Any = None
        self._languages: dict[str, _Language] = {}

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Import the libraries and read the embedding weights (once; later calls return at once)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            root = logging.getLogger()
            handlers, level = list(root.handlers), root.level
            try:
                import sumy  # type: ignore[import-untyped]  # noqa: F401
                import threadpoolctl  # type: ignore[import-untyped]
                import wordllama  # type: ignore[import-untyped]

                importlib.import_module(KEYWORD_BACKENDS[self.keyword_backend])
            finally:
                # wordllama calls logging.basicConfig(level=INFO) when imported: undo it, the host
                # configures logging.
                root.handlers[:] = handlers
                root.setLevel(level)
            folder = Path(wordllama.__file__).parent
            weights = folder / "weights" / f"{EMBEDDING_CONFIG}_{EMBEDDING_DIM}.safetensors"
            tokenizer = folder / "tokenizers" / f"{EMBEDDING_CONFIG}_tokenizer_config.json"
            if not weights.is_file() or not tokenizer.is_file():
                raise ConfigError(f"the local agent provider needs the WordLlama weights that ship with the "
                                  f"wordllama package; {weights} or {tokenizer} is missing: reinstall "
                                  f"wordllama {wordllama.__version__}")
            # disable_download: the files above are read, nothing is fetched (the default would look in
            # ~/.cache and then download the tokenizer from the Hugging Face hub).
            # numpy's OpenBLAS starts a thread a core for the small matrix products here; its threads
            # spin after each call and took 40% more CPU than the work (5 ms a document), which a job's
            # other worker processes need. The provider's own products run on one thread.
            self._blas = threadpoolctl.ThreadpoolController()
            self._embedder = wordllama.WordLlama.load(config=EMBEDDING_CONFIG, cache_dir=folder, dim=EMBEDDING_DIM,
                                                      trunc_dim=EMBEDDING_TRUNC, disable_download=True)
            self._loaded = True

    def describe(self) -> dict[str, str]:
        """The models and versions behind the results, for a fingerprint: a change means results change.

        Read from the installed distributions without loading anything: a manager asks it in the server
        process, which never runs the models."""
        # From the installed distributions: yake 0.7.3's own __version__ still says 0.7.1.
        v = {name: _dist(name) for name in (self.keyword_backend, "sumy", "wordllama")}
        return {"keywords": f"{self.keyword_backend}-{v[self.keyword_backend]}-n{YAKE_NGRAM}-{self.keyword_chars}c"
                            f"+wordllama-{v['wordllama']}-{EMBEDDING_CONFIG}_{EMBEDDING_DIM}-{EMBEDDING_TRUNC}"
                            f"-w{YAKE_WEIGHT}",
                "summary": f"sumy-{v['sumy']}-lexrank-{SUMMARY_SENTENCES}s-{SUMMARY_CHARS}c"}

    def _language(self, language: str) -> _Language:
        """The stop words and stemmer for ``language`` (an ISO 639-1 code), read once."""
        code = (language if isinstance(language, str) and language else "en").lower()
        if code not in self._languages:
            from sumy.nlp.stemmers import Stemmer, null_stemmer  # type: ignore[import-untyped]
            from sumy.utils import get_stop_words  # type: ignore[import-untyped]

            short = {"cs": "cz"}.get(code[:2], code[:2])  # YAKE names Czech "cz"
            yake_language = short if short in YAKE_LANGUAGES else None
            if self.keyword_backend == "yake":
                import yake  # type: ignore[import-untyped]

                stopwords = frozenset(yake.KeywordExtractor(lan=yake_language or "noLang").stopword_set)
            else:
                import yake_rust

                stopwords = frozenset(yake_rust.Yake(language=yake_language).stopwords if yake_language else ())
            try:
                # Cached: Snowball is pure Python and most words of a text repeat (a third of the
                # summary's time went into stemming the same words again).
                stem = functools.lru_cache(maxsize=200_000)(Stemmer(code))
            except LookupError:
                stem = null_stemmer
            try:
                summary_stopwords = frozenset(w.lower() for w in get_stop_words(code))
            except LookupError:
                summary_stopwords = frozenset()
            with self._lock:
                self._languages[code] = _Language(code, yake_language, stopwords, stem, summary_stopwords)
        return self._languages[code]

    # ------------------------------------------------------------------ keywords

    def keywords(self, text: str, *, max_keywords: int = 10, rerank: bool = True, language: str = "en") -> list[str]:
        """Up to ``max_keywords`` key phrases of ``text`` (markdown or plain), best first."""
        return self.batch_keywords([text], max_keywords=max_keywords, rerank=rerank, language=language)[0]

    def batch_keywords(self, texts: Iterable[str], *, max_keywords: int = 10, rerank: bool = True,
                       language: str = "en") -> list[list[str]]:
        """:meth:`keywords` of each text; the candidates of all texts are embedded in one call."""
        self.load()
        pools: list[list[tuple[str, float]]] = []
        digests: list[str] = []
        for text in texts:
            digest = keyword_text(text, chars=self.keyword_chars) if isinstance(text, str) else ""
            digests.append(digest)
            pools.append(self._candidates(digest, max_keywords, language) if max_keywords > 0 else [])
        if rerank and any(len(pool) > 1 for pool in pools):
            with self._blas.limit(limits=1, user_api="blas"):
                pools = self._rerank(pools, digests)
        return [[phrase for phrase, _ in pool[:max_keywords]] for pool in pools]

    def _extract(self, digest: str, top: int, language: _Language) -> list[tuple[str, float]]:
        """YAKE's best ``top`` candidates, its own near-duplicate pass off (_merge_duplicates does that)."""
        if self.keyword_backend == "yake":
            import yake

            extractor = yake.KeywordExtractor(lan=language.yake_language or "noLang", n=YAKE_NGRAM, top=top,
                                              dedup_lim=1.0, stopwords=set(language.keyword_stopwords))
            return [(phrase, float(score)) for phrase, score in extractor.extract_keywords(digest)]
        import yake_rust

        if language.yake_language:
            rust = yake_rust.Yake(language=language.yake_language, ngrams=YAKE_NGRAM, remove_duplicates=False)
        else:
            rust = yake_rust.Yake(stopwords=set(), ngrams=YAKE_NGRAM, remove_duplicates=False)
        return rust.get_n_best(digest, n=top)

    def _candidates(self, digest: str, max_keywords: int, language: str) -> list[tuple[str, float]]:
        """YAKE's candidates for the text, cleaned and merged, as ``(phrase, yake score)``: lower is better."""
        if not digest.strip():
            return []
        data = self._language(language)
        text = _Words(digest, data.stem)
        cleaned: list[tuple[str, float]] = []
        for phrase, score in self._extract(digest, max_keywords * CANDIDATES_PER_KEYWORD, data):
            shown = _clean(phrase)
            # YAKE lets stop words inside a phrase ("number of large"): rarely a key phrase.
            if shown is not None and not any(w.lower() in data.keyword_stopwords for w in words(shown)[1:-1]):
                cleaned.append((text.spelling(shown), score))
        return _merge_duplicates(cleaned, text)

    def _rerank(self, pools: list[list[tuple[str, float]]], digests: list[str]) -> list[list[tuple[str, float]]]:
        """Each pool re-ordered by ``YAKE_WEIGHT * yake + (1 - YAKE_WEIGHT) * similarity to its document``."""
        phrases = [phrase for pool in pools for phrase, _ in pool]
        wanted = [i for i, pool in enumerate(pools) if len(pool) > 1]
        phrase_vectors = self._embedder.embed(phrases, norm=True, batch_size=256)
        # Documents one per batch: a batch pads every text to its longest one.
        document_vectors = self._embedder.embed([digests[i][:EMBED_CHARS] for i in wanted], norm=True, batch_size=1)
        reranked = list(pools)
        offsets = np.cumsum([0] + [len(pool) for pool in pools])
        for row, index in enumerate(wanted):
            pool = pools[index]
            vectors = phrase_vectors[offsets[index]:offsets[index + 1]]
            similarity = np.nan_to_num(vectors @ document_vectors[row])
            statistic = -np.log(np.maximum([score for _, score in pool], 1e-12))
            combined = YAKE_WEIGHT * _scale(statistic) + (1 - YAKE_WEIGHT) * _scale(similarity)
            order = sorted(range(len(pool)), key=lambda i: (-combined[i], i))
            reranked[index] = [pool[i] for i in order]
        return reranked

    # ------------------------------------------------------------------ summaries

    def summary(self, text: str, *, max_sentences: int | None = 3, max_words: int | None = None,
                language: str = "en") -> str:
        """An extractive summary of ``text``: its most central sentences, in document order, at most
        ``max_sentences`` of them and ``max_words`` words in all (whole sentences; "" if none fits)."""
        self.load()
        sentences = candidate_sentences(text)
        if not sentences or max_sentences == 0:
            return ""
        with self._blas.limit(limits=1, user_api="blas"):
            ratings = self._ratings(sentences, language)
        chosen: list[int] = []
        budget = math.inf if max_words is None else max_words
        for index in sorted(range(len(sentences)), key=lambda i: (-ratings[i], i)):
            if max_sentences is not None and len(chosen) >= max_sentences:
                break
            size = len(words(sentences[index]))
            if size <= budget:
                chosen.append(index)
                budget -= size
        return " ".join(sentences[i] for i in sorted(chosen))

    def batch_summaries(self, texts: Iterable[str], *, max_sentences: int | None = 3, max_words: int | None = None,
                        language: str = "en") -> list[str]:
        """:meth:`summary` of each text (LexRank works document by document: nothing to share)."""
        return [self.summary(text, max_sentences=max_sentences, max_words=max_words, language=language)
                for text in texts]

    def _ratings(self, sentences: list[str], language: str) -> list[float]:
        """LexRank centrality of each sentence."""
        data = self._language(language)
        return lexrank_ratings(sentences, data.stem, data.summary_stopwords)


def _dist(name: str) -> str:
    from importlib.metadata import version

    return version(name)
