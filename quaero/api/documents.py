"""Documents as a plugin saves and reads them.

A document is identified by ``source_type`` + ``source_ref``: saving the same pair again updates it, so
a job that runs twice (a retry, a redelivered message) never makes a duplicate. Reading goes through
:class:`Documents` (``ctx.documents``), which never writes: saving goes through ``ctx.save_document``, so
that the core counts the result, adds the definition's tags and announces it.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from quaero.errors import QueryError

#: The fields of a document a save can change, in the order :attr:`SaveResult.changed` lists them.
STORED_FIELDS = ("title", "markdown", "html", "metadata", "tags", "keywords", "summary")


@dataclass
class DocumentInput:
    """What a worker hands to ``ctx.save_document``.

    Attributes:
      source_type: what kind of source the document came from (``web`` for crawled pages, ``rss``, ...);
        with ``source_ref`` it identifies the document. At most 50 characters.
      source_ref: the document's reference within its source type: a URL, a feed entry's id, a file path.
        Keep it stable: a re-run that saves the same reference updates the document instead of adding one.
      title: shown in lists and search results; weighs ten times the body in search ranking.
      markdown: the body, searched in full and rendered (sanitised) on the document page.
      html: the original HTML, when worth keeping (the ``transform`` action converts it again); ``None``
        keeps none.
      metadata: any JSON-ready data about the document (the crawler keeps the URL, status, language...).
      tags: labels to filter by (``tag:`` in searches); the definition's ``tags`` are added by the core.
      keywords: key terms (the ``agent`` action extracts them); searchable through the document page.
      summary: a short summary shown under the title.
    """

    source_type: str
    source_ref: str
    title: str = ""
    markdown: str = ""
    html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    summary: str = ""

    def __post_init__(self) -> None:
        if not self.source_type or len(self.source_type) > 50:
            raise ValueError(f"source_type {self.source_type!r} must be 1 to 50 characters")
        if not self.source_ref:
            raise ValueError("source_ref must not be empty: it identifies the document within its source type")


@dataclass(frozen=True)
class SaveResult:
    """What a save did.

    ``changed`` names the stored fields the save changed (all of them when it created the document, none
    when the document already held exactly this); ``first_for_job`` is False when the same job saved it
    before (a job run again after a crash does not count its documents twice).
    """

    id: int
    created: bool
    changed: tuple[str, ...] = ()
    first_for_job: bool = True


@dataclass(frozen=True)
class Document:
    """A stored document, read-only. Times are UTC epoch seconds; ``updated_at`` is the last change."""

    id: int
    source_type: str
    source_ref: str
    title: str
    markdown: str | None
    html: str | None
    metadata: dict[str, Any]
    tags: list[str]
    keywords: list[str]
    summary: str
    content_hash: str
    job_id: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class DocumentFilter:
    """Which documents: any of ``source_types``, all of ``tags``, updated in ``[after, before)``, saved by
    ``job_id``; ``has_html`` / ``has_markdown`` keep those with (True) or without (False) a non-blank body.

    ``after`` is inclusive and ``before`` exclusive (epoch seconds), so ``after:2025-01-01 before:2025-02-01``
    is January.
    """

    source_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    after: float | None = None
    before: float | None = None
    job_id: str | None = None
    has_html: bool | None = None
    has_markdown: bool | None = None

    def __post_init__(self) -> None:
        if any("\0" in value for value in (*self.source_types, *self.tags, self.job_id or "")):
            raise QueryError("a filter value contains a NUL character")
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise QueryError("'after' must be earlier than 'before': no document can match both")

    def __bool__(self) -> bool:
        return bool(self.source_types or self.tags or self.job_id or self.after is not None
                    or self.before is not None or self.has_html is not None or self.has_markdown is not None)


@dataclass(frozen=True)
class SearchHit:
    """One search result; ``marked`` is the snippet with each match between U+E000 and U+E001."""

    id: int
    title: str
    source_type: str
    source_ref: str
    tags: list[str]
    updated_at: float
    marked: str
    score: float | None


@dataclass(frozen=True)
class SearchPage:
    """A page of search results, best first, and how many match in all."""

    query: str
    items: list[SearchHit]
    total: int
    limit: int
    offset: int
    #: How the results were found: ``keyword`` (BM25), ``semantic`` (by meaning) or ``hybrid`` (both, fused).
    mode: str = "keyword"
    #: Why the results are not what was asked for (search by meaning unavailable: keyword results instead).
    notice: str | None = None


class Documents(ABC):
    """Read-only queries of the knowledge base (``ctx.documents``)."""

    @abstractmethod
    def get(self, doc_id: int) -> Document:
        """The document with this id; :class:`quaero.api.NotFound` if there is none."""

    @abstractmethod
    def find(self, source_type: str, source_ref: str) -> Document | None:
        """The document with this source reference, or ``None``."""

    @abstractmethod
    def list(self, where: DocumentFilter = DocumentFilter(), *, sort: str = "-updated_at", limit: int = 50,
             offset: int = 0, bodies: bool = True) -> list[Document]:
        """Documents matching ``where`` in ``sort`` order (``updated_at``, ``created_at`` or ``title``, ``-``
        first for descending); ``bodies=False`` leaves ``markdown`` and ``html`` out (``None``)."""

    @abstractmethod
    def ids(self, where: DocumentFilter = DocumentFilter()) -> builtins.list[int]:
        """The ids of every document matching ``where``, oldest first (to hand out in batches)."""

    @abstractmethod
    def count(self, where: DocumentFilter = DocumentFilter()) -> int:
        """How many documents match ``where``."""

    @abstractmethod
    def search(self, query: str, *, limit: int = 20, offset: int = 0) -> SearchPage:
        """Full-text search in the query language of ``quaero search`` (words, ``"phrases"``, ``prefix*``,
        ``-excluded``, ``OR``, ``source:``, ``tag:``, ``after:``, ``before:``); :class:`quaero.api.QueryError`
        names what is wrong in a malformed query."""


@dataclass(frozen=True)
class IndexReport:
    """How the full-text index compares with the stored documents, with a few ids of each difference.

    ``stale`` is ``None`` when it was not looked for.
    """

    stored: int
    indexed: int
    missing: int
    extra: int
    stale: int | None
    samples: dict[str, list[int]] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        """True when every stored document is indexed, nothing else is, and nothing found is stale."""
        return self.stored == self.indexed and not self.missing and not self.extra and not self.stale

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {"stored": self.stored, "indexed": self.indexed, "missing": self.missing, "extra": self.extra,
                "stale": self.stale, "samples": self.samples, "agrees": self.agrees}

    def __str__(self) -> str:
        text = f"{self.stored} stored, {self.indexed} indexed, {self.missing} missing, {self.extra} extra"
        return text + (f", {self.stale} stale" if self.stale is not None else "")


class FullTextIndex(ABC):
    """The full-text index of the documents (``ctx.full_text``): checked, rebuilt and optimised."""

    @abstractmethod
    def check(self, *, stale: bool = True, sample: int = 10) -> IndexReport:
        """Compare the index with the documents; ``stale=False`` skips tokenising every document again."""

    @abstractmethod
    def rebuild(self) -> None:
        """Index every document again from what is stored."""

    @abstractmethod
    def optimize(self) -> None:
        """Merge the index into its most compact form."""

    @abstractmethod
    def integrity_check(self) -> str | None:
        """What is wrong with the index compared with the text itself, or ``None`` when nothing is."""
