"""Full-text search: a small query language, parsed once, compiled for SQLite FTS5 or PostgreSQL.

    python tutorial            both words (every word must match)
    "event loop"               the words next to each other, in this order
    pyth*                      a word starting with "pyth"
    -draft                     no document containing "draft" (phrases and prefixes work too)
    asyncio OR trio            either word; OR binds tighter than the implicit AND
    source:web  tag:docs       filters: any of the sources, all of the tags
    after:2025-01-01           updated on or after that day (UTC) ...
    before:2025-02-01          ... or before that day; a date and time (2025-01-01T12:00) works too

An empty query, or filters alone, lists the newest documents. Dates compare with ``updated_at``, when
the document last changed. Punctuation on its own is skipped, as the index skips it ("rock & roll").
A malformed query raises :class:`QueryError` saying what is wrong, before any SQL runs. Every word
reaches FTS5 inside double quotes, so the user's text is only ever text: ``c++``, ``NEAR``, ``AND``,
``:`` or ``^`` cannot change the query's meaning or break its syntax. Known limitation: the index stems
words (porter), and so does FTS5 with a prefix, so ``runn*`` does not find "running" (``run*`` does).

Results rank by BM25 with a title match worth ten body matches (a keyword five, the summary two); the
snippet comes from the body with the matches between marker characters, turned into ``<mark>`` only after
the text is HTML-escaped. Keywords and summaries (the ``agent`` action's) are searched with the rest.
"""

from __future__ import annotations

import html
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from quaero.api.documents import DocumentFilter, SearchHit, SearchPage
from quaero.errors import QueryError
from quaero.stores.db import Database
from quaero.stores.documents import filter_sql, parse_date, where_clause
from quaero.stores.events import iso
from quaero.stores.jsonutil import loads
from quaero.stores.vectors import Nearest, Ranking, Span, VectorIndex, VectorStore

FILTERS = ("source", "tag", "after", "before")
OPEN, CLOSE = "\ue000", "\ue001"  # private-use characters: never produced by escaping, rare in text
# A match in the title counts ten body matches; one in the keywords five; one in the summary two.
TITLE_WEIGHT, BODY_WEIGHT, KEYWORD_WEIGHT, SUMMARY_WEIGHT = 10.0, 1.0, 5.0, 2.0
SNIPPET_TOKENS = 24
PREVIEW_CHARS = 240
MAX_QUERY_CHARS = 1000
MODES = ("keyword", "semantic", "hybrid")
# Reciprocal rank fusion: each ranking adds 1 / (RRF_K + rank); the ranking of title and heading matches
# adds TITLE_BONUS times that. CANDIDATES: how deep each side of a fusion looks.
RRF_K = 60
TITLE_BONUS = 1.0
CANDIDATES = 100
# Search by meaning with filters reads the nearest 4 × CANDIDATES documents and keeps those that pass,
# then 16 ×; when fewer than CANDIDATES passed even then, it ranks only the documents the filters allow.
POST_FILTER_DEPTHS = (4, 16)
IN_BATCH = 500  # ids per "IN (...)" list: under every SQLite build's limit on parameters
_SCANS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="quaero-vector-scan")  # no database in there
_FILTER_WORD = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)
_MARKED = re.compile(f"{OPEN}(.*?){CLOSE}", re.DOTALL)


# ---------------------------------------------------------------------------------------------- the query


@dataclass(frozen=True)
class Term:
    """A word or a phrase (its words in order), optionally a prefix of its last word."""

    text: str
    prefix: bool = False
    #: Written between quotes: a phrase the user asked for word for word (by meaning too).
    quoted: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: every group in ``all_of`` must match (a group matches if any of its terms does),
    no term of ``none_of`` may match, and the documents pass ``where``."""

    all_of: tuple[tuple[Term, ...], ...] = ()
    none_of: tuple[Term, ...] = ()
    where: DocumentFilter = field(default_factory=DocumentFilter)


@dataclass(frozen=True)
class _Token:
    kind: str  # "term", "or", "filter" or "punctuation"
    position: int  # 1-based, for messages
    raw: str
    term: Term | None = None
    negated: bool = False
    name: str = ""
    value: str = ""


def parse_query(text: str) -> SearchQuery:
    """Parse the query language above; raise :class:`QueryError` on anything malformed."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(text)} characters long; the most is {MAX_QUERY_CHARS}")
    if "\0" in text:
        raise QueryError("the query contains a NUL character")
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    filters: dict[str, list[str]] = {name: [] for name in FILTERS}
    previous: _Token | None = None
    skipped: list[_Token] = []
    for token in _tokens(text):
        if token.kind == "punctuation":
            skipped.append(token)
            continue
        joined = previous is not None and previous.kind == "or"
        if token.kind == "or" and not _is_word(previous):
            raise QueryError(f"OR at position {token.position} needs a word before it, as in: cats OR dogs")
        if joined and not _is_word(token):
            assert previous is not None  # joined: it is the OR
            raise QueryError(f"OR at position {previous.position} must join two words, and {token.raw!r} "
                             f"is {'another OR' if token.kind == 'or' else 'not a word to search for'}")
        if token.kind == "filter":
            filters[token.name].append(token.value)
        elif token.term is None:
            pass  # an OR: the word after it joins the group of the word before it
        elif token.kind == "term" and token.negated:
            excluded.append(token.term)
        elif joined:
            groups[-1].append(token.term)
        elif token.kind == "term":
            groups.append([token.term])
        previous = token
    if previous is not None and previous.kind == "or":
        raise QueryError("the query ends with OR: add the word it should offer as the alternative")
    if skipped and previous is None:
        raise QueryError(f"{skipped[0].raw!r} at position {skipped[0].position} has no letter or digit to "
                         f"search for (punctuation is not indexed)")
    if excluded and not groups:
        raise QueryError("the query only excludes words: add a word to search for, as in: python -snake")
    # The same word twice ("a OR a", "a a") asks nothing more and would cost the index a second pass.
    return SearchQuery(tuple(dict.fromkeys(tuple(dict.fromkeys(group)) for group in groups)),
                       tuple(dict.fromkeys(excluded)), _document_filter(filters))


def _is_word(token: _Token | None) -> bool:
    return token is not None and token.kind == "term" and not token.negated


def _document_filter(filters: dict[str, list[str]]) -> DocumentFilter:
    for name in ("after", "before"):
        if len(filters[name]) > 1:
            raise QueryError(f"{name}: is given {len(filters[name])} times; give it once")
    after, before = (parse_date(filters[name][0], name) if filters[name] else None
                     for name in ("after", "before"))
    return DocumentFilter(source_types=tuple(dict.fromkeys(filters["source"])),
                          tags=tuple(dict.fromkeys(filters["tag"])), after=after, before=before)


def _tokens(text: str) -> Iterator[_Token]:
    """Split the query into words, phrases, ORs and filters, each checked on its own."""
    i, end = 0, len(text)
    while i < end:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-"
        i += negated
        if i < end and text[i] == '"':
            phrase, i = _quoted(text, i)
            prefix = i < end and text[i] == "*"
            i += prefix
            yield _term_token(text[start:i], start + 1, Term(phrase, prefix, quoted=True), negated)
            continue
        j = i
        while j < end and not text[j].isspace() and text[j] != '"':
            j += 1
        word, i = text[i:j], j
        if not word:
            raise QueryError(f"a lone '-' at position {start + 1}: put it right before the word to exclude, "
                             f"as in -draft")
        if word.endswith(":") and word[:-1].lower() in FILTERS and i < end and text[i] == '"':
            value, i = _quoted(text, i)  # tag:"machine learning"
            yield _filter_token(text[start:i], start + 1, word[:-1], value, negated)
        else:
            yield _word_token(text[start:i], start + 1, word, negated)


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The text between the quote at ``i`` and the next one, and the position after the closing quote."""
    close = text.find('"', i + 1)
    if close < 0:
        raise QueryError(f'the quote at position {i + 1} is never closed: add the closing "')
    return text[i + 1:close], close + 1


def _word_token(raw: str, position: int, word: str, negated: bool) -> _Token:
    if word == "OR":
        if negated:
            raise QueryError(f"'-OR' at position {position}: OR joins two words and cannot be excluded")
        return _Token("or", position, raw)
    named = _FILTER_WORD.fullmatch(word)
    if named and (named.group(2) or named.group(1).lower() in FILTERS):
        return _filter_token(raw, position, named.group(1), named.group(2), negated)
    stem = word.rstrip("*")
    if not stem:
        raise QueryError(f"'*' at position {position} must end a word, as in pyth*")
    return _term_token(raw, position, Term(stem, prefix=stem != word), negated)


def _filter_token(raw: str, position: int, name: str, value: str, negated: bool) -> _Token:
    if name.lower() not in FILTERS:
        raise QueryError(f"unknown filter {name + ':'!r} at position {position}; the filters are "
                         f"{', '.join(f + ':' for f in FILTERS)} (put text with a colon in quotes to search for it)")
    if negated:
        raise QueryError(f"{raw!r} at position {position}: filters cannot be excluded")
    if not value:
        raise QueryError(f"the filter {name + ':'!r} at position {position} needs a value, as in {name}:docs")
    return _Token("filter", position, raw, name=name.lower(), value=value)


def _term_token(raw: str, position: int, term: Term, negated: bool) -> _Token:
    if not term.text.strip():
        raise QueryError(f"the empty phrase at position {position} has nothing to search for")
    # Punctuation alone is not indexed: like the tokenizer, the search skips it ("rock & roll").
    kind = "term" if any(ch.isalnum() for ch in term.text) else "punctuation"
    return _Token(kind, position, raw, term=term, negated=negated)


# ---------------------------------------------------------------------------------------------- compiling


def fts5_match(query: SearchQuery) -> str:
    """The FTS5 MATCH expression: every term quoted, groups parenthesised, exclusions after NOT."""
    def quoted(term: Term) -> str:
        return '"' + term.text.replace('"', '""') + '"' + ("*" if term.prefix else "")

    def any_of(terms: tuple[Term, ...]) -> str:
        return quoted(terms[0]) if len(terms) == 1 else "(" + " OR ".join(map(quoted, terms)) + ")"

    expression = " AND ".join(map(any_of, query.all_of))
    if query.none_of:
        expression = f"({expression}) NOT {any_of(query.none_of)}"
    return expression


def tsquery_sql(query: SearchQuery) -> tuple[str, list[str]]:
    """A PostgreSQL ``tsquery`` expression (``?`` placeholders) built from the same terms.

    Each term goes in as a parameter of ``phraseto_tsquery`` (adjacent words, ``<->``), or of
    ``to_tsquery`` for a prefix, built from the term's word characters only (``'a' <-> 'b':*``).
    """
    params: list[str] = []

    def one(term: Term) -> str:
        if term.prefix:
            params.append(" <-> ".join(f"'{word}'" for word in re.findall(r"\w+", term.text)) + ":*")
            return "to_tsquery('english', ?)"
        params.append(term.text)
        return "phraseto_tsquery('english', ?)"

    def any_of(terms: tuple[Term, ...]) -> str:
        return "(" + " || ".join(map(one, terms)) + ")"

    expression = " && ".join(map(any_of, query.all_of))
    if query.none_of:
        expression = f"({expression}) && !!{any_of(query.none_of)}"
    return expression, params


# ---------------------------------------------------------------------------------------------- results


# Markdown's syntax says nothing in a one-line snippet: links become their text, and heading marks, table
# rules and pipes, code fences and emphasis marks go. (The match markers are private-use characters that
# none of these patterns touch.)
_MARKDOWN_SYNTAX = (
    (re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*\)"), r"\1"),
    (re.compile(r"(?m)^\s*#{1,6}\s+|```[\w+-]*|~~~"), " "),
    (re.compile(r"\|?(\s*:?-{3,}:?\s*\|)+\s*(:?-{3,}:?)?"), " "),
    (re.compile(r"\s\|(\s|$)|^\|\s"), " "),
    (re.compile(r"\*\*|__|`"), ""),
)


def plain_snippet(marked: str) -> str:
    """A snippet of markdown as the words a reader sees."""
    for pattern, replacement in _MARKDOWN_SYNTAX:
        marked = pattern.sub(replacement, marked)
    return marked


def mark_matches(marked: str, *, escape: Callable[[str], str] = html.escape, start: str = "<mark>",
                 stop: str = "</mark>") -> str:
    """Escape a snippet, then wrap each marked match in ``start``/``stop``.

    Escaping first means crawled text can never bring its own markup; markers the text itself happened
    to contain (unpaired or nested) are dropped rather than turned into tags.
    """
    wrapped = _MARKED.sub(lambda m: start + m.group(1) + stop, escape(plain_snippet(marked)))
    return " ".join(wrapped.replace(OPEN, "").replace(CLOSE, "").split())


def hit_dict(hit: SearchHit) -> dict[str, Any]:
    """A search hit as the API gives it: the snippet as escaped HTML with ``<mark>``, and as plain text."""
    return {"id": hit.id, "title": hit.title, "source_type": hit.source_type, "source_ref": hit.source_ref,
            "tags": hit.tags, "updated_at": iso(hit.updated_at), "snippet": mark_matches(hit.marked),
            "snippet_text": mark_matches(hit.marked, escape=str, start="", stop=""), "score": hit.score}


def page_dict(page: SearchPage) -> dict[str, Any]:
    """A page of results as the API gives it (the shape of every list, plus the query)."""
    return {"items": [hit_dict(hit) for hit in page.items], "total": page.total, "limit": page.limit,
            "offset": page.offset, "next": None, "query": page.query, "mode": page.mode, "notice": page.notice}


# ---------------------------------------------------------------------------------------------- running

_HIT_COLUMNS = "d.id, d.title, d.source_type, d.source_ref, d.tags, d.updated_at"
_JOIN = "CROSS JOIN documents AS d ON d.id = documents_fts.rowid"  # CROSS: FTS5 drives, d is looked up
_FILTER_JOIN = "CROSS JOIN documents AS d INDEXED BY documents_filter ON d.id = documents_fts.rowid"

_BM25_WEIGHTS = f"{TITLE_WEIGHT}, {BODY_WEIGHT}, {KEYWORD_WEIGHT}, {SUMMARY_WEIGHT}"  # FTS_COLUMNS' order
# bm25() in ORDER BY ... LIMIT lets SQLite keep only the best rows while it scores every match; FTS5's
# own ORDER BY rank sorts them all. The snippets come afterwards, for the page's rows only.
_SQLITE_RANKED = f"""
SELECT documents_fts.rowid, bm25(documents_fts, {_BM25_WEIGHTS}) AS score FROM documents_fts
{{join}} WHERE documents_fts MATCH ? {{filters}} ORDER BY score, documents_fts.rowid LIMIT ? OFFSET ?"""
# One pass over the matches between the page's lowest and highest id: the unary + keeps SQLite from
# running the MATCH again for each id (FTS5 expands a prefix anew every time).
_SQLITE_PAGE = f"""
SELECT {_HIT_COLUMNS}, snippet(documents_fts, 1, ?, ?, '…', {SNIPPET_TOKENS}) FROM documents_fts {_JOIN}
WHERE documents_fts MATCH ? AND documents_fts.rowid BETWEEN ? AND ? AND +documents_fts.rowid IN ({{ids}})"""
_SQLITE_COUNT = "SELECT COUNT(*) FROM documents_fts {join} WHERE documents_fts MATCH ? {filters}"
_SQLITE_AMONG = """SELECT documents_fts.rowid FROM documents_fts {join} WHERE documents_fts MATCH ?
AND documents_fts.rowid BETWEEN ? AND ? AND +documents_fts.rowid IN ({ids}) {filters}"""

# ts_rank_cd weights are {D, C, B, A}: summary, keywords, body, title, in the same ratios as on SQLite.
_PG_WEIGHTS = (f"{{{SUMMARY_WEIGHT / TITLE_WEIGHT}, {KEYWORD_WEIGHT / TITLE_WEIGHT}, "
               f"{BODY_WEIGHT / TITLE_WEIGHT}, 1}}")
_PG_SEARCH = f"""
WITH q AS (SELECT {{tsquery}} AS q),
hits AS (SELECT d.id, ts_rank_cd(?::float4[], d.search, q.q) AS score FROM documents AS d, q
         WHERE d.search @@ q.q {{filters}} ORDER BY score DESC, d.id LIMIT ? OFFSET ?)
SELECT {_HIT_COLUMNS}, ts_headline('english', d.markdown, q.q, ?), hits.score
FROM hits JOIN documents AS d ON d.id = hits.id, q ORDER BY hits.score DESC, d.id"""
_PG_RANKED = """WITH q AS (SELECT {tsquery} AS q)
SELECT d.id, ts_rank_cd(?::float4[], d.search, q.q) AS score FROM documents AS d, q
WHERE d.search @@ q.q {filters} ORDER BY score DESC, d.id LIMIT ?"""
_PG_SNIPPETS = """WITH q AS (SELECT {tsquery} AS q)
SELECT d.id, ts_headline('english', d.markdown, q.q, ?) FROM documents AS d, q WHERE d.id IN ({ids})"""
_PG_COUNT = "SELECT COUNT(*) FROM documents AS d WHERE d.search @@ ({tsquery}) {filters}"
_PG_HEADLINE = f"StartSel={OPEN}, StopSel={CLOSE}, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=…"

_RECENT = f"""SELECT {_HIT_COLUMNS}, substr(d.markdown, 1, {PREVIEW_CHARS}), NULL FROM documents AS d {{where}}
ORDER BY d.updated_at DESC, d.id DESC LIMIT ? OFFSET ?"""


class Semantic(Protocol):
    """What search by meaning needs from the engine (:class:`quaero.engine.embedding.Embeddings`)."""

    store: VectorStore

    @property
    def configured(self) -> bool: ...

    def searchable(self) -> str | None: ...

    def index(self) -> VectorIndex: ...

    def query_vector(self, text: str) -> np.ndarray: ...


class DocumentSearch:
    """Runs queries against one database: FTS5 on SQLite, the ``search`` tsvector on PostgreSQL, and by
    meaning through ``semantic`` (the documents' vectors) when there is one."""

    def __init__(self, database: Database, semantic: Semantic | None = None) -> None:
        self.database = database
        self.semantic = semantic

    def search(self, text: str, *, limit: int = 20, offset: int = 0, mode: str | None = None) -> SearchPage:
        """Parse ``text`` and return one page of results, best first (newest first without words).

        ``mode``: ``keyword``, ``semantic`` or ``hybrid``; by default hybrid where documents are embedded,
        else keyword. A mode by meaning that cannot run falls back to keyword, saying why in ``notice``.
        """
        if mode is not None and mode not in MODES:
            raise QueryError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        query = parse_query(text)
        if not query.all_of:
            return self._keyword(text, query, limit, offset, "keyword")
        why = "search by meaning is not set up here" if self.semantic is None else self.semantic.searchable()
        if why is not None:
            asked = mode in ("semantic", "hybrid") or (mode is None and self.semantic is not None
                                                       and self.semantic.configured and "embedded yet" not in why)
            page = self._keyword(text, query, limit, offset, "keyword")
            return replace(page, notice=f"keyword results only: {why}") if asked else page
        if mode == "keyword":
            return self._keyword(text, query, limit, offset, "keyword")
        assert self.semantic is not None
        return _Fused(self, text, query, mode or "hybrid").page(limit, offset)

    def _keyword(self, text: str, query: SearchQuery, limit: int, offset: int, mode: str) -> SearchPage:
        plan = self._plan(query)
        hits = [_hit(row) for row in plan.page(limit, offset)]
        if 0 < len(hits) < limit or (not hits and offset == 0):
            total = offset + len(hits)  # a page that is not full already says how many there are
        else:
            total = plan.count()
        return SearchPage(text, hits, total, limit, offset, mode)

    def _plan(self, query: SearchQuery) -> _Plan:
        if not query.all_of:
            return _Recent(self.database, query)
        if self.database.is_postgres:
            return _Postgres(self.database, query)
        return _Sqlite(self.database, query)

    def matching_ids(self, query: SearchQuery) -> set[int]:
        """Every document that ``query`` matches (its words, filters and exclusions), by id."""
        return set(self._plan(query).ids())

    def among(self, query: SearchQuery, ids: list[int]) -> set[int]:
        """Those of ``ids`` that ``query`` matches (its words, filters and exclusions)."""
        if not ids:
            return set()
        if query.all_of or not query.none_of:
            plan = self._plan(query)
            return {found for start in range(0, len(ids), IN_BATCH)
                    for found in plan.among(ids[start:start + IN_BATCH])}
        # Exclusions without words: the filters' documents, less those with an excluded word.
        passed = self.among(replace(query, none_of=()), ids)
        return passed - self.among(SearchQuery((query.none_of,)), sorted(passed))


def _hit(row: tuple) -> SearchHit:
    return SearchHit(row[0], row[1], row[2], row[3], loads(row[4]) or [], row[5], row[6] or "",
                     None if row[7] is None else float(row[7]))


class _Plan(ABC):
    """How one query runs on one backend: a page of rows (id, title, source type, source reference, tags,
    updated_at, marked snippet, score) and the count of every match."""

    def __init__(self, database: Database, query: SearchQuery) -> None:
        self.database = database
        self.query = query

    @abstractmethod
    def page(self, limit: int, offset: int) -> list[tuple]:
        """One page of rows, best first."""

    @abstractmethod
    def count(self) -> int:
        """How many documents match in all."""

    @abstractmethod
    def ids(self) -> list[int]:
        """The id of every match."""

    @abstractmethod
    def among(self, ids: list[int]) -> set[int]:
        """Those of ``ids`` (IN_BATCH at most) that match."""

    def ranked(self, limit: int) -> list[tuple[int, float]]:
        """The best ``limit`` matches' ids and scores (higher is better), without their snippets."""
        return [(row[0], float(row[7] or 0.0)) for row in self.page(limit, 0)]

    def snippets(self, ids: list[int]) -> dict[int, str]:
        """The marked snippets of these matches."""
        wanted = set(ids)
        return {row[0]: row[6] or "" for row in self.page(CANDIDATES, 0) if row[0] in wanted}

    def _rows(self, sql: str, params: list[Any]) -> list[tuple]:
        return self.database.execute(sql, params).fetchall()


class _Recent(_Plan):
    """No words: the newest documents that pass the filters, the start of the body as the snippet."""

    def __init__(self, database: Database, query: SearchQuery) -> None:
        super().__init__(database, query)
        self.conditions, self.params = filter_sql(query.where, postgres=database.is_postgres)
        self.where = where_clause(self.conditions)

    def page(self, limit: int, offset: int) -> list[tuple]:
        return self._rows(_RECENT.format(where=self.where), [*self.params, limit, offset])

    def count(self) -> int:
        return self._rows(f"SELECT COUNT(*) FROM documents AS d {self.where}", self.params)[0][0]

    def ids(self) -> list[int]:
        return [row[0] for row in self._rows(f"SELECT d.id FROM documents AS d {self.where}", self.params)]

    def among(self, ids: list[int]) -> set[int]:
        where = where_clause([f"d.id IN ({', '.join('?' * len(ids))})", *self.conditions])
        return {row[0] for row in self._rows(f"SELECT d.id FROM documents AS d {where}", [*ids, *self.params])}


class _Sqlite(_Plan):
    """FTS5: the best matches by bm25, then the snippets of the page's rows only."""

    def __init__(self, database: Database, query: SearchQuery) -> None:
        super().__init__(database, query)
        self.match = fts5_match(query)
        self.join, self.filters, self.params = self._filters(query.where)

    @staticmethod
    def _filters(where: DocumentFilter) -> tuple[str, str, list[Any]]:
        """The join, conditions and parameters that apply ``where`` to the matches: each match is looked up
        in ``documents_filter``, which holds the filtered columns, never in the document's row."""
        if not where:
            return "", "", []
        conditions, params = filter_sql(where, postgres=False)
        return _FILTER_JOIN, _and(conditions), params

    def page(self, limit: int, offset: int) -> list[tuple]:
        ranked = self._rows(_SQLITE_RANKED.format(join=self.join, filters=self.filters),
                            [self.match, *self.params, limit, offset])
        if not ranked:
            return []
        ids = [doc_id for doc_id, _ in ranked]
        rows = self._rows(_SQLITE_PAGE.format(ids=", ".join("?" * len(ids))),
                          [OPEN, CLOSE, self.match, min(ids), max(ids), *ids])
        by_id = {row[0]: row for row in rows}
        return [(*by_id[doc_id], -score) for doc_id, score in ranked]  # bm25 is lower for better matches

    def ranked(self, limit: int) -> list[tuple[int, float]]:
        return [(doc_id, -score) for doc_id, score in self._rows(
            _SQLITE_RANKED.format(join=self.join, filters=self.filters), [self.match, *self.params, limit, 0])]

    def snippets(self, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = self._rows(_SQLITE_PAGE.format(ids=", ".join("?" * len(ids))),
                          [OPEN, CLOSE, self.match, min(ids), max(ids), *ids])
        return {row[0]: row[6] or "" for row in rows}

    def count(self) -> int:
        sql = _SQLITE_COUNT.format(join=self.join, filters=self.filters)
        return self._rows(sql, [self.match, *self.params])[0][0]

    def ids(self) -> list[int]:
        sql = _SQLITE_COUNT.format(join=self.join, filters=self.filters).replace("COUNT(*)", "documents_fts.rowid", 1)
        return [row[0] for row in self._rows(sql, [self.match, *self.params])]

    def among(self, ids: list[int]) -> set[int]:
        sql = _SQLITE_AMONG.format(join=self.join, filters=self.filters, ids=", ".join("?" * len(ids)))
        return {row[0] for row in self._rows(sql, [self.match, min(ids), max(ids), *ids, *self.params])}


class _Postgres(_Plan):
    """The ``search`` tsvector: ts_rank_cd with the title weighted, ts_headline for the page's rows."""

    def __init__(self, database: Database, query: SearchQuery) -> None:
        super().__init__(database, query)
        self.tsquery, self.terms = tsquery_sql(query)
        conditions, self.params = filter_sql(query.where, postgres=True)
        self.filters = _and(conditions)

    def page(self, limit: int, offset: int) -> list[tuple]:
        return self._rows(_PG_SEARCH.format(tsquery=self.tsquery, filters=self.filters),
                          [*self.terms, _PG_WEIGHTS, *self.params, limit, offset, _PG_HEADLINE])

    def ranked(self, limit: int) -> list[tuple[int, float]]:
        rows = self._rows(_PG_RANKED.format(tsquery=self.tsquery, filters=self.filters),
                          [*self.terms, _PG_WEIGHTS, *self.params, limit])
        return [(doc_id, float(score)) for doc_id, score in rows]

    def snippets(self, ids: list[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = self._rows(_PG_SNIPPETS.format(tsquery=self.tsquery, ids=", ".join("?" * len(ids))),
                          [*self.terms, _PG_HEADLINE, *ids])
        return {doc_id: marked or "" for doc_id, marked in rows}

    def count(self) -> int:
        return self._rows(_PG_COUNT.format(tsquery=self.tsquery, filters=self.filters),
                          [*self.terms, *self.params])[0][0]

    def ids(self) -> list[int]:
        sql = _PG_COUNT.format(tsquery=self.tsquery, filters=self.filters).replace("COUNT(*)", "d.id", 1)
        return [row[0] for row in self._rows(sql, [*self.terms, *self.params])]

    def among(self, ids: list[int]) -> set[int]:
        listed = f" AND d.id IN ({', '.join('?' * len(ids))}){self.filters}"
        sql = _PG_COUNT.format(tsquery=self.tsquery, filters=listed).replace("COUNT(*)", "d.id", 1)
        return {row[0] for row in self._rows(sql, [*self.terms, *ids, *self.params])}


def _and(conditions: list[str]) -> str:
    return "".join(f" AND {condition}" for condition in conditions)


# ---------------------------------------------------------------------------------------------- by meaning


class _Fused:
    """Search by meaning (``semantic``) or by meaning and words (``hybrid``) for one query.

    The semantic side embeds the query's words and takes the documents whose best chunk is nearest; the
    query language holds there too: its filters and exclusions, and its phrases and prefixes (words the
    user quoted or truncated on purpose), narrow the documents compared, while plain words do not have to
    appear (that is what searching by meaning is for). The keyword side is the BM25 ranking above.
    Hybrid fuses the two rankings by reciprocal rank fusion (``1 / (RRF_K + rank)`` from each side), and
    a document whose title or best chunk's heading holds every query word gets one more such term.
    Snippets come from each document's best chunk, with the query's words marked.
    """

    def __init__(self, search: DocumentSearch, text: str, query: SearchQuery, mode: str) -> None:
        self.search = search
        self.text = text
        self.query = query
        self.mode = mode
        assert search.semantic is not None
        self.semantic = search.semantic
        self.words = [term.text for group in query.all_of for term in group]
        self.stems = sorted({word.lower() for term in self.words for word in re.findall(r"\w+", term)},
                            key=len, reverse=True)
        self.word_patterns = [re.compile(rf"\b{re.escape(stem)}") for stem in self.stems]
        self.pattern = (re.compile(r"\b(" + "|".join(map(re.escape, self.stems)) + r")\w*", re.IGNORECASE)
                        if self.stems else None)

    def page(self, limit: int, offset: int) -> SearchPage:
        wanted = max(CANDIDATES, offset + limit)
        # The vector scan (numpy, which lets go of the GIL) runs in another thread while SQLite ranks the
        # words in this one: hybrid search costs about the slower of the two, not their sum.
        index, vector = self.semantic.index(), self.semantic.query_vector(" ".join(self.words))
        scan = _SCANS.submit(index.ranking, vector)
        plan = self.search._plan(self.query)
        try:
            keyword = plan.ranked(wanted) if self.mode == "hybrid" else []
        finally:
            ranking = scan.result()
        nearest = self._nearest(wanted, ranking)
        best_chunk = {near.document_id: near for near in nearest}
        scores: dict[int, float] = {}
        for rank, near in enumerate(nearest, 1):
            scores[near.document_id] = scores.get(near.document_id, 0.0) + 1.0 / (RRF_K + rank)
        for rank, (doc_id, _) in enumerate(keyword, 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
        ordered = sorted(scores, key=lambda doc_id: (-scores[doc_id], doc_id))[:wanted]
        spans = self.semantic.store.spans_of([doc_id for doc_id in ordered if doc_id in best_chunk])
        headings = self._headings(spans, best_chunk)
        titles = self._titles(ordered)
        bonus = [doc_id for doc_id in ordered if self._names_every_word(titles.get(doc_id, ""))
                 or self._names_every_word(headings.get(doc_id, ""))]
        for rank, doc_id in enumerate(bonus, 1):
            scores[doc_id] += TITLE_BONUS / (RRF_K + rank)
        ordered.sort(key=lambda doc_id: (-scores[doc_id], doc_id))
        chosen = ordered[offset:offset + limit]
        # A document the words found but no chunk of which was near: the snippet comes from its words.
        snippets = plan.snippets([doc_id for doc_id in chosen if doc_id not in best_chunk])
        hits = self._hits(chosen, best_chunk, spans, snippets, scores)
        # The words may match more documents than were fused: the total says so, and later pages fuse deeper.
        total = max(len(scores), plan.count() if len(keyword) >= wanted else 0)
        return SearchPage(self.text, hits, total, limit, offset, self.mode)

    def _nearest(self, wanted: int, ranking: Ranking) -> list[Nearest]:
        query = self.query
        required = tuple(group for group in query.all_of if all(term.prefix or term.quoted for term in group))
        if not (required or query.where or query.none_of):
            return ranking.first(wanted)
        narrowed = SearchQuery(required, query.none_of, query.where)
        # Post-filtering: the nearest documents checked against the query, deeper while too few pass.
        passes: dict[int, bool] = {}
        for depth in (wanted * factor for factor in POST_FILTER_DEPTHS):
            candidates = ranking.first(depth)
            asked = [near.document_id for near in candidates if near.document_id not in passes]
            passed = self.search.among(narrowed, asked)
            passes.update((doc_id, doc_id in passed) for doc_id in asked)
            kept = [near for near in candidates if passes[near.document_id]]
            if len(kept) >= wanted or len(candidates) < depth:
                return kept[:wanted]
        # Few documents pass: the ranking of only those the query allows (pre-filtering).
        allowed: set[int] | None = None
        if required or query.where:
            allowed = self.search.matching_ids(SearchQuery(required, (), query.where))
            if not allowed:
                return []
        excluded = self.search.matching_ids(SearchQuery((query.none_of,))) if query.none_of else None
        return ranking.restricted(allowed, excluded).first(wanted)

    def _names_every_word(self, text: str) -> bool:
        lowered = text.lower()
        return bool(self.word_patterns) and all(pattern.search(lowered) for pattern in self.word_patterns)

    @staticmethod
    def _headings(spans: dict[int, list[Span]], best: dict[int, Nearest]) -> dict[int, str]:
        """The heading of each document's best chunk."""
        found: dict[int, str] = {}
        for doc_id, doc_spans in spans.items():
            chunk = best[doc_id].chunk
            if chunk < len(doc_spans):
                found[doc_id] = doc_spans[chunk].heading
        return found

    def _titles(self, ids: list[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            rows = self.search.database.execute(
                f"SELECT id, title FROM documents WHERE id IN ({', '.join('?' * len(part))})", part).fetchall()
            found.update({row[0]: row[1] or "" for row in rows})
        return found

    def _hits(self, ids: list[int], best: dict[int, Nearest], spans: dict[int, list[Span]],
              snippets: dict[int, str], scores: dict[int, float]) -> list[SearchHit]:
        if not ids:
            return []
        database = self.search.database
        found = {row[0]: row for row in database.execute(
            f"SELECT {_HIT_COLUMNS} FROM documents AS d WHERE d.id IN ({', '.join('?' * len(ids))})", ids).fetchall()}
        hits: list[SearchHit] = []
        for doc_id in ids:
            row = found.get(doc_id)
            if row is None:  # deleted since it was ranked
                continue
            snippet = snippets.get(doc_id, "")
            near = best.get(doc_id)
            doc_spans = spans.get(doc_id, [])
            if near is not None and near.chunk < len(doc_spans):
                text = self.semantic.store.chunk_text(doc_id, doc_spans[near.chunk])
                if text:
                    snippet = self._marked(text)
            hits.append(SearchHit(row[0], row[1], row[2], row[3], loads(row[4]) or [], row[5], snippet,
                                  round(scores[doc_id], 6)))
        return hits

    def _marked(self, chunk: str) -> str:
        """About PREVIEW_CHARS of the chunk around its first query word, every query word marked."""
        pattern = self.pattern
        found = pattern.search(chunk) if pattern else None
        around = max(0, found.start() - PREVIEW_CHARS) if found else 0  # markdown costs more than it shows
        words = plain_snippet(chunk[around:around + 3 * PREVIEW_CHARS])
        words = " ".join(words.replace(OPEN, "").replace(CLOSE, "").split())
        first = pattern.search(words) if pattern else None
        start = max(0, first.start() - PREVIEW_CHARS // 3) if first else 0
        if start:
            start = words.find(" ", start) + 1 or start
        excerpt = words[start:start + PREVIEW_CHARS]
        cut = excerpt.rfind(" ") if start + PREVIEW_CHARS < len(words) else -1
        more = start + PREVIEW_CHARS < len(words) or around + 3 * PREVIEW_CHARS < len(chunk)
        excerpt = ("…" if start or around else "") + (excerpt[:cut] if cut > 0 else excerpt) + ("…" if more else "")
        return pattern.sub(lambda m: OPEN + m.group(0) + CLOSE, excerpt) if pattern else excerpt
