"""Job outcomes and waits in the store, on SQLite and PostgreSQL: stored with the last transition, counted
per outcome in one grouped query, filtered by kind or by reason; an older database gets the columns."""

from __future__ import annotations

import sqlite3

import pytest

from quaero.api import ChildSpec
from quaero.api.outcomes import outcome_filter, outcome_text
from quaero.stores.db import Database
from quaero.stores.models import bind_models
from quaero.stores.views import job_dicts


def finish(jobs, job_id, status="completed", outcome=None):
    jobs.transition(job_id, "running")
    return jobs.transition(job_id, status, outcome=outcome)


def test_outcomes_are_stored_counted_and_filtered(stores):
    jobs = stores.jobs
    step = jobs.create_job("step", "crawl")
    ids = jobs.create_children(step, [ChildSpec("t", f"c{i}") for i in range(7)], depth=0)
    finish(jobs, ids[0], outcome="saved")
    finish(jobs, ids[1], outcome="saved")
    finish(jobs, ids[2], outcome="skipped:robots")
    finish(jobs, ids[3], outcome="skipped:http_404")
    finish(jobs, ids[4], "failed")  # no outcome given: a failed job's is "failed"
    finish(jobs, ids[5], "failed", outcome="failed:blocked_address")
    finish(jobs, ids[6])  # completed without one: none
    assert [jobs.get(i).outcome for i in ids] == ["saved", "saved", "skipped:robots", "skipped:http_404", "failed",
                                                  "failed:blocked_address", None]
    assert jobs.outcome_counts(step.id) == {"saved": 2, "skipped:http_404": 1, "skipped:robots": 1, "failed": 1,
                                            "failed:blocked_address": 1}
    names = lambda found: sorted(job.name for job in found)  # noqa: E731
    assert names(jobs.children(step.id, outcome="skipped")) == ["c2", "c3"]
    assert names(jobs.children(step.id, outcome="skipped:robots")) == ["c2"]
    assert names(jobs.children(step.id, outcome="failed")) == ["c4", "c5"]
    assert names(jobs.children(step.id, outcome="failed", status="completed")) == []
    assert jobs.count_children(step.id, outcome="skipped") == 2
    assert jobs.count_children(step.id, outcome="saved", status="completed") == 2
    assert jobs.count_children(step.id, status="failed") == 2
    # A failed job sent back to pending (a dead letter requeued) loses its outcome.
    jobs.reset_for_rerun(ids[4])
    assert jobs.get(ids[4]).outcome is None


def test_a_wait_is_shown_until_it_ends_and_counted_apart_from_running(stores):
    jobs = stores.jobs
    step = jobs.create_job("step", "crawl")
    jobs.transition(step.id, "running")
    a, b, c = jobs.create_children(step, [ChildSpec("t", n) for n in "abc"], depth=0)
    for job_id in (a, b, c):
        jobs.transition(job_id, "running")
    jobs.set_waiting(a, "a per-host slot for example.com")
    jobs.set_waiting(b, "a per-host slot for example.com")
    [data] = job_dicts(jobs, [jobs.get(step.id)])
    assert (data["counts"]["running"], data["counts"]["waiting"], data["counts"]["total"]) == (1, 2, 3)
    assert "1 running, 2 waiting" in data["progress_text"]
    listed = {row["name"]: row["waiting"] for row in job_dicts(jobs, jobs.children(step.id))}
    assert listed == {"a": "a per-host slot for example.com", "b": "a per-host slot for example.com", "c": None}
    jobs.set_waiting(b, None)  # it works again
    jobs.transition(a, "completed")  # a transition ends the wait too
    assert (jobs.get(a).waiting, jobs.get(b).waiting) == (None, None)
    jobs.set_waiting(a, "too late")  # a finished job does not wait
    assert jobs.get(a).waiting is None
    [data] = job_dicts(jobs, [jobs.get(step.id)])
    assert (data["counts"]["running"], data["counts"]["waiting"]) == (2, 0)


def test_outcome_texts_and_filters_are_checked():
    assert outcome_text("skipped", "HTTP_404") == "skipped:http_404"
    assert outcome_text("saved") == "saved"
    assert outcome_text("saved", "rendered") == "saved:rendered"  # API 1.4: any kind may carry a reason
    for bad in [("done", None), ("done", "robots"), ("skipped", "two words"), ("saved", "Not-A-Word!")]:
        with pytest.raises(ValueError):
            outcome_text(*bad)
    assert outcome_filter(" Skipped ") == "skipped" and outcome_filter("failed:x") == "failed:x"
    assert outcome_filter("unchanged:x") == "unchanged:x"
    with pytest.raises(ValueError, match="is not one of saved, unchanged, skipped, failed, or"):
        outcome_filter("kept:x")


def test_an_older_database_gets_the_outcome_and_waiting_columns_and_their_index(tmp_path):
    path = tmp_path / "old.db"
    database = Database(f"sqlite:///{path}")
    bind_models(database.db)
    database.close()
    conn = sqlite3.connect(path)
    with conn:  # the table as the release before outcomes made it
        conn.execute("DROP INDEX job_parent_id_outcome")
        conn.execute("ALTER TABLE jobs DROP COLUMN outcome")
        conn.execute("ALTER TABLE jobs DROP COLUMN waiting")
    conn.close()
    database = Database(f"sqlite:///{path}")
    try:
        bind_models(database.db)
        columns = {c.name for c in database.db.get_columns("jobs")}
        assert {"outcome", "waiting"} <= columns
        indexes = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "job_parent_id_outcome" in indexes
    finally:
        database.close()
