"""The search query language (parsing, compiling) and its results on a small known corpus.

The corpus tests run against a real SQLite file and, where PostgreSQL answers, a real PostgreSQL database:
both backends must give the same answers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quaero.errors import QueryError
from quaero.stores.db import Database
from quaero.stores.documents import DocumentFilter, DocumentInput, DocumentStore
from quaero.stores.models import bind_models
from quaero.stores.search import (
    _SQLITE_RANKED,
    CLOSE,
    OPEN,
    DocumentSearch,
    SearchQuery,
    Term,
    _Sqlite,
    fts5_match,
    hit_dict,
    mark_matches,
    page_dict,
    parse_query,
    tsquery_sql,
)


def day(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------------------------------------ parsing


def test_words_must_all_match():
    query = parse_query("python  tutorial")
    assert query.all_of == ((Term("python"),), (Term("tutorial"),))
    assert fts5_match(query) == '"python" AND "tutorial"'


def test_phrase_prefix_and_prefixed_phrase():
    query = parse_query('"event loop" pyth* "learn c"*')
    assert query.all_of == ((Term("event loop"),), (Term("pyth", prefix=True),), (Term("learn c", prefix=True),))
    assert fts5_match(query) == '"event loop" AND "pyth"* AND "learn c"*'


def test_or_binds_tighter_than_and_and_exclusions_go_last():
    query = parse_query('asyncio OR trio guide -draft -"old notes"')
    assert query.all_of == ((Term("asyncio"), Term("trio")), (Term("guide"),))
    assert query.none_of == (Term("draft"), Term("old notes"))
    assert fts5_match(query) == '(("asyncio" OR "trio") AND "guide") NOT ("draft" OR "old notes")'


def test_or_chains_into_one_group():
    assert parse_query("a OR b OR c").all_of == ((Term("a"), Term("b"), Term("c")),)


def test_lowercase_or_and_fts5_operators_are_plain_words():
    query = parse_query("cats or dogs AND NEAR NOT")
    assert [group[0].text for group in query.all_of] == ["cats", "or", "dogs", "AND", "NEAR", "NOT"]
    assert fts5_match(query) == '"cats" AND "or" AND "dogs" AND "AND" AND "NEAR" AND "NOT"'


@pytest.mark.parametrize("text", ["c++", "^python", "(python)", "12:30", "NEAR(a", "x\"", "C:"])
def test_user_punctuation_is_quoted_text(text):
    match = fts5_match(parse_query(text.replace('"', "")))
    assert match.startswith('"') and match.endswith('"') and match.count('"') == 2


def test_filters():
    query = parse_query('source:web source:file tag:docs tag:"machine learning" after:2025-01-01 '
                        'before:2025-02-01T12:00 python')
    assert query.where == DocumentFilter(source_types=("web", "file"), tags=("docs", "machine learning"),
                                         after=day("2025-01-01"), before=day("2025-02-01T12:00"))
    assert query.all_of == ((Term("python"),),)


def test_filter_names_ignore_case_and_dates_keep_their_zone():
    query = parse_query("Tag:x AFTER:2025-01-01T00:00+02:00")
    assert query.where.tags == ("x",) and query.where.after == day("2024-12-31T22:00")


def test_only_filters_or_nothing_is_a_listing():
    assert parse_query("") == SearchQuery()
    assert parse_query("   ") == SearchQuery()
    assert parse_query("tag:docs").all_of == ()


def test_punctuation_alone_is_skipped_like_the_index_skips_it():
    assert parse_query("rock & roll -- !").all_of == ((Term("rock"),), (Term("roll"),))
    assert parse_query('tag:x "++"').where.tags == ("x",)


def test_a_colon_without_a_value_is_part_of_a_word():
    assert parse_query("note: this").all_of == ((Term("note:"),), (Term("this"),))


def test_tsquery_uses_parameters_for_every_term():
    sql, params = tsquery_sql(parse_query("a OR b \"c d\" e* -f"))
    assert sql == ("((phraseto_tsquery('english', ?) || phraseto_tsquery('english', ?)) && "
                   "(phraseto_tsquery('english', ?)) && (to_tsquery('english', ?))) && "
                   "!!(phraseto_tsquery('english', ?))")
    assert params == ["a", "b", "c d", "'e':*", "f"]
    assert tsquery_sql(parse_query("o'neil-x*"))[1] == ["'o' <-> 'neil' <-> 'x':*"]


@pytest.mark.parametrize("text, message", [
    ('python "event loop', "the quote at position 8 is never closed"),
    ("python -", "a lone '-' at position 8"),
    ("- python", "a lone '-' at position 1"),
    ("OR python", "OR at position 1 needs a word before it"),
    ("python OR", "the query ends with OR"),
    ("a OR OR b", "OR at position 6 needs a word before it"),
    ("a OR -b", "OR at position 3 must join two words, and '-b' is not a word"),
    ("a OR tag:x", "OR at position 3 must join two words, and 'tag:x' is not a word"),
    ("a -OR b", "'-OR' at position 3"),
    ("-python", "the query only excludes words"),
    ("-python source:web", "the query only excludes words"),
    ("python after:2025-13-01", "after: '2025-13-01' is not a date"),
    ("python before:yesterday", "before: 'yesterday' is not a date"),
    ("after:2025-02-01 before:2025-01-01", "'after' must be earlier than 'before'"),
    ("after:2025-01-01 after:2025-02-01", "after: is given 2 times"),
    ("title:python", "unknown filter 'title:' at position 1"),
    ("see https://example.com", "unknown filter 'https:' at position 5"),
    ("tag: python", "the filter 'tag:' at position 1 needs a value"),
    ('tag:"" python', "the filter 'tag:' at position 1 needs a value"),
    ("-tag:docs python", "'-tag:docs' at position 1: filters cannot be excluded"),
    ("python *", "'*' at position 8 must end a word"),
    ("++", "'++' at position 1 has no letter or digit"),
    ("\u2615 !", "'\u2615' at position 1 has no letter or digit"),
    ('python ""', "the empty phrase at position 8"),
    ('"   "', "the empty phrase at position 1"),
    ("x" * 1001, "the most is 1000"),
])
def test_malformed_queries_say_what_is_wrong(text, message):
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert message in caught.value.message
    assert caught.value.status_code == 400


def test_mark_matches_escapes_before_marking():
    marked = f"<b>x</b> {OPEN}python{CLOSE} & {OPEN}<i>{CLOSE} stray {CLOSE} {OPEN}"
    assert mark_matches(marked) == "&lt;b&gt;x&lt;/b&gt; <mark>python</mark> &amp; <mark>&lt;i&gt;</mark> stray"
    assert mark_matches(marked, escape=str, start="", stop="") == "<b>x</b> python & <i> stray"
    assert mark_matches("a\n\n  b") == "a b"


# ------------------------------------------------------------------------------------------------ results

CORPUS = [
    # source_type, source_ref, title, markdown, tags, updated
    ("web", "u/py-tut", "Python tutorial", "Learn python programming step by step. The event loop runs callbacks.",
     ["docs", "python"], "2025-01-10T12:00"),
    ("web", "u/snakes", "Snakes of the world", "The python is a large snake. Pythons live in warm places.",
     ["nature"], "2025-02-10T12:00"),
    ("file", "f/asyncio", "Asyncio notes", "The loop handles each event in turn. Coroutines and tasks.",
     ["docs"], "2025-03-10T12:00"),
    ("web", "u/trio", "Trio guide", "Structured concurrency for python with nurseries.", ["docs", "python"],
     "2025-04-10T12:00"),
    ("web", "u/hostile", "<script>alert(1)</script> Hostile page",
     "<img src=x onerror=alert(1)> hostile markup & dangerous <b>bold</b> text.", [], "2025-05-10T12:00"),
    ("web", "u/falcon-title", "Falcon facts", "Birds of prey hunt from the sky over open country.", ["birds"],
     "2025-06-10T12:00"),
    ("web", "u/falcon-body", "Birds of prey", "A falcon is fast. The falcon dives over open country.",
     ["birds"], "2025-07-10T12:00"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def corpus(request, tmp_path):
    """A DocumentSearch over CORPUS, and each document's id by source reference."""
    url = (f"sqlite:///{tmp_path / 'search.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    store = DocumentStore(database, bind_models(database.db))
    ids = {}
    for source_type, ref, title, markdown, tags, updated in CORPUS:
        ids[ref] = store.upsert(DocumentInput(source_type, ref, title, markdown, tags=tags)).id
        with database.write():
            database.execute("UPDATE documents SET updated_at = ? WHERE id = ?", (day(updated), ids[ref]))
    try:
        yield DocumentSearch(database), ids
    finally:
        database.close()


def found(corpus, text, **page):
    search, ids = corpus
    names = {doc_id: ref for ref, doc_id in ids.items()}
    return [names[hit.id] for hit in search.search(text, **page).items]


def test_all_words_must_match(corpus):
    assert set(found(corpus, "python")) == {"u/py-tut", "u/snakes", "u/trio"}
    assert found(corpus, "python tutorial") == ["u/py-tut"]
    assert found(corpus, "python falcon") == []


def test_a_phrase_needs_its_words_in_order(corpus):
    assert found(corpus, '"event loop"') == ["u/py-tut"]
    assert set(found(corpus, "event loop")) == {"u/py-tut", "f/asyncio"}


def test_prefix(corpus):
    assert found(corpus, "concurr*") == ["u/trio"]
    assert found(corpus, "async*") == ["f/asyncio"]


def test_exclusion(corpus):
    assert set(found(corpus, "python -snake")) == {"u/py-tut", "u/trio"}
    assert found(corpus, 'python -"event loop" -snake') == ["u/trio"]


def test_or(corpus):
    assert set(found(corpus, "trio OR asyncio")) == {"u/trio", "f/asyncio"}
    assert found(corpus, "trio OR asyncio nurseries") == ["u/trio"]


def test_source_filter(corpus):
    assert found(corpus, "source:file") == ["f/asyncio"]
    assert set(found(corpus, "python OR loop source:web")) == {"u/py-tut", "u/snakes", "u/trio"}
    assert found(corpus, "source:nowhere") == []


def test_tag_filters_all_must_match(corpus):
    assert set(found(corpus, "tag:docs")) == {"u/py-tut", "f/asyncio", "u/trio"}
    assert set(found(corpus, "tag:docs tag:python")) == {"u/py-tut", "u/trio"}
    assert found(corpus, "python tag:nature") == ["u/snakes"]


def test_date_filters_on_updated_at(corpus):
    assert found(corpus, "before:2025-02-10") == ["u/py-tut"]
    assert found(corpus, "after:2025-06-10") == ["u/falcon-body", "u/falcon-title"]  # inclusive
    assert found(corpus, "after:2025-02-10T13:00 before:2025-04-10") == ["f/asyncio"]
    assert set(found(corpus, "python after:2025-02-01")) == {"u/snakes", "u/trio"}


@pytest.mark.parametrize("corpus", ["sqlite"], indirect=True)  # the index is SQLite's
@pytest.mark.parametrize("query", ["python OR loop source:web", "python after:2025-02-01", "python tag:docs",
                                   "python OR loop source:web tag:docs before:2025-05-01"])
def test_filters_are_checked_in_the_filter_index_not_the_rows(corpus, query):
    """Each match is checked in documents_filter (a covering index), never by reading the document's row."""
    search, _ = corpus
    plan = _Sqlite(search.database, parse_query(query))
    sql = _SQLITE_RANKED.format(join=plan.join, filters=plan.filters)
    steps = " | ".join(row[-1] for row in search.database.execute(
        f"EXPLAIN QUERY PLAN {sql}", [plan.match, *plan.params, 20, 0]).fetchall())
    assert "COVERING INDEX documents_filter" in steps, steps
    assert search.search(query).total >= 1


def test_title_matches_rank_above_body_matches(corpus):
    search, ids = corpus
    page = search.search("falcon")
    assert [hit.id for hit in page.items] == [ids["u/falcon-title"], ids["u/falcon-body"]]
    assert page.items[0].score > page.items[1].score > 0
    assert found(corpus, "python")[0] == "u/py-tut"


def test_snippets_are_escaped_and_highlighted(corpus):
    search, _ = corpus
    [hit] = page_dict(search.search("hostile"))["items"]
    assert "<mark>hostile</mark>" in hit["snippet"]
    assert "<img" not in hit["snippet"] and "<b>" not in hit["snippet"] and "&amp;" in hit["snippet"]
    assert "hostile markup" in hit["snippet_text"] and "<mark>" not in hit["snippet_text"]
    assert hit["title"] == "<script>alert(1)</script> Hostile page"  # JSON carries it; pages escape it
    [tut] = page_dict(search.search('"event loop"'))["items"]
    assert "<mark>" in tut["snippet"] and "loop</mark>" in tut["snippet"]


def test_an_empty_query_lists_by_recency(corpus):
    search, _ = corpus
    page = search.search("", limit=3)
    assert found(corpus, "", limit=3) == ["u/falcon-body", "u/falcon-title", "u/hostile"]
    assert page.total == len(CORPUS) and all(hit.score is None for hit in page.items)
    assert hit_dict(page.items[0])["snippet"].startswith("A falcon is fast.")


def test_pages_and_totals(corpus):
    search, _ = corpus
    first, second = search.search("python", limit=2), search.search("python", limit=2, offset=2)
    assert (first.total, second.total) == (3, 3)
    assert len(first.items) == 2 and len(second.items) == 1
    assert {h.id for h in first.items}.isdisjoint({h.id for h in second.items})
    assert search.search("python", limit=2, offset=10).total == 3
    assert search.search("tag:docs", limit=1).total == 3


@pytest.mark.parametrize("text", ["^python", "(python)", "python)", "{python}", "'python'", "python%", "PYTHON"])
def test_punctuation_around_a_word_is_ignored(corpus, text):
    assert set(found(corpus, text)) == {"u/py-tut", "u/snakes", "u/trio"}


@pytest.mark.parametrize("text", ["c++", "NEAR", "AND", "NOT", "OR-python", '"NEAR(a b)"',
                                  "python;DROP TABLE documents", "a_b*", "x:", "\\python", "a&b|c", "été*"])
def test_fts5_syntax_in_user_text_never_reaches_fts5(corpus, text):
    search, _ = corpus
    page = search.search(text)
    assert page.total == len(page.items)
    assert search.database.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == len(CORPUS)


def test_nul_characters_are_refused_before_any_database_sees_them():
    with pytest.raises(QueryError, match="NUL"):
        parse_query("python\x00")
    with pytest.raises(QueryError, match="NUL"):
        parse_query("tag:a\x00b python")


# ------------------------------------------------------------------------------------------------ the store


@pytest.fixture
def store(corpus):
    """The DocumentStore over the same corpus (and backend)."""
    database = corpus[0].database
    return DocumentStore(database, bind_models(database.db))


def test_store_lists_counts_and_deletes_by_filter_on_both_backends(store, corpus):
    _, ids = corpus
    docs = DocumentFilter(tags=("docs",))
    assert [d.source_ref for d in store.list(docs, sort="title")] == ["f/asyncio", "u/py-tut", "u/trio"]
    assert [d.source_ref for d in store.list(docs, sort="-updated_at", limit=1, offset=1)] == ["f/asyncio"]
    assert store.list(docs, bodies=False)[0].markdown is None
    assert store.count(DocumentFilter(source_types=("web",), after=day("2025-02-01"), before=day("2025-06-01"))) == 3
    assert store.tags(limit=2) == [{"tag": "docs", "count": 3}, {"tag": "birds", "count": 2}]
    stats = store.stats(top_tags=1)
    assert stats["total"] == len(CORPUS) and stats["by_source_type"] == {"web": 6, "file": 1}
    assert stats["markdown_bytes"] == sum(len(doc[3].encode()) for doc in CORPUS)
    assert stats["newest_updated_at"] == "2025-07-10T12:00:00.000Z"
    with pytest.raises(QueryError, match="refusing to delete every document"):
        store.delete_matching(DocumentFilter())
    assert store.delete_matching(DocumentFilter(tags=("birds",))) == 2
    assert found(corpus, "falcon") == []
    store.delete(ids["u/trio"])
    assert store.count() == len(CORPUS) - 3 and found(corpus, "concurr*") == []
    assert store.delete_matching(DocumentFilter(), everything=True) == len(CORPUS) - 3


def test_a_word_given_twice_is_asked_once():
    assert fts5_match(parse_query("loop OR loop")) == fts5_match(parse_query("loop"))
    assert parse_query("a b a -c -c") == parse_query("a b -c")


def test_snippets_read_as_text_not_markdown():
    marked = (f"## Setup | a | b |\n|---|---|\n| 1 | 2 |\n```python\nrun()\n``` see [the {OPEN}docs{CLOSE}]"
              f"(https://x.example/d) and **bold** `code`")
    assert mark_matches(marked) == "Setup a b 1 2 run() see the <mark>docs</mark> and bold code"


@pytest.fixture(params=["sqlite", "postgres"])
def enriched(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'enriched.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    store = DocumentStore(database, bind_models(database.db))
    try:
        yield database, store, DocumentSearch(database)
    finally:
        database.close()


def test_keywords_and_summaries_are_searched_and_follow_enrichment(enriched):
    _, store, search = enriched
    plain = store.upsert(DocumentInput("web", "a", "Memory", "How objects are freed.")).id
    other = store.upsert(DocumentInput("web", "b", "Other", "Unrelated words here.")).id
    assert search.search("refcount").items == []
    store.update_fields(plain, keywords=["refcount", "garbage collector"], summary="Cycles are collected.")
    assert [hit.id for hit in search.search("refcount").items] == [plain]
    assert [hit.id for hit in search.search('"garbage collector"').items] == [plain]
    assert [hit.id for hit in search.search("cycles").items] == [plain]
    store.update_fields(plain, keywords=[])  # the index follows the change
    assert search.search("refcount").items == [] and other != plain


def test_an_index_of_the_title_and_body_only_is_rebuilt_with_keywords(tmp_path):
    path = tmp_path / "old.db"
    database = Database(f"sqlite:///{path}")
    store = DocumentStore(database, bind_models(database.db))
    doc = store.upsert(DocumentInput("web", "a", "Title", "Body", keywords=["zebra"])).id
    with database.write():  # the index as releases before enrichment made it
        for trigger in ("documents_fts_insert", "documents_fts_delete", "documents_fts_update"):
            database.execute(f"DROP TRIGGER {trigger}")
        database.execute("DROP TABLE documents_fts")
        database.execute("CREATE VIRTUAL TABLE documents_fts USING fts5(title, markdown, content='documents', "
                         "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')")
        database.execute("INSERT INTO documents_fts (documents_fts) VALUES ('rebuild')")
    database.close()
    reopened = Database(f"sqlite:///{path}")
    bind_models(reopened.db)
    assert [hit.id for hit in DocumentSearch(reopened).search("zebra").items] == [doc]
    reopened.close()


def test_a_postgres_search_column_without_keywords_is_made_again(postgres_url):
    database = Database(postgres_url)
    store = DocumentStore(database, bind_models(database.db))
    doc = store.upsert(DocumentInput("web", "a", "Title", "Body", keywords=["zebra"])).id
    with database.write():  # the column as releases before enrichment made it
        database.execute("ALTER TABLE documents DROP COLUMN search")
        database.execute("ALTER TABLE documents ADD COLUMN search tsvector GENERATED ALWAYS AS ("
                         "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
                         "setweight(to_tsvector('english', coalesce(markdown, '')), 'B')) STORED")
        database.execute("DROP TABLE quaero_schema")  # those releases recorded no schema digest
    assert DocumentSearch(database).search("zebra").items == []
    bind_models(database.db)
    assert [hit.id for hit in DocumentSearch(database).search("zebra").items] == [doc]
    database.close()
