"""JobManager transitions and counts, and the DocumentStore, on a real SQLite file."""

from __future__ import annotations

import pytest

from quaero.errors import Conflict, NotFound
from quaero.stores.db import Database
from quaero.stores.documents import DocumentInput, DocumentStore
from quaero.stores.events import EventBus
from quaero.stores.jobs import ChildSpec, Counts, JobManager
from quaero.stores.models import bind_models


@pytest.fixture
def stores(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'data.db'}")
    models = bind_models(database.db)
    yield JobManager(database, models, EventBus()), DocumentStore(database, models)
    database.close()


def test_transitions_are_enforced_and_counted_on_the_parent(stores):
    jobs, _ = stores
    parent = jobs.create_job("step", "step")
    a, b = jobs.create_children(parent, [ChildSpec("t", "a", {}), ChildSpec("t", "b", {})], depth=0)
    assert jobs.counts(parent.id) == Counts(pending=2)
    assert jobs.transition(a, "completed") is None  # pending cannot complete without running
    assert jobs.transition(a, "running").old == "pending"
    assert jobs.transition(a, "completed").new == "completed"
    assert jobs.transition(a, "running") is None  # a finished job never runs again
    assert jobs.transition(a, "failed") is None
    jobs.transition(b, "cancelled")
    assert jobs.counts(parent.id) == Counts(completed=1, cancelled=1) == jobs.recount(parent.id)
    assert jobs.get(a).attempts == 1 and jobs.get(a).finished_at is not None


def test_retry_goes_back_to_pending_and_completion_clears_the_error(stores):
    jobs, _ = stores
    parent = jobs.create_job("step", "step")
    [job_id] = jobs.create_children(parent, [ChildSpec("t", "a", {})], depth=0)
    jobs.transition(job_id, "running")
    jobs.transition(job_id, "pending", error="boom")
    assert jobs.get(job_id).error_message == "boom" and jobs.counts(parent.id) == Counts(pending=1)
    jobs.transition(job_id, "running")
    jobs.transition(job_id, "completed")
    job = jobs.get(job_id)
    assert (job.attempts, job.error_message) == (2, None)


def test_cancel_and_delete(stores):
    jobs, _ = stores
    root = jobs.create_job("parent", "root")
    step = jobs.create_job("step", "step", parent=root)
    ids = jobs.create_children(step, [ChildSpec("t", str(i), {}) for i in range(5)], depth=0)
    jobs.transition(ids[0], "running")
    jobs.transition(ids[1], "running")
    jobs.transition(ids[1], "completed")
    with pytest.raises(Conflict):
        jobs.delete(root.id)
    running = jobs.cancel(root.id)
    assert running == [ids[0]]
    assert jobs.counts(step.id) == Counts(completed=1, cancelled=4)
    assert jobs.counts(root.id) == Counts(cancelled=1)
    assert jobs.cancel(root.id) == []
    assert jobs.delete(root.id) == 7
    with pytest.raises(NotFound):
        jobs.get(ids[2])


def test_documents_are_saved_once_per_reference(stores):
    _, documents = stores
    page = DocumentInput(source_type="web", source_ref="https://example.com/", title="Home", markdown="# Home",
                         tags=["b", "a", "a"])
    first = documents.upsert(page, job_id="job_1")
    assert (first.created, bool(first.changed), first.first_for_job) == (True, True, True)
    again = documents.upsert(page, job_id="job_1")
    assert (again.id, again.created, again.changed, again.first_for_job) == (first.id, False, (), False)
    page.markdown = "# Home, changed"
    retried = documents.upsert(page, job_id="job_1")  # the same job run again after a crash
    assert (retried.changed, retried.first_for_job) == (("markdown",), False)
    refreshed = documents.upsert(DocumentInput(source_type="web", source_ref="https://example.com/",
                                               title="Home", markdown="# New"), job_id="job_2")
    assert (refreshed.changed, refreshed.first_for_job) == (("markdown", "tags"), True)
    assert documents.count() == 1 and documents.count(source_type="api") == 0
    doc = documents.get(first.id)
    assert doc.markdown == "# New" and doc.job_id == "job_2"
    assert documents.get_by_ref("web", "https://example.com/").id == first.id


def test_a_save_that_changes_any_stored_field_writes_it_and_names_it(stores):
    _, documents = stores
    base = dict(source_type="web", source_ref="u", title="T", markdown="m", html="<p>m</p>",
                metadata={"a": 1, "b": [1, 2]}, tags=["x"], keywords=["k"], summary="s")
    doc_id = documents.upsert(DocumentInput(**base)).id
    for field, value in [("summary", "a new summary"), ("keywords", ["k", "l"]), ("metadata", {"a": 2}),
                         ("html", "<p>other</p>"), ("html", None), ("tags", ["x", "y"]), ("title", "T2")]:
        base[field] = value
        result = documents.upsert(DocumentInput(**base))
        assert result.changed == (field,), field
        stored = documents.get(doc_id)
        assert getattr(stored, field) == (value if field in ("summary", "html", "title") else
                                          __import__("json").dumps(value, separators=(",", ":"))), field
    # The same metadata with its keys in another order is the same metadata.
    base["metadata"] = {"a": 2}
    assert documents.upsert(DocumentInput(**{**base, "metadata": {"a": 2}})).changed == ()
    before = documents.get(doc_id).updated_at
    assert documents.upsert(DocumentInput(**base)).changed == ()
    assert documents.get(doc_id).updated_at == before  # an unchanged save writes nothing


def test_full_text_index_follows_every_write(stores):
    _, documents = stores
    database = documents.database

    def hits(query):
        return [row[0] for row in database.execute(
            "SELECT rowid FROM documents_fts WHERE documents_fts MATCH ? ORDER BY rank", (query,)).fetchall()]

    a = documents.upsert(DocumentInput(source_type="web", source_ref="u1", title="Zebra crossing",
                                       markdown="A page about roads.")).id
    b = documents.upsert(DocumentInput(source_type="web", source_ref="u2", title="Roads",
                                       markdown="Where the zebra lives: savannas.")).id
    assert sorted(hits("zebra")) == sorted([a, b])
    assert hits("savanna*") == [b] and hits("crossings") == [a]  # prefix, and porter stemming
    documents.upsert(DocumentInput(source_type="web", source_ref="u2", title="Roads", markdown="Only asphalt."))
    assert hits("savanna*") == [] and hits("asphalt") == [b]
    with database.write():
        database.execute("DELETE FROM documents WHERE id = ?", (a,))
    assert hits("zebra") == []


def test_tag_index_follows_every_write_and_is_built_for_older_databases(stores, tmp_path):
    _, documents = stores
    database = documents.database

    def tag_rows():
        return sorted(database.execute("SELECT tag, document_id FROM document_tags").fetchall())

    a = documents.upsert(DocumentInput(source_type="web", source_ref="a", markdown="x", tags=["red", "blue"])).id
    b = documents.upsert(DocumentInput(source_type="web", source_ref="b", markdown="y", tags=["red"])).id
    assert tag_rows() == [("blue", a), ("red", a), ("red", b)]
    documents.upsert(DocumentInput(source_type="web", source_ref="b", markdown="y", tags=["green"]))
    assert tag_rows() == [("blue", a), ("green", b), ("red", a)]
    assert documents.tags() == [{"tag": "blue", "count": 1}, {"tag": "green", "count": 1}, {"tag": "red", "count": 1}]
    documents.delete(a)
    assert tag_rows() == [("green", b)]
    # A database from before the tag index: the table is built from the documents' own lists on start.
    with database.write():
        for trigger in ("insert", "update", "delete"):
            database.execute(f"DROP TRIGGER document_tags_{trigger}")
        database.execute("DROP TABLE document_tags")
    bind_models(database.db)
    assert tag_rows() == [("green", b)]


def test_every_job_log_event_has_metadata_as_the_seed_says(stores):
    from quaero.stores.events import JOB_LOG
    from quaero.stores.logs import JobLogWriter

    jobs, _ = stores
    bus = EventBus()
    seen = []
    bus.subscribe(lambda event: seen.append(event.payload), [JOB_LOG])
    writer = JobLogWriter(jobs.database, jobs.models, bus)
    writer.write("job-1", "info", "plain line")
    writer.write("job-1", "info", "with figures", saved=3)
    writer.flush()
    assert [payload["metadata"] for payload in seen] == [{}, {"saved": 3}]
