"""Search by meaning end to end, with the built-in offline model (the embed plugin's ``local``): documents
embedded in the background as they are saved, semantic and hybrid search finding what keyword search
misses, the query language holding on both sides, the fallback with a notice, related documents, ``ask``
offline, the ``embed`` action, and the API and pages."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from starlette.testclient import TestClient
from support import make_settings, wait_for

from quaero.api import DocumentInput
from quaero.runtime import Runtime
from quaero.stores.search import parse_query
from quaero.web.app import create_app

CORPUS = {
    "deadlocks": ("Deadlocks", "# Deadlocks\n\nA deadlock happens when two transactions each hold a lock the other "
                  "one needs, so both wait forever. The server detects the cycle and aborts one of the "
                  "transactions.\n\n## Avoiding deadlocks\n\nAcquire locks in a consistent order and keep "
                  "transactions short.", ["db"]),
    "create-index": ("CREATE INDEX", "# CREATE INDEX\n\nCREATE INDEX builds an index on the given columns of a "
                     "table. With CONCURRENTLY the index is built without taking locks that prevent inserts, "
                     "updates or deletes on the table.", ["db"]),
    "vacuum": ("VACUUM", "# VACUUM\n\nVACUUM reclaims storage occupied by dead tuples and updates statistics "
               "used by the query planner.", ["db"]),
    "bread": ("Baking bread", "# Baking bread\n\nMix flour, water, salt and yeast, knead the dough, let it rise "
              "and bake it in a hot oven until the crust is brown.", ["food"]),
    "garden": ("Growing tomatoes", "# Growing tomatoes\n\nPlant tomato seedlings in full sun, water them deeply "
               "and tie the stems to stakes as the plants grow.", ["garden"]),
    "python": ("Exceptions in Python", "# Exceptions\n\nUse try and except to handle errors raised while a "
               "program runs; finally runs clean-up code whether or not an error happened.", ["code"]),
}


@pytest.fixture
def meaning(tmp_path):
    rt = Runtime(make_settings(tmp_path, embedder="local"), role="run")
    rt.start()
    try:
        for ref, (title, markdown, tags) in CORPUS.items():
            rt.documents.upsert(DocumentInput(source_type="web", source_ref=f"https://docs.test/{ref}",
                                              title=title, markdown=markdown, tags=tags))
        # Embedded in the background, by the quaero.embed actor the saves asked for.
        wait_for(lambda: rt.embeddings.check().embedded == len(CORPUS), 60, what="the documents to be embedded")
        yield rt
    finally:
        rt.stop()


def _refs(page) -> list[str]:
    return [hit.source_ref.rsplit("/", 1)[1] for hit in page.items]


def test_meaning_finds_what_the_words_miss_and_hybrid_is_the_default(meaning):
    question = "transactions stuck waiting on each other"
    assert _refs(meaning.search.search("sessions stuck blocking each other", mode="keyword")) == []
    semantic = meaning.search.search(question, mode="semantic")
    assert semantic.mode == "semantic" and _refs(semantic)[0] == "deadlocks"
    hybrid = meaning.search.search(question)
    assert hybrid.mode == "hybrid" and hybrid.notice is None and _refs(hybrid)[0] == "deadlocks"
    # The snippet is the best chunk's text, with the query's words marked.
    assert "\ue000transactions\ue001" in hybrid.items[0].marked
    # Words the page holds still rank it first in hybrid, as keyword search does.
    assert _refs(meaning.search.search("create index concurrently"))[0] == "create-index"


def test_filters_phrases_and_exclusions_hold_on_the_semantic_side(meaning):
    assert set(_refs(meaning.search.search("waiting locks tag:food", mode="semantic"))) == {"bread"}
    assert "deadlocks" not in _refs(meaning.search.search("waiting locks -deadlock", mode="semantic"))
    assert _refs(meaning.search.search('"dead tuples" cleanup', mode="semantic")) == ["vacuum"]
    assert _refs(meaning.search.search("waiting locks source:nowhere", mode="hybrid")) == []


def test_related_documents_and_the_api_and_pages(meaning):
    deadlocks = meaning.documents.get_by_ref("web", "https://docs.test/deadlocks")
    related = meaning.related(deadlocks.id, limit=3)
    assert deadlocks.id not in [r["id"] for r in related]
    assert related[0]["source_ref"].endswith(("create-index", "vacuum"))
    with TestClient(create_app(meaning.settings, runtime=meaning)) as client:
        body = client.get("/api/search", params={"q": "loaf oven crust", "mode": "semantic"}).json()
        assert body["mode"] == "semantic" and body["items"][0]["source_ref"].endswith("/bread")
        assert client.get("/api/search", params={"q": "x", "mode": "fuzzy"}).status_code == 400
        listed = client.get(f"/api/documents/{deadlocks.id}/related").json()["items"]
        assert [r["id"] for r in listed] == [r["id"] for r in meaning.related(deadlocks.id, limit=5)]
        page = client.get(f"/documents/{deadlocks.id}").text
        assert "Related" in page and f'/documents/{related[0]["id"]}' in page
        search_page = client.get("/search", params={"q": "transactions stuck waiting", "mode": "semantic"}).text
        assert "found by meaning" in search_page and "Deadlocks" in search_page
        ask_page = client.get("/ask", params={"q": "how do I stop transactions waiting forever?"}).text
        assert "[1]" in ask_page and "No answering model is configured" in ask_page


def test_ask_offline_quotes_the_best_passages_with_their_sources(meaning):
    answer = meaning.ask("How do I avoid transactions waiting for each other forever?", limit=3)
    assert answer["model"] is None and answer["error"] is None and answer["mode"] == "hybrid"
    first = answer["passages"][0]
    assert first["source_ref"].endswith("/deadlocks") and "lock" in first["text"]
    assert answer["answer"].startswith("[1] Deadlocks") and "https://docs.test/deadlocks" in answer["answer"]
    assert answer["cited"] == [p["index"] for p in answer["passages"]]
    with pytest.raises(Exception, match="ask needs a question"):
        meaning.ask("   ")


def test_a_changed_document_is_embedded_again_and_a_deleted_one_leaves_the_index(meaning):
    bread = meaning.documents.get_by_ref("web", "https://docs.test/bread")
    meaning.documents.upsert(DocumentInput(source_type="web", source_ref="https://docs.test/bread",
                                           title="Deadlock detection", markdown="Lock waits form a cycle between "
                                           "transactions; the server aborts one of them to break the deadlock."))
    wait_for(lambda: meaning.embeddings.check().stale == 0 and meaning.embeddings.store.queued() == 0, 30,
             what="the changed document to be embedded again")
    assert bread.id in [hit.id for hit in meaning.search.search("deadlock cycle", mode="semantic").items[:2]]
    meaning.documents.delete(bread.id)
    wait_for(lambda: bread.id not in [h.id for h in meaning.search.search("deadlock cycle", mode="semantic").items],
             5, what="the deleted document to leave the results")


def test_without_a_model_search_falls_back_to_keyword_with_a_notice(tmp_path):
    with Runtime(make_settings(tmp_path, embedder="nonexistent"), role="run") as rt:
        rt.documents.upsert(DocumentInput(source_type="web", source_ref="a", title="Deadlocks",
                                          markdown="two transactions wait"))
        page = rt.search.search("transactions", mode="hybrid")
        assert page.mode == "keyword" and [hit.source_ref for hit in page.items] == ["a"]
        assert "no installed plugin offers the embedder 'nonexistent'" in page.notice
        assert "local" in page.notice.split("installed: ")[1]
        assert rt.search.search("transactions").notice  # the default mode says so too: a model is configured
    with Runtime(make_settings(tmp_path / "off", embedder="none"), role="run") as rt:
        rt.documents.upsert(DocumentInput(source_type="web", source_ref="a", title="T", markdown="words"))
        assert rt.search.search("words").notice is None  # off on purpose: nothing to say
        assert 'embedder = "none"' in rt.search.search("words", mode="semantic").notice


def test_the_embed_action_embeds_what_is_missing_or_stale_and_reports_counts(tmp_path):
    settings = make_settings(tmp_path, embedder="none")
    with Runtime(settings, role="run") as rt:  # saved while search by meaning was off
        for ref, (title, markdown, _tags) in CORPUS.items():
            rt.documents.upsert(DocumentInput(source_type="web", source_ref=ref, title=title, markdown=markdown))
        assert rt.not_runnable(rt.definitions.parse("name: e\nsteps:\n  - {name: embed, action: embed}\n")) \
            == ['step \'embed\': search by meaning is off (embedder = "none" in the settings)']
    settings = make_settings(tmp_path, embedder="local", plugins={"embed": {"dimensions": 64}})
    with Runtime(settings, role="run") as rt:
        from support import execute, wait_done

        root = execute(rt, "name: e\nsteps:\n  - {name: embed, action: embed}\n")
        assert wait_done(rt, root, timeout=60).status == "completed"
        step = rt.jobs.children(root)[0]
        stats = rt.step_stats(step)
        assert stats["after"]["embedded"] == len(CORPUS) and stats["after"]["missing"] == 0
        assert stats["after"]["model"].endswith("/64") and stats["after"]["bytes_per_document"] < 1024
        assert stats["before"]["missing"] + stats["before"]["embedded"] == len(CORPUS)


def test_hybrid_search_on_postgresql(tmp_path, postgres_url):
    with Runtime(make_settings(tmp_path, embedder="local", database_url=postgres_url), role="run") as rt:
        for ref, (title, markdown, tags) in CORPUS.items():
            rt.documents.upsert(DocumentInput(source_type="web", source_ref=ref, title=title, markdown=markdown,
                                              tags=tags))
        wait_for(lambda: rt.embeddings.check().embedded == len(CORPUS), 60, what="the documents to be embedded")
        hybrid = rt.search.search("transactions stuck waiting on each other")
        assert hybrid.mode == "hybrid" and hybrid.items[0].source_ref == "deadlocks"
        words = rt.search.search("stakes", mode="hybrid")
        assert words.items[0].source_ref == "garden" and "\ue000stakes\ue001" in words.items[0].marked
        # What a hybrid page asks of the words' side: the ranking alone, then the snippets of the documents
        # no chunk of which came near (ts_headline).
        plan = rt.search._plan(parse_query("stakes OR dough"))
        ranked = plan.ranked(10)
        assert len(ranked) == 2 and all(score > 0 for _, score in ranked)
        snippets = plan.snippets([doc_id for doc_id, _ in ranked])
        assert sorted("\ue000stakes\ue001" in text or "\ue000dough\ue001" in text for text in snippets.values()) \
            == [True, True]
        assert [hit.source_ref for hit in rt.search.search("waiting locks tag:food", mode="semantic").items] \
            == ["bread"]
        # The filters' check of the nearest documents, with words and without.
        every = [rt.documents.get_by_ref("web", ref).id for ref in CORPUS]
        expected = {rt.documents.get_by_ref("web", ref).id for ref in ("deadlocks", "create-index")}
        assert rt.search.among(parse_query("locks tag:db -vacuum"), [*every, 10**9]) == expected
        without_words = replace(parse_query("locks tag:db -vacuum"), all_of=())  # as the side by meaning asks
        assert rt.search.among(without_words, every) == expected


def test_hybrid_pages_go_deeper_than_the_fused_candidates_and_the_total_counts_every_word_match(meaning, monkeypatch):
    from quaero.stores import search

    keyword = meaning.search.search("and", mode="keyword")
    assert keyword.total >= 4
    monkeypatch.setattr(search, "CANDIDATES", 2)
    first = meaning.search.search("and", mode="hybrid", limit=2)
    assert first.total >= keyword.total
    second = meaning.search.search("and", mode="hybrid", limit=2, offset=2)
    assert len(second.items) == 2 and not {h.id for h in first.items} & {h.id for h in second.items}


def test_filtered_search_by_meaning_checks_the_nearest_documents_and_ranks_only_the_allowed_when_few_pass(
        meaning, monkeypatch):
    from quaero.stores import search

    monkeypatch.setattr(search, "CANDIDATES", 2)  # 2 of the 6 documents: the depths below matter
    queries = ["waiting locks tag:food", "waiting locks -deadlock", '"dead tuples" cleanup', "waiting locks source:web",
               "water tag:db", "locks tag:db -vacuum", "bak* oven"]
    asked: list[str] = []
    matching_ids = search.DocumentSearch.matching_ids
    monkeypatch.setattr(search.DocumentSearch, "matching_ids",
                        lambda self, query: asked.append(repr(query)) or matching_ids(self, query))

    def results(depths: tuple[int, ...]) -> dict[str, list[str]]:
        monkeypatch.setattr(search, "POST_FILTER_DEPTHS", depths)
        return {q: _refs(meaning.search.search(q, mode="semantic", limit=2)) for q in queries}

    allowed_first = results(())  # no post-filtering: the ranking of the documents the query allows
    assert allowed_first["waiting locks tag:food"] == ["bread"] and "deadlocks" not in allowed_first[queries[1]]
    assert all(allowed_first.values())
    asked.clear()
    assert results((4, 16)) == allowed_first  # the nearest 8 then 32: every document, checked
    assert asked == []  # no query needed the set of every document it allows
    assert results((1,)) == allowed_first  # the nearest 2, then the allowed ones when fewer passed
    assert asked  # tag:food's bread is not among the nearest 2 of "waiting locks"
    assert meaning.search.among(parse_query("locks tag:db -vacuum"), [1, 2, 3, 4, 5, 6, 999]) == {
        meaning.documents.get_by_ref("web", f"https://docs.test/{ref}").id for ref in ("deadlocks", "create-index")}


def test_in_a_server_a_thread_keeps_the_vectors_fresh_and_searches_do_not_look_for_them(tmp_path):
    rt = Runtime(make_settings(tmp_path, embedder="local"), role="server")
    rt.start()
    try:
        for ref, (title, markdown, tags) in CORPUS.items():
            rt.documents.upsert(DocumentInput(source_type="web", source_ref=ref, title=title, markdown=markdown,
                                              tags=tags))
        wait_for(lambda: rt.embeddings.check().embedded == len(CORPUS), 60, what="the documents to be embedded")
        assert _refs_of(rt.search.search("transactions stuck waiting on each other", mode="semantic"))[0] \
            == "deadlocks"  # the first search makes the index; this process's vectors are read at once
        index = rt.embeddings._index
        assert index is not None and index.documents == len(CORPUS)
        signatures: list[str] = []
        signature = index.store.signature
        index.store.signature = lambda model: signatures.append(threading.current_thread().name) or signature(model)
        deleted = rt.documents.get_by_ref("web", "deadlocks")
        rt.documents.delete(deleted.id)
        # No search runs: the refresher notices the deletion.
        wait_for(lambda: index.documents == len(CORPUS) - 1, 10, what="the refresher to drop the deleted vectors")
        for _ in range(5):
            assert "deadlocks" not in _refs_of(rt.search.search("transactions stuck waiting", mode="semantic"))
        assert signatures and set(signatures) == {"quaero-vector-refresh"}
        refresher = rt.embeddings._refresher
    finally:
        rt.stop()
    assert refresher is not None
    refresher.join(5)
    assert not refresher.is_alive()


def _refs_of(page) -> list[str]:
    return [hit.source_ref for hit in page.items]
