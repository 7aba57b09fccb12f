"""Answers with citations: the best passages of the knowledge base for a question, and an answer from them.

``ask`` searches as the search box does (hybrid where documents are embedded), takes from each of the
best documents the chunk nearest the question, and gives those passages to the answerer the settings
name (``answerer``: an :class:`~quaero.api.AnswerProvider` of a plugin, e.g. the agent plugin's
``openai``), which writes an answer citing them as [1], [2]... Without an answerer, or when it fails, the
passages themselves are the answer, quoted with their sources; a provider's failure is said in ``error``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from quaero import api
from quaero.api.embeddings import Answerer, Passage
from quaero.errors import ConfigError, QueryError
from quaero.registry import Registry
from quaero.stores.search import DocumentSearch, mark_matches, parse_query

log = logging.getLogger(__name__)

PASSAGES = 6
PASSAGE_CHARS = 1500
MAX_QUESTION_CHARS = 1000
_QUERY_SYNTAX = re.compile(r'["*:]|(?<!\w)-|\bOR\b')


class Answers:
    """``ask``: retrieval, then the configured answerer (or the passages themselves)."""

    def __init__(self, *, name: str | None, registry: Registry, search: DocumentSearch,
                 plugin_context: Callable[[str], Any]) -> None:
        self.name = name
        self.registry = registry
        self.search = search
        self._plugin_context = plugin_context
        self._lock = threading.Lock()
        self._answerer: Answerer | None = None

    def answerer(self) -> Answerer | None:
        """The configured answerer (created on first use), or ``None`` when the settings name none."""
        if not self.name:
            return None
        with self._lock:
            if self._answerer is None:
                entry = self.registry.answerers.get(self.name)
                if entry is None:
                    offered = ", ".join(sorted(self.registry.answerers)) or "none"
                    raise ConfigError(f"no installed plugin offers the answerer {self.name!r} named by the settings "
                                      f"(answerer); installed: {offered}")
                plugin, provider = entry
                self._answerer = provider.create(self._plugin_context(plugin))
            return self._answerer

    def passages(self, question: str, *, limit: int = PASSAGES) -> tuple[list[Passage], str, str | None]:
        """The best passages for ``question``, the search mode that found them, and its notice."""
        page = self.search.search(_as_query(question), limit=limit)
        semantic = self.search.semantic
        passages: list[Passage] = []
        vector: np.ndarray | None = None
        if page.mode != "keyword" and semantic is not None:
            vector = semantic.query_vector(question)
        for number, hit in enumerate(page.items, 1):
            heading, text = "", ""
            if vector is not None and semantic is not None:
                heading, text = self._best_chunk(hit.id, vector)
            if not text:
                text = mark_matches(hit.marked, escape=str, start="", stop="")
            passages.append(Passage(number, hit.id, hit.title, hit.source_ref, heading, text))
        return passages, page.mode, page.notice

    def _best_chunk(self, doc_id: int, vector: np.ndarray) -> tuple[str, str]:
        semantic = self.search.semantic
        assert semantic is not None
        vectors = semantic.index().vectors_of(doc_id)
        spans = semantic.store.spans(doc_id)
        if vectors is None or not len(vectors) or len(spans) != len(vectors):
            return "", ""
        best = int(np.argmax(vectors @ vector))
        span = spans[best]
        return span.heading, " ".join(semantic.store.chunk_text(doc_id, span, PASSAGE_CHARS).split())

    def ask(self, question: str, *, limit: int = PASSAGES) -> dict[str, Any]:
        """The answer, the passages it rests on, and how it was made (JSON-ready)."""
        question = question.strip()
        if not question:
            raise QueryError("ask needs a question, as in: ?q=how do I rebuild the index")
        if len(question) > MAX_QUESTION_CHARS:
            raise QueryError(f"the question is {len(question)} characters long; the most is {MAX_QUESTION_CHARS}")
        passages, mode, notice = self.passages(question, limit=limit)
        result: dict[str, Any] = {
            "question": question, "mode": mode, "notice": notice, "answer": None, "cited": [], "model": None,
            "usage": {}, "error": None, "passages": [_passage_dict(passage) for passage in passages]}
        answerer = None
        try:
            answerer = self.answerer()
        except ConfigError as exc:
            result["error"] = exc.message
        if answerer is not None and passages:
            try:
                answer = answerer.answer(question, passages)
            except api.QuaeroError as exc:
                result["error"] = f"the answerer {self.name!r} failed: {exc.message}"
                log.warning("%s", result["error"])
            else:
                known = {passage.index for passage in passages}
                result.update(answer=answer.text, cited=[i for i in answer.cited if i in known],
                              model=answer.model or answerer.model, usage=dict(answer.usage))
                return result
        result["answer"] = quoted(passages) if passages else None
        result["cited"] = [passage.index for passage in passages]
        return result


def _as_query(question: str) -> str:
    """A question as the query language reads it: words, the syntax characters left out if it fails."""
    try:
        parse_query(question)
        return question
    except QueryError:
        return _QUERY_SYNTAX.sub(" ", question)


def _passage_dict(passage: Passage) -> dict[str, Any]:
    return {"index": passage.index, "document_id": passage.document_id, "title": passage.title,
            "source_ref": passage.source_ref, "heading": passage.heading, "text": passage.text}


def quoted(passages: list[Passage]) -> str:
    """The passages as the answer when no model writes one: each quoted, with its source."""
    blocks = []
    for passage in passages:
        where = f"{passage.title} — {passage.heading}" if passage.heading else passage.title
        blocks.append(f"[{passage.index}] {where} ({passage.source_ref})\n> {passage.text}")
    return "\n\n".join(blocks)
