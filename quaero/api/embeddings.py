"""Search by meaning: the models a plugin can contribute, and the knowledge base's embeddings.

A plugin contributes models through the ``register_providers`` hook (:mod:`quaero.api.hookspecs`):

- an :class:`EmbeddingProvider` turns texts into vectors (an :class:`Embedder`). The settings name the one
  the knowledge base uses (``embedder``, ``"local"`` by default: the built-in ``embed`` plugin's offline
  model); the agent plugin adds ``openai`` (any ``/v1/embeddings`` server) and ``gemini``.
- an :class:`AnswerProvider` writes an answer to a question from passages of the knowledge base, citing
  them (an :class:`Answerer`). The settings name it (``answerer``); without one, ``ask`` returns the best
  passages themselves.

A provider's ``create`` is called once per process, lazily, after the plugin's ``startup``, with the
plugin's :class:`~quaero.api.context.PluginContext` (its settings, state and ``ctx.http``): a remote
provider makes every request through ``ctx.http``, so the outbound policy applies.

:class:`EmbeddingIndex` (``ctx.embeddings``) is the core's side: which documents lack vectors, and
embedding them (what the ``embed`` action does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Purpose = Literal["document", "query"]


class Embedder(ABC):
    """A model that turns texts into vectors of ``dimensions`` floats.

    ``model`` names the model and everything that changes its vectors (its dimensions, say): it is stored
    with each document's vectors, and a document embedded under another ``model`` counts as stale.
    Every method is called from any thread of any process.
    """

    #: How many texts one :meth:`embed` call takes at most (the core splits longer lists).
    max_batch: int = 64

    @property
    @abstractmethod
    def model(self) -> str:
        """The model's identity, e.g. ``"wordllama/l2_supercat_256/128"`` or ``"openai/text-embedding-3-small"``."""

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """The length of every vector :meth:`embed` returns."""

    @abstractmethod
    def embed(self, texts: Sequence[str], *, purpose: Purpose = "document") -> Sequence[Sequence[float]]:
        """One vector per text, in order (the core normalises them). ``purpose`` is ``"query"`` for a search
        query, which some models embed differently. Raise :class:`~quaero.errors.JobError` (``retryable``
        as fits) when the model cannot answer."""

    def close(self) -> None:  # noqa: B027 - optional: most models hold nothing
        """Release what the model holds (called when the process stops)."""


@dataclass(frozen=True)
class Passage:
    """A piece of a document given to an :class:`Answerer`: the ``index`` it is cited by (from 1)."""

    index: int
    document_id: int
    title: str
    source_ref: str
    heading: str
    text: str


@dataclass(frozen=True)
class Answer:
    """What an :class:`Answerer` wrote: the text, citing passages as ``[1]``, ``[2]``..., the indexes of the
    passages it cites, and the tokens it used (``prompt_tokens``, ``completion_tokens`` when known)."""

    text: str
    cited: tuple[int, ...] = ()
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)


class Answerer(ABC):
    """A language model that answers a question from passages of the knowledge base."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The model's identity, shown beside the answer."""

    @abstractmethod
    def answer(self, question: str, passages: Sequence[Passage]) -> Answer:
        """Answer ``question`` from ``passages`` only, citing them by index; say so when they do not hold the
        answer. Raise :class:`~quaero.errors.JobError` when the provider fails (its message is shown)."""

    def close(self) -> None:  # noqa: B027 - optional: most models hold nothing
        """Release what the model holds (called when the process stops)."""


@dataclass(frozen=True)
class EmbeddingProvider:
    """An embedding model a plugin offers under ``name`` (what the ``embedder`` setting names)."""

    name: str
    create: Callable[[Any], Embedder]  # called with the plugin's PluginContext
    description: str = ""


@dataclass(frozen=True)
class AnswerProvider:
    """An answering model a plugin offers under ``name`` (what the ``answerer`` setting names)."""

    name: str
    create: Callable[[Any], Answerer]  # called with the plugin's PluginContext
    description: str = ""


Provider = EmbeddingProvider | AnswerProvider


@dataclass(frozen=True)
class EmbeddingReport:
    """How the knowledge base's vectors stand against its documents under the configured ``model``.

    ``missing``: documents without vectors; ``stale``: embedded from other content or by another model;
    ``queued``: waiting to be embedded in the background.
    """

    model: str
    documents: int
    embedded: int
    missing: int
    stale: int
    queued: int
    chunks: int
    bytes_per_document: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "documents": self.documents, "embedded": self.embedded,
                "missing": self.missing, "stale": self.stale, "queued": self.queued, "chunks": self.chunks,
                "bytes_per_document": self.bytes_per_document}


class EmbeddingIndex(ABC):
    """The knowledge base's vectors (``ctx.embeddings``): checked, and filled in."""

    @property
    @abstractmethod
    def available(self) -> str | None:
        """``None`` when documents can be embedded here; otherwise why not (no embedder configured or
        installed, the model failed to load), in words that say what to fix. Cheap: it does not load the
        model (a model that fails on its first use raises then, and says so here afterwards)."""

    @abstractmethod
    def check(self) -> EmbeddingReport:
        """Count the documents whose vectors are missing or stale."""

    @abstractmethod
    def queue_stale(self) -> int:
        """Queue every document whose vectors are missing or stale for embedding; how many were queued."""

    @abstractmethod
    def embed_queued(self, *, limit: int = 256, cancelled: Callable[[], bool] | None = None) -> int:
        """Embed up to ``limit`` queued documents now, in this thread; how many were embedded (0: the queue
        is empty). Stops between batches when ``cancelled()`` is true."""
